// `sealrelay status`: up and answering (lock held, fresh status file, every SMTP
// listener greets with 220, every web listener's /healthz answers 200, the queue
// readable) → exit 0; anything else → exit 1 with the line that says what.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { statusFileOf, type RelayStatus } from '../../src/relay-status.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { lockStoreFile } from '../../src/store/sqlite/owner-lock.ts';
import { allocLoopbackIp } from '../helpers/mx.ts';
import { killIfRunning, spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { startTestRelay, submit, testConfig } from '../helpers/relay.ts';
import { runCli } from './harness.ts';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const configDir = () => mkdtempSync(join(tmpdir(), 'sealrelay-status-'));

describe('a running relay', () => {
  it('every listener greets, the delivery thread is alive, the queue is counted with its oldest message: exit 0', async () => {
    const dead = allocLoopbackIp();
    const relay = await startTestRelay(
      testConfig({
        ingress: { listeners: { starttls: { host: '127.0.0.1', port: 0, tls: 'starttls' }, smtps: { host: '127.0.0.1', port: 0, tls: 'implicit' } } },
        api: { listen: '127.0.0.1:0' },
        delivery: { routes: { 'held.test': `${dead}:25` } },
      }),
    );
    cleanups.push(() => relay.close());
    await submit({ port: relay.port, from: 'lab@hospital.test', to: ['a@held.test', 'b@held.test'] });
    // The parsed listener ({host, port}) is not what the file takes; status reads only store.path of it.
    const configFile = writeConfigFile(configDir(), { ...relay.config, api: { ...relay.config.api, listen: '127.0.0.1:0' } } as unknown as typeof relay.config);

    const res = await runCli(['-c', configFile, 'status']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^relay +ok +running, pid ${process.pid}, version \\d+\\.\\d+\\.\\d+, up \\d+s$`));
    expect(res.stdout).toMatch(/^delivery thread +ok +alive, 0 restart\(s\)$/m);
    expect(res.stdout).toMatch(/^smtp starttls +ok +127\.0\.0\.1:\d+ \(starttls\): 220 in \d+ ms$/m);
    expect(res.stdout).toMatch(/^smtp smtps +ok +127\.0\.0\.1:\d+ \(implicit\): 220 in \d+ ms$/m);
    expect(res.stdout).toMatch(/^web api +ok +https:\/\/127\.0\.0\.1:\d+\/healthz: HTTP 200$/m);
    expect(res.stdout).toMatch(/^queue +ok +1 message\(s\), 2 recipient\(s\) waiting, 0 held; oldest \d+s$/m);

    const json = await runCli(['-c', configFile, 'status', '--json']);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; checks: { what: string; ok: boolean }[] };
    expect(parsed.ok).toBe(true);
    expect(parsed.checks.map((c) => c.what)).toEqual(['relay', 'delivery thread', 'smtp starttls', 'smtp smtps', 'web api', 'queue']);
  }, 60_000);

  it('killed with SIGKILL: not running (the kernel dropped the lock; the stale status file is not believed), exit 1', async () => {
    const dir = configDir();
    // The process says it started in its log (spawnRelay waits for that line).
    const configFile = writeConfigFile(dir, testConfig({ logging: { level: 'info' } }));
    const proc: RelayProcess = await spawnRelay(configFile);
    cleanups.push(() => killIfRunning(proc));
    const up = await runCli(['-c', configFile, 'status', '--wait', '20']);
    expect(up.code).toBe(0);
    proc.proc.kill('SIGKILL');
    await proc.exited;
    const down = await runCli(['-c', configFile, 'status']);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^relay +FAIL +not running \(nothing holds .*\.lock\)$/m);
  }, 60_000);
});

describe('what status refuses to believe', () => {
  /** A store locked by this test (standing in for a relay) with the given status file. */
  async function lockedStore(status: Partial<RelayStatus> & Pick<RelayStatus, 'listeners'>): Promise<string> {
    const dir = configDir();
    const config = testConfig({ store: { path: join(dir, 'sealrelay.db') } });
    await new SqliteStore(config.store.path).close();
    const lock = lockStoreFile(config.store.path);
    cleanups.push(() => lock.release());
    const now = Date.now();
    writeFileSync(statusFileOf(config.store.path), JSON.stringify({ pid: process.pid, version: '0.0.0', startedAt: now, updatedAt: now, web: [], delivery: { alive: true, restarts: 0 }, ...status }));
    return writeConfigFile(dir, config);
  }

  async function listening(reply: (socket: import('node:net').Socket) => void): Promise<number> {
    const server: Server = createServer(reply);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    return (server.address() as { port: number }).port;
  }

  it('a listener that answers with anything but 220, and one that says nothing, are failures', async () => {
    const refusing = await listening((s) => s.end('554 5.3.2 not now\r\n'));
    const silent = await listening(() => undefined);
    const configFile = await lockedStore({
      listeners: [
        { name: 'starttls', host: '127.0.0.1', port: refusing, tls: 'starttls' },
        { name: 'quiet', host: '127.0.0.1', port: silent, tls: 'starttls' },
      ],
    });
    const res = await runCli(['-c', configFile, 'status']);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^smtp starttls +FAIL +127\.0\.0\.1:\d+ \(starttls\): answered "554 5\.3\.2 not now"$/m);
    expect(res.stdout).toMatch(/^smtp quiet +FAIL +127\.0\.0\.1:\d+ \(starttls\): no greeting within 3000 ms$/m);
  }, 30_000);

  it('a status file not rewritten for a while (a hung relay), and a dead delivery thread, are failures', async () => {
    const configFile = await lockedStore({ listeners: [], updatedAt: Date.now() - 60_000, delivery: { alive: false, restarts: 3 } });
    const res = await runCli(['-c', configFile, 'status']);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^relay +FAIL +status not updated for 1m/m);
    expect(res.stdout).toMatch(/^delivery thread +FAIL +not running \(being restarted\?\), 3 restart\(s\)$/m);
  });

  it('no store at all: the relay never ran with this config; a bad --wait is a usage error', async () => {
    const dir = configDir();
    const configFile = writeConfigFile(dir, testConfig({ store: { path: join(dir, 'never', 'sealrelay.db') } }));
    const res = await runCli(['-c', configFile, 'status']);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('no store at');
    expect((await runCli(['-c', configFile, 'status', '--wait', 'soon'])).code).toBe(64);
  });
});
