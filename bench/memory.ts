// bench/memory.ts — `npm run bench:memory [-- options]`: the relay's resident
// memory while N applications each submit one large message at once, and what it
// keeps afterwards. The issue's target: twenty simultaneous 25 MB submissions stay
// under 400 MB peak RSS, and idle RSS after them is within 50 MB of before.
//
// Each case gets a fresh receiver and a fresh relay (relay-under-test.ts: a real
// `node bin/sealrelay.js start` child, configured as shipped but for the bench
// route and policy), then:
//
//   1. warm-up     5 small messages submitted and delivered (JIT, first connections)
//   2. idle before the relay's RSS after --idle-s (3 s) idle: median of 5 samples
//   3. burst       N clients (nodemailer, one transport each, no pool, STARTTLS),
//                  all started at once, each submitting one --size message: a text
//                  part and a base64 attachment (message.ts)
//   4. watching    the relay's RSS every 100 ms from the burst until all N have
//                  landed at the receiver; the kernel's VmHWM (reset just before
//                  the burst through /proc/PID/clear_refs) is the true peak
//   5. idle after  --settle-s (10 s) later, the median of 5 samples again
//
// The RSS is the relay process's: ingress, the store thread and the delivery
// thread all live in it (the receiver and the clients are other processes, or
// this one). With --delivery paused the bench domain is routed to a port nobody
// listens on, so every attempt is deferred (the first retry is 5 minutes away)
// and the peak is what ingress and the store hold; with --delivery on it includes
// delivery. --relay-config sets any relay setting by dotted path, so the budgets
// (ingress.receive_budget_bytes, delivery.inflight_budget_bytes) can be varied
// to see which part holds what.
//
// Writes bench/results/memory-<ISO time>.json (rewritten after each case, so an
// interrupted run keeps what it measured) and prints a summary. Every child
// process is stopped on exit, error and Ctrl-C (cleanup.ts); every wait has a bound.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../src/config/load.ts';
import { runCleanups } from './cleanup.ts';
import { runFiles } from './run-files.ts';
import { epochMs } from './clock.ts';
import { freePort } from './free-port.ts';
import { machineInfo } from './machine.ts';
import { messageFactory } from './message.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { backgroundBusy, readMemory } from './proc-stats.ts';
import { makeReceiverTls, startReceiver, type Receiver, type ReceiverTls } from './receiver-process.ts';
import { startSealRelay, summarizeRelayLog, type RelayUnderTest } from './relay-under-test.ts';

const ROOT = join(import.meta.dirname, '..');
const BENCH_DOMAIN = 'bench.test';
const MB = 1e6;

/** The issue's targets (decimal MB, like the other benches). */
const TARGET = {
  peakRssBytes: 400 * MB,
  idleGrowthBytes: 50 * MB,
};
/** Messages delivered before the idle-before reading, not counted. */
const WARMUP_MESSAGES = 5;
const WARMUP_SIZE = 10 * 1024;
/** The relay's RSS is sampled this often during the burst (ms). */
const SAMPLE_INTERVAL_MS = 100;
/** An idle reading is the median of this many samples, this far apart. */
const IDLE_SAMPLES = 5;
const IDLE_SAMPLE_GAP_MS = 200;
/** Share of the cores busy before a case, with the bench idle, above which the summary warns. */
const NOISY_BACKGROUND = 0.1;
/** The attachment's part headers end here; what follows is the same in every message of a case. */
const BODY_MARKER = Buffer.from('filename="appointment.pdf"\r\n\r\n');

