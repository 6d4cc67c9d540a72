// The relay's log on a full disk. `sealrelay start` logs to stdout; here stdout is
// a file (as `sealrelay start >> /var/log/sealrelay.log`, or systemd's
// StandardOutput=append:) on a real tmpfs of a few MiB (needs root, as the
// project's machines and CI run) that the test fills and frees, so the relay's
// log writes fail with the kernel's ENOSPC. Before, pino's destination threw an
// unhandled 'error' and the process hung in its exit hook, retrying the write for
// ever, while clients waited. Now: mail keeps flowing, stderr says once that the
// log cannot be written, and the log resumes (saying how many lines were lost)
// when space is back.
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { killIfRunning, writeConfigFile } from '../helpers/relay-process.ts';
import { queueIdOf, submit, testConfig } from '../helpers/relay.ts';
import { mountSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MiB = 1024 * 1024;

type Line = Record<string, unknown>;

interface LoggingRelay {
  proc: ChildProcess;
  port: number;
  /** The JSON lines in the log file so far (a line still being written is left out). */
  log(): Line[];
  /** The JSON lines on stderr so far. */
  stderr(): Line[];
  /** Polls until `find` returns something, or fails after `timeoutMs`. */
  waitFor<T>(what: string, find: () => T | undefined, timeoutMs?: number): Promise<T>;
  exited: Promise<number | string>;
}

const jsonLines = (text: string): Line[] =>
  text
    .split('\n')
    .slice(0, -1)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

/** `sealrelay start` as a child whose stdout is `logFile` (appended to) and whose stderr the test reads. */
async function startLoggingToFile(configFile: string, logFile: string): Promise<LoggingRelay> {
  const out = openSync(logFile, 'a');
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'sealrelay.js'), '--config', configFile, 'start'], { cwd: ROOT, stdio: ['ignore', out, 'pipe'] });
  closeSync(out);
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const log = () => jsonLines(readFileSync(logFile, 'utf8'));
  const waitFor = async <T,>(what: string, find: () => T | undefined, timeoutMs = 20_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ${what} within ${timeoutMs} ms (exit ${proc.exitCode}); stderr: ${stderr.slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const started = await waitFor('relay.started in the log', () => log().find((l) => l.event === 'relay.started'));
  const port = (started.listeners as { port: number }[])[0]!.port;
  return { proc, port, log, stderr: () => jsonLines(stderr), waitFor, exited };
}

describe('the log on a full disk', () => {
  let disk: SmallDisk | undefined;
  let relay: LoggingRelay | undefined;
  let mx: StartedMx | undefined;
  afterEach(async () => {
    await killIfRunning(relay);
    await mx?.close();
    disk?.unmount();
    relay = mx = disk = undefined;
  });

  async function start(over: Record<string, unknown> = {}): Promise<LoggingRelay> {
    disk = mountSmallDisk(4 * MiB);
    mx = await startMx('tls13', { name: 'mx.logfull.test' });
    const config = testConfig({ delivery: { routes: { 'logfull.test': `127.0.0.1:${mx.port}` } }, logging: { level: 'info', ...over } });
    relay = await startLoggingToFile(writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-logfull-')), config), join(disk.dir, 'relay.log'));
    return relay;
  }

  /** Submits `n` messages; each must be answered 250 and reach the MX. Returns their queue ids. */
  async function sendAndDeliver(r: LoggingRelay, n: number, tag: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const reply = await submit({ port: r.port, from: 'app@clinic.test', to: [`${tag}${i}@logfull.test`] });
      ids.push(queueIdOf(reply));
    }
    const delivered = (to: string) => mx!.received.some((m) => m.envelope.to.includes(to));
    await r.waitFor(`delivery of the ${tag} messages`, () => (ids.every((_id, i) => delivered(`${tag}${i}@logfull.test`)) ? true : undefined));
    return ids;
  }

  it('mail keeps flowing while the log cannot be written; stderr says so once; the log resumes when space is back, lines kept', async () => {
    const r = await start();
    disk!.fill();
    const during = await sendAndDeliver(r, 4, 'during');
    const failed = await r.waitFor('log.failed on stderr', () => r.stderr().find((l) => l.event === 'log.failed'));
    expect(failed).toMatchObject({ level: 50, code: 'ENOSPC', fd: 1 });
    // More mail while it still fails: still served, still said only once.
    const more = await sendAndDeliver(r, 2, 'more');
    expect(r.stderr().filter((l) => l.event === 'log.failed')).toHaveLength(1);
    expect(r.proc.exitCode).toBeNull();

    disk!.release();
    // No new mail needed: the relay tries the log again by itself.
    const resumed = await r.waitFor('log.resumed in the log', () => r.log().find((l) => l.event === 'log.resumed'));
    expect(resumed).toMatchObject({ level: 40, code: 'ENOSPC', lost: 0 });
    expect(r.stderr().find((l) => l.event === 'log.resumed')).toMatchObject({ lost: 0 });
    // What was logged meanwhile waited in memory and is in the log now.
    const queued = () => new Set(r.log().filter((l) => l.event === 'ingress.queued').map((l) => l.queueId));
    expect([...during, ...more].filter((id) => !queued().has(id))).toEqual([]);

    const [after] = await sendAndDeliver(r, 1, 'after');
    await r.waitFor('the next message in the log', () => (queued().has(after!) ? true : undefined));
    expect(r.stderr().filter((l) => l.event === 'log.failed')).toHaveLength(1);
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    expect(r.log().some((l) => l.event === 'relay.stopped')).toBe(true);
  }, 90_000);

  it('past logging.backlog_bytes lines are dropped, and log.resumed counts them', async () => {
    const r = await start({ backlog_bytes: 16 * 1024 });
    disk!.fill();
    // Each message logs a few lines (ingress.queued, delivery.record…), some hundreds of bytes each: well over 16 KiB in all.
    const during = await sendAndDeliver(r, 25, 'drop');
    await r.waitFor('log.failed on stderr', () => r.stderr().find((l) => l.event === 'log.failed'));

    disk!.release();
    const resumed = await r.waitFor('log.resumed in the log', () => r.log().find((l) => l.event === 'log.resumed'));
    const lines = r.log();
    const missing = (event: string) => during.filter((id) => !lines.some((l) => l.event === event && l.queueId === id)).length;
    const missingQueued = missing('ingress.queued');
    const missingRecords = missing('delivery.record');
    expect(missingQueued + missingRecords).toBeGreaterThan(0);
    // At level info these two are all a message logs, and nothing else logs meanwhile: the count is exact.
    expect(resumed.lost).toBe(missingQueued + missingRecords);
    expect(r.stderr().find((l) => l.event === 'log.resumed')).toMatchObject({ lost: resumed.lost });
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }, 120_000);

  it('a relay stopped while its log still cannot be written exits at once, saying on stderr that the waiting lines are lost', async () => {
    const r = await start();
    disk!.fill();
    await sendAndDeliver(r, 4, 'stop');
    await r.waitFor('log.failed on stderr', () => r.stderr().find((l) => l.event === 'log.failed'));
    r.proc.kill('SIGTERM');
    // Before, pino's exit hook retried the write every 100 ms for ever: the process never ended.
    expect(await r.exited).toBe(0);
    expect(r.stderr().find((l) => l.event === 'log.lost')).toMatchObject({ level: 50, code: 'ENOSPC' });
  }, 90_000);
});
