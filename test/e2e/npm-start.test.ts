// The relay under `npm start`, as a developer runs it: npm → sh -c → node. npm
// forwards a SIGTERM to the shell only, which dies without passing it on; the relay
// must stop all the same (parent-watch.ts) and free its ports, and a stop asked of
// the whole process group at once (systemd, a terminal) must stay one graceful stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { writeConfigFile } from '../helpers/relay-process.ts';
import { queueIdOf, submit, testConfig } from '../helpers/relay.ts';

const ROOT = join(import.meta.dirname, '..', '..');

interface NpmStart {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  /** Resolves once every process writing to npm's stdout (npm, its shell, the relay) is gone. */
  gone: Promise<void>;
  port: number;
}

const groups: number[] = [];
const mxs: StartedMx[] = [];
afterEach(async () => {
  // Whatever is left of a run (an orphaned relay keeps npm's process group): gone for good.
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Nothing left: the test passed.
    }
  }
  await Promise.all(mxs.splice(0).map((m) => m.close()));
});

/** `npm run start -- --config <file>` in a process group of its own; resolves once the relay listens. */
async function npmStart(configFile: string): Promise<NpmStart> {
  const proc = spawn('npm', ['run', 'start', '--ignore-scripts', '--', '--config', configFile], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
  });
  groups.push(proc.pid!);
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const gone = new Promise<void>((resolve) => proc.stdout!.once('close', () => resolve()));
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout!.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      // npm's own lines ("> sealrelay@0.1.0 start") are not JSON.
      for (const p of parts.filter((l) => l.startsWith('{'))) {
        const line = JSON.parse(p) as Record<string, unknown>;
        lines.push(line);
        if (line.event === 'relay.started') resolve(line);
      }
    });
    void gone.then(() => reject(new Error(`npm start ended before the relay started; stderr: ${stderr}`)));
  });
  const listeners = (await started).listeners as { port: number }[];
  return { proc, lines, gone, port: listeners[0]!.port };
}

/** The error code of a connection attempt, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

function relayConfig(over: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-npm-'));
  const config = testConfig({ store: { path: join(dir, 'q.db') }, logging: { level: 'info' }, ...over });
  return { config, file: writeConfigFile(dir, config) };
}

it('SIGTERM to `npm start` stops the relay it started: the relay exits and its port is free', async () => {
  const { file } = relayConfig();
  const npm = await npmStart(file);
  expect(await tryConnect(npm.port)).toBe('connected');
  // Only npm is told, as a supervisor or `kill <pid of npm>` would.
  npm.proc.kill('SIGTERM');
  await npm.gone;
  expect(npm.lines.find((l) => l.event === 'relay.stopping')).toMatchObject({ signal: 'SIGTERM' });
  expect(npm.lines.filter((l) => l.event === 'relay.stopped').map((l) => l.msg)).toEqual(['stopped']);
  expect(await tryConnect(npm.port)).toBe('ECONNREFUSED');
}, 60_000);

it('SIGTERM to the whole group under `npm start` is one graceful stop: the delivery in flight finishes', async () => {
  // A slow receiver: the reply to DATA takes 3 s, so the stop outlasts the shell that died at once.
  const mx = await startMx('tls13', { name: 'mx.slow.test', dataDelayMs: 3000 });
  mxs.push(mx);
  const { config, file } = relayConfig({ delivery: { routes: { 'slow.test': `127.0.0.1:${mx.port}` } } });
  const npm = await npmStart(file);
  const id = queueIdOf(await submit({ port: npm.port, from: 'a@x.test', to: ['u@slow.test'] }));
  while (mx.data.begun === 0) await new Promise((r) => setTimeout(r, 50));
  // As systemd (KillMode=control-group) and a terminal's Ctrl-C do: every process at once.
  process.kill(-npm.proc.pid!, 'SIGTERM');
  await npm.gone;
  expect(npm.lines.filter((l) => l.event === 'relay.stopped').map((l) => l.msg)).toEqual(['stopped']);
  const store = new SqliteStore(config.store.path);
  try {
    expect((await store.queryRecords({ message: id })).map((r) => r.outcome)).toEqual(['delivered']);
  } finally {
    await store.close();
  }
  expect(mx.received).toHaveLength(1);
  expect(await tryConnect(npm.port)).toBe('ECONNREFUSED');
}, 60_000);
