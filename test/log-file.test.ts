// The log in a file (logging.file): the real logger (createLogger) writing through
// openLogFile into a real temp dir. Rotation by size with pino-roll, the oldest
// files removed beyond `keep`, not one line lost or doubled across rotations,
// reopening after the file is moved away (logrotate), mode 0640 whatever the umask,
// and a failing file (a full tmpfs) that neither kills nor hangs the writer.
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogDestination } from '../src/log-destination.ts';
import { openLogFile, reopenLog } from '../src/log-file.ts';
import { createLogger, type Logger } from '../src/log.ts';
import { mountSmallDisk, type SmallDisk } from './helpers/small-disk.ts';

type Line = Record<string, unknown>;
const BACKLOG = 1024 * 1024;

let dir: string;
let destination: LogDestination | undefined;
let disk: SmallDisk | undefined;
/**
 * Ends the stream and waits for its file to be closed. Teardown only: once seen
 * under a fully loaded machine, a stream that had failed on the full disk did not
 * report 'close' after end(); it is destroyed after 5 s so one test cannot hang the
 * next (the relay itself flushes synchronously at exit and never waits for 'close').
 */
const close = (d: LogDestination | undefined): Promise<void> =>
  new Promise((resolve) => {
    if (!d) return resolve();
    const giveUp = setTimeout(() => {
      d.destroy();
      resolve();
    }, 5000);
    d.once('close', () => {
      clearTimeout(giveUp);
      resolve();
    });
    d.end();
  });

afterEach(async () => {
  await close(destination);
  disk?.unmount();
  if (dir) rmSync(dir, { recursive: true, force: true });
  destination = disk = undefined;
});

const lines = (file: string): Line[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Line);

/** The numbered files pino-roll wrote, oldest first. */
const numbered = (): string[] =>
  readdirSync(dir)
    .map((name) => ({ name, n: Number(/^relay\.(\d+)\.log$/.exec(name)?.[1] ?? NaN) }))
    .filter((f) => !Number.isNaN(f.n))
    .sort((a, b) => a.n - b.n)
    .map((f) => f.name);

async function waitFor<T>(what: string, find: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined && found !== false) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const BATCH = 10;

/**
 * Logs `count` numbered lines (`seq`), each about 200 bytes, BATCH at a time as a busy
 * relay would (a message logs a few lines). `paced`: each batch waits until the
 * previous one is on disk, as between messages; else only for the next turn.
 */
async function logNumbered(logger: Logger, from: number, count: number, paced = false): Promise<void> {
  for (let i = from; i < from + count; i++) {
    logger.info({ event: 'delivery.record', seq: i, recipient: `someone-${i}@clinic.example`, pad: 'x'.repeat(100) }, 'delivered');
    if (i % BATCH === BATCH - 1) await new Promise((r) => (paced ? destination!.once('drain', r) : setImmediate(r)));
  }
}

/** Every `seq` in the files, in order of the files and of their lines. */
const seqsIn = (files: string[]): number[] => files.flatMap((f) => lines(join(dir, f)).map((l) => l.seq as number));

describe('logging.file with logging.rotate', () => {
  it('rotates at max_bytes; not one line is lost or doubled across the rotations; each file is 0640 under umask 077', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-logfile-'));
    const before = process.umask(0o077);
    try {
      destination = await openLogFile({ file: join(dir, 'relay.log'), backlogBytes: BACKLOG, rotate: { max_bytes: 8 * 1024, every: null, keep: 1000 } });
      const logger = createLogger('info', destination);
      await logNumbered(logger, 0, 2000, true);
      await waitFor('all 2000 lines on disk', () => seqsIn(numbered()).length === 2000);
    } finally {
      process.umask(before);
    }
    const files = numbered();
    // ~200 bytes a line, 2000 lines, 8 KiB a file: some fifty files.
    expect(files.length).toBeGreaterThan(30);
    expect(seqsIn(files)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    // pino-roll closes a file once it holds max_bytes and what was written meanwhile is on
    // disk; lines written while it switches count toward the next file. So each closed
    // file holds max_bytes give or take one batch.
    const longest = Math.max(...files.flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').map((l) => l.length + 1)));
    const batchBytes = BATCH * longest;
    for (const f of files.slice(0, -1)) {
      const size = statSync(join(dir, f)).size;
      expect(size).toBeGreaterThanOrEqual(8 * 1024 - batchBytes);
      expect(size).toBeLessThanOrEqual(8 * 1024 + batchBytes);
    }
    // Set once each file is open (fchmod), so the last one may take a moment.
    await waitFor('mode 0640 on every file', () => numbered().every((f) => (statSync(join(dir, f)).mode & 0o777) === 0o640));
  });

  it('keeps `keep` files, the one being written included: older ones are removed, from this run and from an earlier one', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-logfile-'));
    const rotate = { max_bytes: 4 * 1024, every: null, keep: 3 };
    destination = await openLogFile({ file: join(dir, 'relay.log'), backlogBytes: BACKLOG, rotate });
    await logNumbered(createLogger('info', destination), 0, 600, true);
    await waitFor('the last line on disk, with 3 files left', () => numbered().length === 3 && seqsIn(numbered()).at(-1) === 599);
    const [first] = numbered();
    // Well past the first rotations: the oldest files are gone, the newest lines are all there.
    expect(Number(/\d+/.exec(first!)![0])).toBeGreaterThan(5);
    const kept = seqsIn(numbered());
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 600 - kept.length + i));
    await close(destination);

    // A restart with fewer to keep: the files of the earlier run beyond it go too.
    const last = numbered().at(-1);
    destination = await openLogFile({ file: join(dir, 'relay.log'), backlogBytes: BACKLOG, rotate: { ...rotate, keep: 1 } });
    createLogger('info', destination).info({ event: 'relay.started', seq: 600 }, 'started');
    await waitFor('one file left', () => numbered().length === 1 && seqsIn(numbered()).at(-1) === 600);
    // pino-roll carries on in the newest file of the earlier run.
    expect(numbered()).toEqual([last]);
  });

  it('rotates by time', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-logfile-'));
    destination = await openLogFile({ file: join(dir, 'relay.log'), backlogBytes: BACKLOG, rotate: { max_bytes: null, every: 'hourly', keep: 10 }, everyMs: 200 });
    const logger = createLogger('info', destination);
    let seq = 0;
    await waitFor('a third file', () => {
      logger.info({ event: 'delivery.record', seq: seq++ }, 'tick');
      return numbered().length >= 3;
    });
    await waitFor('every line on disk', () => seqsIn(numbered()).length === seq);
    expect(seqsIn(numbered())).toEqual(Array.from({ length: seq }, (_, i) => i));
  });
});