const USAGE = `usage: npm run bench:memory -- [options]

  --clients N            simultaneous submissions of the main case (default 20)
  --baseline-clients N   clients of the comparison case run after it; 0 skips it (default 1)
  --size BYTES           bytes per message (default 25000000: just under the default
                         ingress.max_message_bytes of 25 MiB, headers included)
  --delivery on|paused|both   on: routed to the receiver and delivered (default);
                         paused: routed to a dead port, so everything is deferred and only
                         ingress and the store hold memory; both: each case twice
  --relay-config KEY=VALUE    a relay setting by dotted path, value in YAML
                         (e.g. ingress.receive_budget_bytes=16777216); repeatable
  --relay-node-flags="FLAGS"  node flags for the relay process, with "=" since they start with a dash
                         (e.g. --relay-node-flags="--max-semi-space-size=2")
  --idle-s S             idle time before the "idle before" reading (default 3)
  --settle-s S           idle time after the last delivery before the "idle after" reading (default 10)
  --timeout-s S          bound on the submissions and on waiting for delivery, each (default 300)
  --out DIR              results directory (default bench/results)
  --keep                 keep the temp directory (configs, stores, relay logs)
  --check                exit 2 when a target is missed`;

type DeliveryMode = 'on' | 'paused';

interface Options {
  clients: number;
  baselineClients: number;
  size: number;
  delivery: DeliveryMode[];
  relayConfig: Record<string, unknown>;
  relayNodeFlags: string[];
  idleMs: number;
  settleMs: number;
  timeoutMs: number;
  out: string;
  keep: boolean;
  check: boolean;
}

function parseOptions(argv: string[]): Options {
  let values: ReturnType<typeof readArgs>['values'];
  try {
    values = readArgs(argv).values;
  } catch (err) {
    // e.g. "--relay-node-flags --x", which parseArgs wants as "--relay-node-flags=--x".
    usage((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: string, value: string | undefined, min: number, integer = true) => {
    const n = Number(value);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) usage(`--${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, not ${JSON.stringify(value)}`);
    return n;
  };
  const delivery = values.delivery;
  if (delivery !== 'on' && delivery !== 'paused' && delivery !== 'both') usage(`--delivery must be one of on, paused, both, not ${JSON.stringify(delivery)}`);
  return {
    clients: num('clients', values.clients, 1),
    baselineClients: num('baseline-clients', values['baseline-clients'], 0),
    size: num('size', values.size, 1024),
    delivery: delivery === 'both' ? ['on', 'paused'] : [delivery],
    relayConfig: Object.fromEntries(values['relay-config']!.map(relaySetting)),
    relayNodeFlags: values['relay-node-flags']!.split(/\s+/).filter(Boolean),
    idleMs: num('idle-s', values['idle-s'], 0, false) * 1000,
    settleMs: num('settle-s', values['settle-s'], 0, false) * 1000,
    timeoutMs: num('timeout-s', values['timeout-s'], 1, false) * 1000,
    out: resolve(values.out!),
    keep: values.keep!,
    check: values.check!,
  };
}

function readArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      clients: { type: 'string', default: '20' },
      'baseline-clients': { type: 'string', default: '1' },
      size: { type: 'string', default: '25000000' },
      delivery: { type: 'string', default: 'on' },
      'relay-config': { type: 'string', multiple: true, default: [] },
      'relay-node-flags': { type: 'string', default: '' },
      'idle-s': { type: 'string', default: '3' },
      'settle-s': { type: 'string', default: '10' },
      'timeout-s': { type: 'string', default: '300' },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
      keep: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
}

/** "a.b.c=VALUE" → ['a.b.c', VALUE parsed as YAML], so numbers stay numbers. */
function relaySetting(text: string): [string, unknown] {
  const eq = text.indexOf('=');
  const key = eq < 0 ? '' : text.slice(0, eq);
  if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$/i.test(key)) usage(`--relay-config expects KEY=VALUE with a dotted key such as ingress.receive_budget_bytes=16777216, not ${JSON.stringify(text)}`);
  try {
    return [key, parseYaml(text.slice(eq + 1)) as unknown];
  } catch (err) {
    usage(`--relay-config ${key}: the value is not YAML (${(err as Error).message})`);
  }
}

function usage(problem: string): never {
  console.error(`bench:memory: ${problem}\n\n${USAGE}`);
  process.exit(64);
}

interface IdleReading {
  /** Median of the samples, bytes. */
  rss: number;
  samples: number[];
  /** What the RSS is made of at the last sample: anonymous (heaps, buffers), file-backed (code, mapped files), shared memory. */
  kinds: RssKinds | null;
}

interface RssKinds {
  anon: number;
  file: number;
  shmem: number;
}

