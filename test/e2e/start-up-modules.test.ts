// What `sealrelay start` loads. The web listeners' code (fastify, ajv, the API, the
// portal's pages, metrics) is loaded with the listener that needs it: a relay without
// web listeners never carries it (src/http/listeners.ts; about 35 MB of idle RSS,
// README "Benchmarks"). The relay runs as a real process whose module loads are
// logged by a module hook (test/helpers/module-log/).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { killIfRunning, spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { testConfig } from '../helpers/relay.ts';

const REGISTER = pathToFileURL(join(import.meta.dirname, '..', 'helpers', 'module-log', 'register.mjs')).href;
/** Modules only a web listener needs: packages, and SealRelay's own entry points (src/ or dist/; small shared pieces such as the token format may load). */
const WEB_ONLY = [/\/node_modules\/fastify\//, /\/node_modules\/ajv\//, /\/node_modules\/@fastify\/swagger\//, /\/node_modules\/prom-client\//, /\/http\/(api|portal)\/index\.[jt]s$/, /\/http\/(server|metrics)\.[jt]s$/];

let relay: RelayProcess | undefined;
afterEach(() => killIfRunning(relay));

/** Starts the relay with `config`, waits until it is up, stops it; the modules its main thread loaded. */
async function modulesLoaded(config: Config): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-modules-'));
  const log = join(dir, 'modules.txt');
  relay = await spawnRelay(writeConfigFile(dir, config), { NODE_OPTIONS: `--import ${REGISTER}`, SEALRELAY_MODULE_LOG: log });
  await relay.waitForLine((l) => l.event === 'relay.started');
  relay.proc.kill('SIGTERM');
  expect(await relay.exited).toBe(0);
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

const webOnly = (urls: string[]) => urls.filter((u) => WEB_ONLY.some((re) => re.test(u)));

it('a relay without web listeners does not load their code', async () => {
  const urls = await modulesLoaded(testConfig({ logging: { level: 'info' } }));
  // The hook saw the relay's own start-up (so an empty list below means something).
  expect(urls.some((u) => /\/(src|dist)\/relay\.[jt]s$/.test(u))).toBe(true);
  expect(webOnly(urls)).toEqual([]);
});

it('a relay with the api listener loads fastify and the API', async () => {
  const config = testConfig({ logging: { level: 'info' } });
  // The file takes the listener as "host:port" (the parsed form is an object).
  const urls = await modulesLoaded({ ...config, api: { ...config.api, listen: '127.0.0.1:0' } } as unknown as Config);
  expect(webOnly(urls).some((u) => u.includes('/node_modules/fastify/'))).toBe(true);
  expect(webOnly(urls).some((u) => /\/http\/api\/index\.[jt]s$/.test(u))).toBe(true);
});