describe('logging.file without rotation (logrotate)', () => {
  it('after the file is moved away, reopenLog (SIGHUP) writes a new file at the configured path; no line lost', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-logfile-'));
    const file = join(dir, 'relay.log');
    destination = await openLogFile({ file, backlogBytes: BACKLOG, rotate: null });
    const logger = createLogger('info', destination);
    await logNumbered(logger, 0, 100);
    await waitFor('the first 100 lines', () => lines(file).length === 100);
    renameSync(file, `${file}.1`);
    // Lines logged after the move but before SIGHUP go to the moved file, as logrotate expects.
    await logNumbered(logger, 100, 50);
    reopenLog(destination);
    await logNumbered(logger, 150, 100);
    await waitFor('a new file with the last line', () => statSync(file, { throwIfNoEntry: false }) && lines(file).at(-1)?.seq === 249);
    const all = [...lines(`${file}.1`), ...lines(file)].map((l) => l.seq);
    expect(all).toEqual(Array.from({ length: 250 }, (_, i) => i));
    expect(lines(file)[0]!.seq).toBeGreaterThanOrEqual(100);
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });

  it('an existing file is appended to, and set to 0640', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-logfile-'));
    const file = join(dir, 'relay.log');
    closeSync(openSync(file, 'w', 0o644));
    destination = await openLogFile({ file, backlogBytes: BACKLOG, rotate: null });
    createLogger('info', destination).info({ event: 'relay.started' }, 'started');
    await waitFor('the line', () => lines(file).length === 1);
    await waitFor('mode 0640', () => (statSync(file).mode & 0o777) === 0o640);
  });
});

describe('a log file that cannot be written', () => {
  it('on a full disk the writer carries on; stderr says so once with the file; the lines are written when space is back', async () => {
    disk = mountSmallDisk(1024 * 1024);
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-logfile-'));
    const stderrFile = join(dir, 'stderr');
    const stderrFd = openSync(stderrFile, 'a');
    const file = join(disk.dir, 'relay.log');
    try {
      destination = await openLogFile({ file, backlogBytes: BACKLOG, rotate: { max_bytes: 64 * 1024, every: null, keep: 5 }, fallbackFd: stderrFd });
      const logger = createLogger('info', destination);
      logger.info({ event: 'relay.started' }, 'started');
      await waitFor('the first line', () => readdirSync(disk!.dir).some((n) => /^relay\.\d+\.log$/.test(n)));
      disk.fill();
      await logNumbered(logger, 0, 300);
      const stderr = () => readFileSync(stderrFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
      const failed = await waitFor('log.failed on stderr', () => stderr().find((l) => l.event === 'log.failed'));
      expect(failed).toMatchObject({ level: 50, code: 'ENOSPC', file });
      await logNumbered(logger, 300, 10);
      expect(stderr().filter((l) => l.event === 'log.failed')).toHaveLength(1);

      disk.release();
      const inDisk = () => readdirSync(disk!.dir).filter((n) => /^relay\.\d+\.log$/.test(n)).sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]));
      const logged = () => inDisk().flatMap((f) => lines(join(disk!.dir, f)));
      const resumed = await waitFor('log.resumed in the log', () => logged().find((l) => l.event === 'log.resumed'));
      expect(resumed).toMatchObject({ code: 'ENOSPC', lost: 0, file });
      await waitFor('all 310 lines', () => logged().filter((l) => typeof l.seq === 'number').length === 310);
      expect(logged().flatMap((l) => (typeof l.seq === 'number' ? [l.seq] : []))).toEqual(Array.from({ length: 310 }, (_, i) => i));
    } finally {
      closeSync(stderrFd);
    }
  });
});