/** RssAnon / RssFile / RssShmem of /proc/PID/status, bytes: anonymous memory is what the relay allocated. */
function rssKinds(pid: number): RssKinds | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
}

interface CaseResult {
  label: string;
  clients: number;
  delivery: DeliveryMode;
  messageBytes: number;
  /** Share of all cores busy just before the case, with the bench idle (others' load). */
  backgroundBusy: number;
  /** The relay's effective memory settings, as its own config loader reads the file the bench wrote. */
  relaySettings: Record<string, unknown>;
  /** VmHWM before the burst (start-up and warm-up), before it was reset. */
  startupPeakRss: number;
  idleBefore: IdleReading;
  burst: {
    startedAt: string;
    /** Epoch ms of the burst's start: the zero of every "…Ms" figure. */
    startedAtMs: number;
    /** The kernel's VmHWM from just before the burst to the idle-after reading: the true peak. */
    peakRss: number;
    /** Whether /proc/PID/clear_refs reset VmHWM (else peakRss may be an earlier peak). */
    peakReset: boolean;
    sampledPeakRss: number;
    /** ms from the burst's start to the sampled peak. */
    sampledPeakAtMs: number;
    sampledPeakKinds: RssKinds | null;
    samples: number;
    /** Longest gap between two samples (the bench's event loop was busy sending). */
    maxSampleGapMs: number;
    accepted: number;
    failed: number;
    errors: string[];
    /** Per client, nodemailer's sendMail from the call to the 250 after DATA, ms. */
    submissionMs: LatencySummary;
    /** ms from the burst's start to the last 250. */
    allAcceptedMs: number;
    /** ms from the burst's start to the last message landing at the receiver (null: paused, or not all landed). */
    allDeliveredMs: number | null;
    landed: number;
    rssAtAllAccepted: number;
    rssAtAllDelivered: number | null;
  };
  idleAfter: IdleReading & { settleMs: number };
  /** idleAfter − idleBefore. */
  idleGrowthBytes: number;
  /** [ms since the burst's start, RSS MB] for every sample. */
  timeline: [number, number][];
  /** What the relay logged, by event. */
  relayEvents: Record<string, number>;
  phases: ReturnType<typeof relayPhases>;
  targets: { peak: Target; idle: Target };
}

interface Target {
  target: string;
  measured: string;
  met: boolean;
}

const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const { startedAt, resultFile, work } = runFiles({ out: opts.out, name: 'memory', tmpPrefix: 'sealrelay-memory-bench-', keep: opts.keep, log });

  const specs = [opts.clients, ...(opts.baselineClients > 0 ? [opts.baselineClients] : [])].flatMap((clients) =>
    opts.delivery.map((delivery) => ({ clients, delivery, label: `clients${clients}-delivery-${delivery}` })),
  );
  const { out: _out, keep: _keep, check: _check, ...recorded } = opts;
  const results = {
    scenario: 'memory',
    startedAt: startedAt.toISOString(),
    finishedAt: null as string | null,
    machine: machineInfo(ROOT),
    options: recorded,
    /** The relay inherits the bench's environment: allocator and Node settings that change its memory. */
    relayEnv: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(MALLOC_|NODE_OPTIONS$|UV_THREADPOOL_SIZE$)/.test(k))),
    message: 'bench/message.ts: text part + base64 attachment of random bytes, CRLF lines; submitted by nodemailer over STARTTLS, one transport per client, no pool',
    targets: {
      peakRss: `peak RSS < ${TARGET.peakRssBytes / MB} MB with ${opts.clients} simultaneous ${mbText(opts.size)} submissions`,
      idleGrowth: `idle RSS after − before ≤ ${TARGET.idleGrowthBytes / MB} MB`,
    },
    cases: [] as CaseResult[],
    errors: [] as { case: string; error: string }[],
  };
  const save = () => writeFileSync(resultFile, `${JSON.stringify(results, null, 2)}\n`);

  log(`machine: ${results.machine.nproc} cores, ${mbText(results.machine.memoryBytes)} RAM, node ${results.machine.node}; shared with others' work, so background load is recorded per case`);
  const tls = makeReceiverTls(work);
  for (const spec of specs) {
    try {
      const result = await runCase({ ...spec, dir: join(work, spec.label), tls, opts });
      results.cases.push(result);
      log(oneLine(result));
    } catch (err) {
      log(`${spec.label} failed: ${(err as Error).message}`);
      results.errors.push({ case: spec.label, error: (err as Error).message });
    }
    save();
  }
  results.finishedAt = new Date().toISOString();
  save();
  console.log(summary(results.cases, results.errors, opts, results.relayEnv));
  console.log(`\nresults: ${resultFile}`);
  if (results.errors.length) return 1;
  // The issue's target is about the main case (--clients); the others are for comparison.
  const main = results.cases[0];
  if (opts.check && (!main || !main.targets.peak.met || !main.targets.idle.met)) return 2;
  return 0;
}

