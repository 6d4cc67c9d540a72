// The systemd unit (deploy/sealrelay.service): systemd itself finds nothing wrong
// with it, and its commands do what the unit relies on — ExecStart runs the relay,
// ExecStartPost returns only once it answers, ExecReload makes it re-read the
// config, and SIGTERM (systemd's stop) ends it cleanly.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { writeConfigFile } from '../helpers/relay-process.ts';
import { testConfig } from '../helpers/relay.ts';
import { ROOT } from '../cli/harness.ts';

const run = promisify(execFile);
const UNIT = join(ROOT, 'deploy', 'sealrelay.service');

/** The unit's value of `key` in [Service] (each line that sets it). */
function directives(key: string): string[] {
  return readFileSync(UNIT, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

/** A command line of the unit, run from this checkout instead of /opt/sealrelay. */
const local = (line: string) => line.replaceAll('/opt/sealrelay', ROOT).split(' ');

it('systemd-analyze verify finds nothing to say about the unit', async () => {
  const { stdout, stderr } = await run('systemd-analyze', ['verify', UNIT]);
  expect(stderr).toBe('');
  expect(stdout).toBe('');
});

it("the unit's commands: start runs the relay, the readiness check waits until it answers, reload re-reads the config, SIGTERM stops it with 0", async () => {
  const [start] = directives('ExecStart');
  const [ready] = directives('ExecStartPost');
  const [reload] = directives('ExecReload');
  const env = Object.fromEntries(directives('Environment').map((e) => e.split('=', 2) as [string, string]));
  expect(Object.keys(env).sort()).toEqual(['MALLOC_MMAP_THRESHOLD_', 'NODE_ENV', 'SEALRELAY_CONFIG']);
  const configFile = writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-unit-')), testConfig({ logging: { level: 'info' } }));
  const serviceEnv = { ...process.env, ...env, SEALRELAY_CONFIG: configFile };

  const [cmd, ...args] = local(start!);
  const relay = spawn(cmd!, args, { env: serviceEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  relay.stdout.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<number | null>((resolve) => relay.on('exit', (code) => resolve(code)));
  try {
    const [readyCmd, ...readyArgs] = local(ready!);
    const check = await run(readyCmd!, readyArgs, { env: serviceEnv });
    expect(check.stdout).toMatch(/^relay +ok +running, pid \d+/m);

    const [killCmd, ...killArgs] = local(reload!.replace('$MAINPID', String(relay.pid)));
    await run(killCmd!, killArgs);
    const deadline = Date.now() + 15_000;
    while (!log.includes('"event":"relay.reloaded"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(log).toContain('"event":"relay.reloaded"');
  } finally {
    relay.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
}, 60_000);
