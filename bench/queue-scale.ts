// queue-scale: scenario 2 — a queue 100,000 messages deep, all deferred (the
// destination has been down for a while), and what that costs the relay:
// memory after start-up and after several queue polls, CPU spent polling a
// queue where nothing is due, and how long the scans behind `sealrelay queue`
// and the scheduler take.
//
// The queue is filled through the public Store interface of SqliteStore, as
// ingress and delivery would fill it: `enqueue` (group commits of up to 256),
// then `claim` + `finish` with a `deferred` settlement whose next attempt is a
// day away. No DeliveryRecords are written for those attempts (the records table
// is not read by any of the scans measured here), which keeps the fill quick.
//
// Then the real relay starts on that store with the bench domain routed to a
// port where nothing listens, so that nothing is delivered even if something
// became due.
import { spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { newQueueId } from '../src/store/queue-id.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Settlement } from '../src/store/store.ts';
import { onCleanup } from './cleanup.ts';
import { freePort } from './free-port.ts';
import { messageFactory } from './message.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { readMemory } from './proc-stats.ts';
import { sealRelayConfig, startSealRelay } from './relay-under-test.ts';

const ROOT = join(import.meta.dirname, '..');
/** Enqueues in flight at once while filling: several group commits' worth. */
const FILL_BATCH = 2048;
/** Recipients claimed and deferred per store transaction while filling. */
const DEFER_BATCH = 5000;
const DEFER_FOR_MS = 24 * 3600 * 1000;
/** Each in-process scan is repeated this many times; the median is the figure. */
const SCAN_REPEATS = 5;
/** The relay is watched for this many poll intervals after start-up. */
const POLLS_WATCHED = 10;
const CLI_TIMEOUT_MS = 300_000;

export interface QueueScaleOptions {
  dir: string;
  messages: number;
  size: number;
  domain: string;
  caFile: string;
}

export interface QueueScaleResult {
  messages: number;
  messageBytes: number;
  fill: { enqueueMs: number; enqueueMsgsPerSec: number; deferMs: number; dbBytes: number };
  /** In-process timings of the Store calls behind the scheduler and the CLI, ms. */
  scans: Record<string, LatencySummary>;
  relay: {
    startupMs: number;
    rssAfterStartup: number;
    rssAfterPolls: number;
    /** VmHWM: the most the relay held at any moment of this scenario. */
    peakRss: number;
    pollIntervalMs: number;
    pollsWatched: number;
    /** CPU the idle relay spent per second polling the deep queue. */
    idleCpuMsPerSec: number;
    /** Delivery records the relay wrote, i.e. attempts it made although nothing was due (must be 0). */
    unexpectedAttempts: number;
  };
  /** `sealrelay queue --json` against the full queue, while the relay runs. */
  cli: { ok: boolean; wallMs: number; lines: number; peakRss: number; exitCode: number | string | null; error: string | null };
}

export async function runQueueScale(opts: QueueScaleOptions, progress: (line: string) => void): Promise<QueueScaleResult> {
  const storePath = join(opts.dir, 'queue-scale.db');
  const factory = messageFactory({ size: opts.size, domain: opts.domain });

  progress(`filling the store with ${opts.messages} messages of ${opts.size} bytes`);
  const store = new SqliteStore(storePath);
  let enqueueMs: number;
  let deferMs: number;
  try {
    const t0 = performance.now();
    for (let start = 0; start < opts.messages; start += FILL_BATCH) {
      const batch: Promise<void>[] = [];
      for (let i = start; i < Math.min(opts.messages, start + FILL_BATCH); i++) {
        const queueId = newQueueId();
        batch.push(
          store.enqueue({
            queueId,
            sender: factory.sender,
            recipients: [factory.recipient(i)],
            body: factory.build(`queue-${i}`, i),
            messageId: `<queue-${i}@app.bench.local>`,
            subject: `Your appointment (ref ${i})`,
            clientIp: '127.0.0.1',
            authUser: null,
            receivedAt: Date.now(),
          }),
        );
      }
      await Promise.all(batch);
    }
    enqueueMs = performance.now() - t0;

    progress('deferring every recipient by a day (claim + finish)');
    const t1 = performance.now();
    const later = Date.now() + DEFER_FOR_MS;
    for (let round = 0; round < Math.ceil(opts.messages / DEFER_BATCH) + 5; round++) {
      const items = await store.claim({ owner: 'bench-filler', limit: DEFER_BATCH, leaseMs: 600_000 });
      if (!items.length) break;
      const settlements: Settlement[] = items.map((item) => ({
        queueId: item.queueId,
        seq: item.seq,
        outcome: 'deferred',
        error: '421 4.4.2 bench: destination down',
        nextAttemptAt: later,
      }));
      await store.finish([], settlements);
    }
    deferMs = performance.now() - t1;
  } finally {
    await store.close();
  }
  const dbBytes = ['', '-wal'].reduce((n, suffix) => n + fileSize(storePath + suffix), 0);

  progress('timing the store scans in-process');
  const scans = await timeScans(storePath);

  progress('starting the relay on the full queue');
  const deadPort = await freePort();
  const pollIntervalMs = 1000;
  const spawnedAt = performance.now();
  const relay = await startSealRelay({
    dir: opts.dir,
    storePath,
    route: { domain: opts.domain, host: '127.0.0.1', port: deadPort },
    caFile: opts.caFile,
    sessions: 1,
    delivery: { poll_interval_ms: pollIntervalMs },
  });
  try {
    const startupMs = performance.now() - spawnedAt;
    const rssAfterStartup = readMemory(relay.pid)?.rss ?? 0;
    const cpu0 = relay.cpuMs();
    const t0 = performance.now();
    await sleep(POLLS_WATCHED * pollIntervalMs);
    const idleCpuMsPerSec = ((relay.cpuMs() - cpu0) / (performance.now() - t0)) * 1000;
    const rssAfterPolls = readMemory(relay.pid)?.rss ?? 0;

    progress('timing `sealrelay queue --json` on the full queue');
    const cli = await timeQueueCli(opts.dir, storePath, opts, deadPort);
    const peakRss = relay.kernelPeakRss() ?? 0;
    const unexpectedAttempts = (await countRecords(storePath)) ?? -1;
    return {
      messages: opts.messages,
      messageBytes: factory.build('queue-0', 0).length,
      fill: { enqueueMs: round(enqueueMs), enqueueMsgsPerSec: round(opts.messages / (enqueueMs / 1000)), deferMs: round(deferMs), dbBytes },
      scans,
      relay: { startupMs: round(startupMs), rssAfterStartup, rssAfterPolls, peakRss, pollIntervalMs, pollsWatched: POLLS_WATCHED, idleCpuMsPerSec: round(idleCpuMsPerSec), unexpectedAttempts },
      cli,
    };
  } finally {
    await relay.stop();
  }
}

async function timeScans(storePath: string): Promise<Record<string, LatencySummary>> {
  const store = new SqliteStore(storePath);
  try {
    const ops: Record<string, () => Promise<unknown>> = {
      // What the scheduler asks after every pump: when is anything due?
      nextDueAt: () => store.nextDueAt(),
      // What the scheduler does every poll: claim, with nothing due.
      claimNothingDue: () => store.claim({ owner: 'bench-scan', limit: 160, leaseMs: 600_000 }),
      // `sealrelay queue` footer figures.
      queueStats: () => store.queueStats(),
      // The first page of `sealrelay queue`.
      listQueue100: () => store.listQueue({ limit: 100 }),
    };
    const out: Record<string, LatencySummary> = {};
    for (const [name, op] of Object.entries(ops)) {
      const samples: number[] = [];
      for (let i = 0; i < SCAN_REPEATS; i++) {
        const t0 = performance.now();
        await op();
        samples.push(performance.now() - t0);
      }
      out[name] = summarize(samples);
    }
    return out;
  } finally {
    await store.close();
  }
}

async function timeQueueCli(dir: string, storePath: string, opts: QueueScaleOptions, deadPort: number): Promise<QueueScaleResult['cli']> {
  // Its own config file naming the same store: the CLI only reads store.path.
  const configFile = join(dir, 'queue-cli.yaml');
  writeFileSync(
    configFile,
    stringify(sealRelayConfig({ dir, storePath, route: { domain: opts.domain, host: '127.0.0.1', port: deadPort }, caFile: opts.caFile, sessions: 1 })),
  );
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'sealrelay.js'), '--config', configFile, 'queue', '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const forget = onCleanup('sealrelay queue', () => child.kill('SIGKILL'));
  let lines = 0;
  let stderr = '';
  let peakRss = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  // The CLI exits as soon as it is done, so its VmHWM cannot be read afterwards: sample it.
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, readMemory(child.pid!)?.hwm ?? 0);
  }, 100);
  const killer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
  const exitCode = await new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  clearTimeout(killer);
  clearInterval(sampler);
  forget();
  const wallMs = round(performance.now() - t0);
  const ok = exitCode === 0;
  return { ok, wallMs, lines, peakRss, exitCode, error: ok ? null : stderr.trim().split('\n').slice(-5).join('\n') || `exited ${exitCode}` };
}

async function countRecords(storePath: string): Promise<number | null> {
  const store = new SqliteStore(storePath);
  try {
    return (await store.queryRecords({})).length;
  } catch {
    return null;
  } finally {
    await store.close();
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