async function runCase(c: { label: string; clients: number; delivery: DeliveryMode; dir: string; tls: ReceiverTls; opts: Options }): Promise<CaseResult> {
  const { opts } = c;
  mkdirSync(c.dir, { recursive: true });
  const busy = await backgroundBusy(1000);
  // Paused: nothing listens on the route's port, so every attempt is refused and deferred.
  const receiver = c.delivery === 'on' ? await startReceiver(c.tls) : null;
  let relay: RelayUnderTest | null = null;
  let measured: Awaited<ReturnType<typeof measure>>;
  try {
    const route = { domain: BENCH_DOMAIN, host: '127.0.0.1', port: receiver?.port ?? (await freePort()) };
    relay = await startSealRelay({ dir: c.dir, route, caFile: c.tls.caFile, sessions: c.clients, nodeFlags: opts.relayNodeFlags, settings: opts.relayConfig });
    log(`${c.label}: sealrelay ${relay.version} (pid ${relay.pid}) on port ${relay.port}, ${receiver ? `receiver on ${receiver.port}` : `route to dead port ${route.port}`}; cores ${pct(busy)} busy before`);
    measured = await measure(c, relay, receiver);
  } finally {
    await relay?.stop();
    await receiver?.stop();
  }
  // The relay's own account, read once it has stopped and flushed its log.
  const relayEvents = summarizeRelayLog(relay.logFile, c.label).events;
  const phases = relayPhases(relay.logFile, c.label, measured.burst.startedAtMs, measured.timeline);
  return { ...measured, backgroundBusy: round(busy), relaySettings: effectiveSettings(join(c.dir, 'sealrelay.yaml')), relayEvents, phases };
}

interface Phase {
  count: number;
  /** ms from the burst's start to the first and the last such log line, and the RSS sampled nearest to each (MB). */
  firstMs: number | null;
  lastMs: number | null;
  rssAtFirstMb: number | null;
  rssAtLastMb: number | null;
}

/**
 * When the relay committed the burst's messages (ingress.queued) and attempted them
 * (delivery.record), from its own log, on the burst's time base: which part of the
 * relay's work the RSS peak falls in. The log's times are wall-clock ms, like epochMs.
 */
function relayPhases(logFile: string, label: string, t0: number, timeline: readonly [number, number][]): { queued: Phase; attempted: Phase; outcomes: Record<string, number>; commitMs: LatencySummary | null } {
  const ofBurst = new RegExp(`"messageId":"<${label.replace(/[^\w-]/g, '\\$&')}-\\d+@`);
  const at: Record<'queued' | 'attempted', number[]> = { queued: [], attempted: [] };
  const outcomes: Record<string, number> = {};
  const commits: number[] = [];
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    // No log, no phases.
  }
  for (const line of text.split('\n')) {
    const event = /"event":"(ingress\.queued|delivery\.record)"/.exec(line)?.[1];
    if (!event || !ofBurst.test(line)) continue;
    const time = Date.parse(/"time":"([^"]+)"/.exec(line)?.[1] ?? '');
    if (!Number.isFinite(time)) continue;
    if (event === 'ingress.queued') {
      at.queued.push(time - t0);
      const commit = Number(/"commitMs":([\d.]+)/.exec(line)?.[1]);
      if (Number.isFinite(commit)) commits.push(commit);
    } else {
      at.attempted.push(time - t0);
      const outcome = /"outcome":"([a-z-]+)"/.exec(line)?.[1] ?? 'unknown';
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  }
  const phase = (times: number[]): Phase => {
    if (!times.length) return { count: 0, firstMs: null, lastMs: null, rssAtFirstMb: null, rssAtLastMb: null };
    const first = Math.min(...times);
    const last = Math.max(...times);
    return { count: times.length, firstMs: first, lastMs: last, rssAtFirstMb: sampleAt(timeline, first), rssAtLastMb: sampleAt(timeline, last) };
  };
  return { queued: phase(at.queued), attempted: phase(at.attempted), outcomes, commitMs: commits.length ? summarize(commits) : null };
}

async function measure(
  c: { label: string; clients: number; delivery: DeliveryMode; opts: Options },
  relay: RelayUnderTest,
  receiver: Receiver | null,
): Promise<Omit<CaseResult, 'backgroundBusy' | 'relaySettings' | 'relayEvents' | 'phases'>> {
  const { opts } = c;
  const pid = relay.pid;
  const rssNow = () => readMemory(pid)?.rss ?? 0;

  // 1. Warm-up.
  const small = messageFactory({ size: WARMUP_SIZE, domain: BENCH_DOMAIN });
  const warmLanded = receiver?.landed(WARMUP_MESSAGES, opts.timeoutMs);
  const warm = await submitAll(relay.port, WARMUP_MESSAGES, (i) => ({ from: small.sender, to: small.recipient(i), raw: small.build(`${c.label}-warmup-${i}`, i) }), opts.timeoutMs);
  if (warm.failed) throw new Error(`warm-up failed: ${warm.errors.join('; ')}`);
  if (warmLanded && (await warmLanded) === null) throw new Error(`warm-up messages did not all land within ${opts.timeoutMs} ms`);
  receiver?.reset();

  // 2. Idle before.
  const idleBefore = await idleReading(pid, rssNow, opts.idleMs);
  const startupPeakRss = readMemory(pid)?.hwm ?? 0;
  const peakReset = resetPeak(pid);

  // 3–4. The burst, watched.
  const factory = messageFactory({ size: opts.size, domain: BENCH_DOMAIN });
  const template = factory.build(`${c.label}-0`, 0);
  const bodyAt = template.indexOf(BODY_MARKER) + BODY_MARKER.length;
  if (bodyAt < BODY_MARKER.length) throw new Error('message.ts changed: the attachment marker is gone');
  // Each client streams its own head and the one shared body: the bench holds one copy, not N.
  const body = template.subarray(bodyAt);
  const heads = Array.from({ length: c.clients }, (_, i) => {
    const full = factory.build(`${c.label}-${i}`, i);
    return Buffer.from(full.subarray(0, full.indexOf(BODY_MARKER) + BODY_MARKER.length));
  });
  const messageBytes = heads[0]!.length + body.length;
  log(`${c.label}: idle RSS ${mbText(idleBefore.rss)}; ${c.clients} × ${mbText(messageBytes)} at once`);

  const timeline: [number, number][] = [];
  const t0 = epochMs();
  let sampledPeakKinds: RssKinds | null = null;
  let highest = 0;
  const take = () => {
    const rss = rssNow();
    if (!rss) return;
    timeline.push([Math.round(epochMs() - t0), rss]);
    if (rss > highest) {
      highest = rss;
      sampledPeakKinds = rssKinds(pid);
    }
  };
  take();
  // Sampled through the settle too: with delivery paused the attempts (and their copies) come after the last 250.
  const sampler = setInterval(take, SAMPLE_INTERVAL_MS);
  let allLanded: Promise<number | null> | null = null;
  let rssAtAllDelivered: number | null = null;
  let allDeliveredMs: number | null = null;
  let burst: Awaited<ReturnType<typeof submitAll>>;
  let idleAfter: IdleReading;
  try {
    allLanded = receiver?.landed(c.clients, opts.timeoutMs * 2) ?? null;
    burst = await submitAll(relay.port, c.clients, (i) => ({ from: factory.sender, to: factory.recipient(i), raw: Readable.from([heads[i]!, body]) }), opts.timeoutMs);
    take();
    // Only what was accepted can land: wait for the last one only when all were accepted.
    if (allLanded && burst.failed === 0) {
      const at = await allLanded;
      if (at !== null) {
        take();
        allDeliveredMs = round(at - t0);
        rssAtAllDelivered = rssNow();
      }
    }
    // 5. Idle after.
    log(`${c.label}: ${burst.accepted}/${c.clients} accepted${allDeliveredMs === null ? '' : `, all delivered at ${(allDeliveredMs / 1000).toFixed(1)} s`}; settling ${opts.settleMs / 1000} s`);
    idleAfter = await idleReading(pid, rssNow, opts.settleMs);
  } finally {
    clearInterval(sampler);
  }
  const allAcceptedMs = round(Math.max(...burst.endedAt) - t0);
  const rssAtAllAccepted = sampleAt(timeline, allAcceptedMs);
  // The kernel's peak over the whole window, burst and settle.
  const peakRss = readMemory(pid)?.hwm ?? 0;
  const report = await receiver?.report();
  const sampledPeak = timeline.reduce((best, s) => (s[1] > best[1] ? s : best), [0, 0]);
  const gaps = timeline.slice(1).map((s, i) => s[0] - timeline[i]![0]);
  const idleGrowthBytes = idleAfter.rss - idleBefore.rss;

  return {
    label: c.label,
    clients: c.clients,
    delivery: c.delivery,
    messageBytes,
    startupPeakRss,
    idleBefore,
    burst: {
      startedAt: new Date(t0).toISOString(),
      startedAtMs: t0,
      peakRss,
      peakReset,
      sampledPeakRss: sampledPeak[1],
      sampledPeakAtMs: sampledPeak[0],
      sampledPeakKinds,
      samples: timeline.length,
      maxSampleGapMs: gaps.length ? Math.max(...gaps) : 0,
      accepted: burst.accepted,
      failed: burst.failed,
      errors: burst.errors,
      submissionMs: summarize(burst.durationsMs),
      allAcceptedMs,
      allDeliveredMs,
      landed: report?.landed ?? 0,
      rssAtAllAccepted,
      rssAtAllDelivered,
    },
    idleAfter: { ...idleAfter, settleMs: opts.settleMs },
    idleGrowthBytes,
    timeline: timeline.map(([ms, rss]) => [ms, round(rss / MB)]),
    targets: {
      peak: {
        target: `peak RSS < ${TARGET.peakRssBytes / MB} MB`,
        measured: `${mbText(peakRss)} (VmHWM${peakReset ? '' : ', not reset: may include start-up'})`,
        met: burst.failed === 0 && peakRss < TARGET.peakRssBytes,
      },
      idle: {
        target: `idle RSS after − before ≤ ${TARGET.idleGrowthBytes / MB} MB`,
        measured: `${mbText(idleAfter.rss)} − ${mbText(idleBefore.rss)} = ${signedMb(idleGrowthBytes)}`,
        met: idleGrowthBytes <= TARGET.idleGrowthBytes,
      },
    },
  };
}

interface Submissions {
  accepted: number;
  failed: number;
  errors: string[];
  durationsMs: number[];
  endedAt: number[];
}

/**
 * n messages, each from its own nodemailer transport (no pool), all started at once.
 * STARTTLS is used because the relay offers it; the relay's certificate is a
 * self-signed development pair, hence rejectUnauthorized: false.
 */
async function submitAll(port: number, n: number, message: (i: number) => { from: string; to: string; raw: Buffer | Readable }, timeoutMs: number): Promise<Submissions> {
  const out: Submissions = { accepted: 0, failed: 0, errors: [], durationsMs: [], endedAt: [] };
  const one = async (i: number) => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      tls: { rejectUnauthorized: false },
      // A client held back by the relay's receive budget sees no progress for a while; the bench's own bound is timeoutMs.
      socketTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      connectionTimeout: timeoutMs,
    });
    const started = epochMs();
    try {
      const m = message(i);
      await transport.sendMail({ envelope: { from: m.from, to: [m.to] }, raw: m.raw });
      const ended = epochMs();
      out.accepted++;
      out.durationsMs.push(ended - started);
      out.endedAt.push(ended);
    } catch (err) {
      out.failed++;
      if (out.errors.length < 10) out.errors.push(`client ${i}: ${(err as Error).message}`);
      out.endedAt.push(epochMs());
    } finally {
      transport.close();
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const all = Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  const outcome = await Promise.race([all, bound]);
  clearTimeout(timer);
  if (outcome === 'timeout') throw new Error(`submissions not finished within ${timeoutMs} ms (${out.accepted} accepted, ${out.failed} failed)`);
  return out;
}

/** Waits `waitMs`, then the median of IDLE_SAMPLES readings. */
async function idleReading(pid: number, rss: () => number, waitMs: number): Promise<IdleReading> {
  await sleep(waitMs);
  const samples: number[] = [];
  for (let i = 0; i < IDLE_SAMPLES; i++) {
    if (i) await sleep(IDLE_SAMPLE_GAP_MS);
    samples.push(rss());
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { rss: sorted[Math.floor(sorted.length / 2)]!, samples, kinds: rssKinds(pid) };
}

/** Resets the kernel's VmHWM of `pid` to its current RSS (Linux ≥ 4.0; our own child, so allowed). */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** The RSS sample closest to `ms` (bytes). */
function sampleAt(timeline: readonly [number, number][], ms: number): number {
  let best = timeline[0] ?? [0, 0];
  for (const s of timeline) if (Math.abs(s[0] - ms) < Math.abs(best[0] - ms)) best = s;
  return best[1];
}

/** The memory-related settings the relay runs with: its own loader over the file the bench wrote, defaults filled in. */
function effectiveSettings(configFile: string): Record<string, unknown> {
  try {
    const config = parseConfig(readFileSync(configFile, 'utf8'), configFile);
    return {
      'ingress.max_message_bytes': config.ingress.max_message_bytes,
      'ingress.receive_budget_bytes': config.ingress.receive_budget_bytes,
      'ingress.max_connections': config.ingress.max_connections,
      'ingress.max_connections_per_ip': config.ingress.max_connections_per_ip,
      'delivery.concurrency': config.delivery.concurrency,
      'delivery.connections_per_host': config.delivery.connections_per_host,
      'delivery.inflight_budget_bytes': config.delivery.inflight_budget_bytes,
      'crypto.encryption_budget_bytes': config.crypto.encryption_budget_bytes,
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function oneLine(r: CaseResult): string {
  const b = r.burst;
  return (
    `${r.label}: peak ${mbText(b.peakRss)} (sampled ${mbText(b.sampledPeakRss)} at ${(b.sampledPeakAtMs / 1000).toFixed(1)} s), ` +
    `idle ${mbText(r.idleBefore.rss)} → ${mbText(r.idleAfter.rss)} (${signedMb(r.idleGrowthBytes)}), ` +
    `submission p50 ${(b.submissionMs.p50 / 1000).toFixed(1)} s max ${(b.submissionMs.max / 1000).toFixed(1)} s` +
    (b.allDeliveredMs === null ? '' : `, all delivered at ${(b.allDeliveredMs / 1000).toFixed(1)} s`) +
    (b.failed ? `, ${b.failed} FAILED` : '')
  );
}

function summary(cases: readonly CaseResult[], errors: readonly { case: string; error: string }[], opts: Options, relayEnv: Record<string, string | undefined>): string {
  const lines = ['', '=== SealRelay memory benchmark ==='];
  const extra = Object.entries(opts.relayConfig).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const env = Object.entries(relayEnv).map(([k, v]) => `${k}=${v}`);
  lines.push(`relay: as shipped${extra.length ? ` except ${extra.join(', ')}` : ''}${opts.relayNodeFlags.length ? `, node ${opts.relayNodeFlags.join(' ')}` : ''}${env.length ? `, env ${env.join(' ')}` : ''}; clients: nodemailer over STARTTLS, one transport each, all at once`);
  if (cases.length) {
    const header = ['case', 'message', 'idle before', 'peak (VmHWM)', 'sampled peak', 'at all 250s', 'idle after', 'after − before', 'submit p50/max', 'all delivered', 'failed'];
    const rows = cases.map((r) => [
      r.label,
      mbText(r.messageBytes),
      mbText(r.idleBefore.rss),
      mbText(r.burst.peakRss),
      `${mbText(r.burst.sampledPeakRss)} @${(r.burst.sampledPeakAtMs / 1000).toFixed(1)}s`,
      mbText(r.burst.rssAtAllAccepted),
      mbText(r.idleAfter.rss),
      signedMb(r.idleGrowthBytes),
      `${(r.burst.submissionMs.p50 / 1000).toFixed(1)}/${(r.burst.submissionMs.max / 1000).toFixed(1)} s`,
      r.burst.allDeliveredMs === null ? (r.delivery === 'paused' ? 'paused' : `no (${r.burst.landed})`) : `${(r.burst.allDeliveredMs / 1000).toFixed(1)} s`,
      String(r.burst.failed),
    ]);
    const all = [header, ...rows];
    const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
    lines.push('', ...all.map((row) => '  ' + row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()));
    lines.push(`  (MB = 10^6 bytes; RSS of the relay process; sampled every ${SAMPLE_INTERVAL_MS} ms; idle = median of ${IDLE_SAMPLES} samples after ${opts.idleMs / 1000} s / ${opts.settleMs / 1000} s idle; times from the burst's start)`);
    lines.push('', 'made of (anonymous = heaps and buffers the relay allocated; file = code and mapped files):');
    const kinds = (k: RssKinds | null) => (k ? `anon ${mbText(k.anon)}, file ${mbText(k.file)}, shmem ${mbText(k.shmem)}` : '-');
    for (const r of cases) lines.push(`  ${r.label}: idle before ${kinds(r.idleBefore.kinds)}; sampled peak ${kinds(r.burst.sampledPeakKinds)}; idle after ${kinds(r.idleAfter.kinds)}`);
    lines.push('', 'when (from the relay\'s log, seconds from the burst\'s start, RSS sampled nearest):');
    for (const r of cases) lines.push(`  ${r.label}: ${phaseText('committed', r.phases.queued)}; ${phaseText('attempted', r.phases.attempted)} (${Object.entries(r.phases.outcomes).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'})${r.phases.commitMs ? `; commit p50 ${Math.round(r.phases.commitMs.p50)} ms, max ${Math.round(r.phases.commitMs.max)} ms` : ''}`);
    const noisy = cases.filter((r) => r.backgroundBusy > NOISY_BACKGROUND);
    if (noisy.length) lines.push(`  NOTE: the cores were ${noisy.map((r) => `${pct(r.backgroundBusy)} busy before ${r.label}`).join(', ')} with the bench idle: the machine is shared, so times (not memory) are skewed`);
    const main = cases[0]!;
    lines.push('', `targets (${main.label}):`);
    for (const t of [main.targets.peak, main.targets.idle]) lines.push(`  [${t.met ? 'met' : 'MISSED'}] ${t.target}: ${t.measured}`);
  }
  for (const e of errors) lines.push(`ERROR in ${e.case}: ${e.error}`);
  return lines.join('\n');
}

function phaseText(what: string, p: Phase): string {
  if (p.firstMs === null || p.lastMs === null) return `${what}: none`;
  return `${p.count} ${what} ${(p.firstMs / 1000).toFixed(1)}–${(p.lastMs / 1000).toFixed(1)} s (RSS ${Math.round(p.rssAtFirstMb ?? 0)}–${Math.round(p.rssAtLastMb ?? 0)} MB)`;
}

const round = (x: number): number => Math.round(x * 100) / 100;
const pct = (x: number): string => `${Math.round(x * 100)}%`;
const mbText = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;
const signedMb = (bytes: number): string => `${bytes >= 0 ? '+' : '−'}${(Math.abs(bytes) / MB).toFixed(1)} MB`;

const code = await main().catch((err: unknown) => {
  console.error('bench:memory: unexpected error:', err);
  return 1;
});
runCleanups();
process.exit(code);
