// bench/run.ts — `npm run bench [-- options]`: the benchmark of the README's
// performance claims, measured rather than remembered.
//
//   throughput  for each way an application submits (a new connection per
//               message; sessions kept open):
//               (1) SealRelay at full speed: N messages of S bytes from K senders
//               (2) with --compare postfix: the same load through Postfix as it
//                   ships (stock) and with TLS connection reuse (tuned), and the
//                   ratios SealRelay / tuned Postfix
//               then (3) SealRelay paced at half of its own peak with a new
//               connection per message: the accept latency an application sees
//               on a relay with headroom
//   queue       (4) 100,000 deferred messages: the relay's RSS and the queue-scan times
//
// The receiving MX is a real Postfix writing to a Maildir (receiver-postfix.ts);
// `--receiver sink` swaps in a discarding smtp-server to measure the relays alone.
// Each run gets a fresh receiver and relay. Results go to
// bench/results/<scenario>-<ISO time>.json and bench/results/latest.json,
// rewritten after every run so an interrupted benchmark keeps what it measured.
// Everything it starts is stopped on exit, error or Ctrl-C (cleanup.ts); every
// wait has a timeout.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runCleanups } from './cleanup.ts';
import { runFiles } from './run-files.ts';
import { machineInfo } from './machine.ts';
import { postfixUnavailable, TUNED_MAIN_CF, TUNED_MASTER_CF } from './postfix.ts';
import { runQueueScale, type QueueScaleResult } from './queue-scale.ts';
import { makeReceiverTls } from './receiver-process.ts';
import { smtpSourceUnavailable } from './smtp-source.ts';
import { schedTraceUnavailable } from './sched-trace.ts';
import type { LatencySummary } from './percentiles.ts';
import { QUIET_BELOW, runThroughput, type GeneratorKind, type ReceiverKind, type RelayKind, type SubmitStyle, type ThroughputResult } from './throughput.ts';

const ROOT = join(import.meta.dirname, '..');
const BENCH_DOMAIN = 'bench.test';

/** The issue's targets. */
const TARGET = {
  /** End-to-end msgs/s of SealRelay over tuned Postfix's, same run, each submission style. */
  endToEndRatio: 1.5,
  /** The relay's own CPU per message over tuned Postfix's, same run, each submission style. */
  relayCpuRatio: 0.5,
  /** p99 accept latency at half of peak load with a new connection per message, ms. */
  halfLoadP99Ms: 20,
  /** Peak RSS with 100,000 messages queued, bytes (300 MB, decimal). */
  queuePeakRssBytes: 300e6,
};
/** The issue's reference: tuned Postfix 3.7 end to end with a receiving Postfix (smtp-source, 2,000 × 10 KB, 10 sessions). */
const REFERENCE_TUNED_POSTFIX: Record<SubmitStyle, string> = { 'per-message': '226 msgs/s', session: '242–277 msgs/s' };
/** Share of the cores busy before a run, with the bench idle, above which the summary warns. */
const NOISY_BACKGROUND = QUIET_BELOW;
const STYLES = ['per-message', 'session'] as const;

const USAGE = `usage: npm run bench -- [options]

  --scenario throughput|queue|all   what to run (default all)
  --receiver postfix|sink  the receiving MX: a real Postfix writing to a Maildir (default),
                        or a discarding smtp-server (the relay alone)
  --submit per-message|session|both  how the senders submit: a new connection per message,
                        sessions kept open, or each in turn (default both)
  --generator smtp-source|node  load generator of the full-speed runs (default smtp-source,
                        Postfix's, plaintext and untimed; node times every message)
  --compare postfix     also run each load through Postfix, stock and tuned (TLS connection reuse)
  --messages N          messages per throughput run (default 2000)
  --size BYTES          message size (default 10240)
  --sessions K          parallel senders (default 10)
  --warmup W            messages delivered before each measured run, not counted (default 100)
  --no-half             skip the half-load latency runs
  --half-repeats N      half-load runs to make; the median one is judged (default 5)
  --half-rate R         pace the half-load runs at R msgs/s instead of half of this run's peak
                        (to compare two builds at the same load)
  --submit-tls plain|starttls   submission hop of the node generator (default plain, as smtp-source)
  --postfix-tls verify|encrypt  Postfix's smtp_tls_security_level (default verify, like forced+ca)
  --queue-messages N    deferred messages for the queue scenario (default 100000)
  --queue-size BYTES    their size (default: --size)
  --timeout-s S         bound on each load and each wait for delivery (default 300)
  --quiet-wait-s S      before each run, wait up to S for other processes to leave the cores idle (default 120)
  --out DIR             results directory (default bench/results)
  --keep                keep the temp directory (stores, configs, logs, Maildirs)
  --profile DIR         run SealRelay under --cpu-prof, one .cpuprofile per run in DIR (skews its figures)
  --sched-trace         after the half-load runs, one more at the same rate traced with perf sched:
                        how long the relay's threads waited for a core, its fsync times
                        (sched-trace.ts; root and linux-perf; that run is not judged)
  --relay-node-flags F  extra node flags for SealRelay, space-separated (an experiment: recorded
                        in the results as options.relayNodeFlags, and the summary says so)
  --check               exit 2 when a target is missed`;

interface Options {
  scenario: 'throughput' | 'queue' | 'all';
  receiver: ReceiverKind;
  styles: SubmitStyle[];
  generator: GeneratorKind;
  messages: number;
  size: number;
  sessions: number;
  warmup: number;
  compare: 'postfix' | null;
  half: boolean;
  /** Half-load runs to make; the target is judged on the median one. */
  halfRepeats: number;
  /** Pace of the half-load runs, msgs/s; null: half of this run's peak. */
  halfRate: number | null;
  submitTls: 'starttls' | 'plain';
  postfixTls: 'verify' | 'encrypt';
  queueMessages: number;
  queueSize: number;
  timeoutMs: number;
  quietWaitMs: number;
  out: string;
  keep: boolean;
  check: boolean;
  profile: string | null;
  schedTrace: boolean;
  /** Extra node flags for the SealRelay process (an experiment, not the shipped relay). */
  relayNodeFlags: string[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', default: 'all' },
      receiver: { type: 'string', default: 'postfix' },
      submit: { type: 'string', default: 'both' },
      generator: { type: 'string', default: 'smtp-source' },
      messages: { type: 'string', default: '2000' },
      size: { type: 'string', default: '10240' },
      sessions: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '100' },
      compare: { type: 'string' },
      'no-half': { type: 'boolean', default: false },
      'half-repeats': { type: 'string', default: '5' },
      'half-rate': { type: 'string' },
      'submit-tls': { type: 'string', default: 'plain' },
      'postfix-tls': { type: 'string', default: 'verify' },
      'queue-messages': { type: 'string', default: '100000' },
      'queue-size': { type: 'string' },
      'timeout-s': { type: 'string', default: '300' },
      'quiet-wait-s': { type: 'string', default: '120' },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
      keep: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      profile: { type: 'string' },
      'relay-node-flags': { type: 'string', default: '' },
      'sched-trace': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, value: string | undefined, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}`);
    return n;
  };
  const oneOf = <T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T => {
    if (!allowed.includes(value as T)) usage(`--${name} must be one of ${allowed.join(', ')}`);
    return value as T;
  };
  const size = int('size', values.size, 512);
  const submit = oneOf('submit', values.submit, ['per-message', 'session', 'both'] as const);
  const generator = oneOf('generator', values.generator, ['smtp-source', 'node'] as const);
  const submitTls = oneOf('submit-tls', values['submit-tls'], ['starttls', 'plain'] as const);
  if (generator === 'smtp-source' && submitTls === 'starttls') usage('smtp-source cannot speak STARTTLS: --submit-tls starttls needs --generator node');
  return {
    scenario: oneOf('scenario', values.scenario, ['throughput', 'queue', 'all'] as const),
    receiver: oneOf('receiver', values.receiver, ['postfix', 'sink'] as const),
    styles: submit === 'both' ? [...STYLES] : [submit],
    generator,
    messages: int('messages', values.messages, 1),
    size,
    sessions: int('sessions', values.sessions, 1),
    warmup: int('warmup', values.warmup, 0),
    compare: values.compare === undefined ? null : oneOf('compare', values.compare, ['postfix'] as const),
    half: !values['no-half'],
    halfRepeats: int('half-repeats', values['half-repeats'], 1),
    halfRate: values['half-rate'] === undefined ? null : int('half-rate', values['half-rate'], 1),
    submitTls,
    postfixTls: oneOf('postfix-tls', values['postfix-tls'], ['verify', 'encrypt'] as const),
    queueMessages: int('queue-messages', values['queue-messages'], 1),
    queueSize: values['queue-size'] === undefined ? size : int('queue-size', values['queue-size'], 512),
    timeoutMs: int('timeout-s', values['timeout-s'], 1) * 1000,
    quietWaitMs: int('quiet-wait-s', values['quiet-wait-s'], 0) * 1000,
    out: resolve(values.out!),
    keep: values.keep!,
    check: values.check!,
    profile: values.profile === undefined ? null : resolve(values.profile),
    schedTrace: values['sched-trace'],
    relayNodeFlags: values['relay-node-flags'].split(/\s+/).filter(Boolean),
  };
}

function usage(problem: string): never {
  console.error(`bench: ${problem}\n\n${USAGE}`);
  process.exit(64);
}

/** SealRelay against one Postfix variant, one submission style, same run. */
interface Ratios {
  /** SealRelay end-to-end msgs/s ÷ Postfix's. */
  endToEnd: number | null;
  submission: number | null;
  /** SealRelay's own CPU per message ÷ Postfix's (relay process trees only). */
  relayCpu: number | null;
}

interface Results {
  tool: 'sealrelay-bench';
  startedAt: string;
  finishedAt: string | null;
  machine: ReturnType<typeof machineInfo>;
  options: Omit<Options, 'out' | 'keep' | 'check' | 'profile'>;
  /** What "tuned" adds to the stock Postfix relay, verbatim. */
  postfixTuning: { mainCf: string[]; masterCf: string[] };
  /** The environment the relay under test inherits that changes how it runs (relay-under-test.ts defaults MALLOC_MMAP_THRESHOLD_ when absent). */
  relayEnv: Record<string, string | undefined>;
  throughput: {
    /** Full-speed runs by label: sealrelay-<style>, postfix-stock-<style>, postfix-tuned-<style>. */
    runs: Record<string, ThroughputResult>;
    /** The median (by p99 accept latency) of the half-load runs. */
    half?: ThroughputResult;
    halfRuns?: { p50: number | null; p99: number | null; ratePerSec: number | null; failed: number }[];
    /** --compare postfix: tuned Postfix under the same paced load, the run with the median p99, and all its runs (not judged). */
    halfTuned?: ThroughputResult;
    halfTunedRuns?: { p50: number | null; p99: number | null; ratePerSec: number | null; failed: number }[];
    /** --sched-trace: one more half-load run, traced (sched-trace.ts), not judged. */
    traced?: ThroughputResult;
    /** Why Postfix was not measured, when asked to and it could not be. */
    postfixSkipped?: string;
  };
  /** Per submission style: SealRelay over tuned and over stock Postfix. */
  comparison: Partial<Record<SubmitStyle, { vsTuned: Ratios | null; vsStock: Ratios | null; referenceTunedPostfix: string }>>;
  queue?: QueueScaleResult;
  targets: Record<string, { target: string; measured: string; met: boolean | null }>;
  errors: { run: string; error: string }[];
}

const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const { out, keep: _keep, check: _check, profile: _profile, ...recorded } = opts;
  if (opts.scenario !== 'queue') {
    // Fail before anything starts, not after the first half hour.
    const missing = [
      opts.receiver === 'postfix' ? postfixUnavailable() : null,
      opts.generator === 'smtp-source' ? smtpSourceUnavailable() : null,
      opts.schedTrace ? schedTraceUnavailable() : null,
    ].filter((x) => x !== null);
    if (missing.length) usage(`${missing.join('; ')} (or use --receiver sink / --generator node)`);
  }
  const { startedAt, resultFile, work } = runFiles({ out, name: opts.scenario, tmpPrefix: 'sealrelay-bench-', keep: opts.keep, log });

  const results: Results = {
    tool: 'sealrelay-bench',
    startedAt: startedAt.toISOString(),
    finishedAt: null,
    machine: machineInfo(ROOT),
    options: recorded,
    postfixTuning: { mainCf: TUNED_MAIN_CF, masterCf: TUNED_MASTER_CF },
    relayEnv: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(MALLOC_|NODE_OPTIONS$|UV_THREADPOOL_SIZE$)/.test(k))),
    throughput: { runs: {} },
    comparison: {},
    targets: {},
    errors: [],
  };
  const save = () => {
    results.comparison = compareAll(results.throughput.runs, opts.styles);
    results.targets = evaluateTargets(results);
    const text = `${JSON.stringify(results, null, 2)}\n`;
    writeFileSync(resultFile, text);
    writeFileSync(join(out, 'latest.json'), text);
  };
  const attempt = async <T>(run: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      log(`${run} failed: ${(err as Error).message}`);
      results.errors.push({ run, error: (err as Error).message });
      return undefined;
    } finally {
      save();
    }
  };

  log(`machine: ${results.machine.nproc} cores, node ${results.machine.node}, postfix ${results.machine.postfix ?? 'not installed'}`);
  const tls = makeReceiverTls(work);
  const common = {
    dir: work,
    tls,
    domain: BENCH_DOMAIN,
    receiver: opts.receiver,
    messages: opts.messages,
    size: opts.size,
    sessions: opts.sessions,
    warmup: opts.warmup,
    submitTls: opts.submitTls,
    timeoutMs: opts.timeoutMs,
    quietWaitMs: opts.quietWaitMs,
    postfixTlsLevel: opts.postfixTls,
  };
  const profiled = (label: string) => ({
    nodeFlags: [...opts.relayNodeFlags, ...(opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.profile, label)}`] : [])],
  });

  if (opts.scenario !== 'queue') {
    const relays: RelayKind[] = ['sealrelay'];
    if (opts.compare === 'postfix') {
      const why = postfixUnavailable();
      if (why) {
        results.throughput.postfixSkipped = why;
        log(`postfix not measured: ${why}`);
      } else relays.push('postfix-stock', 'postfix-tuned');
    }
    // The relays take turns within a style, so a change in others' load hits them alike.
    for (const style of opts.styles) {
      for (const relay of relays) {
        const label = `${relay}-${style}`;
        const run = await attempt(label, () => runThroughput({ ...common, relay, label, style, generator: opts.generator, ...profiled(label) }, log));
        if (run) {
          results.throughput.runs[label] = run;
          log(oneLine(run));
        }
      }
    }

    // The latency target is about a new connection per message, at half of SealRelay's own peak in that style.
    const halfStyle: SubmitStyle = opts.styles.includes('per-message') ? 'per-message' : 'session';
    const peak = results.throughput.runs[`sealrelay-${halfStyle}`];
    const peakRate = peak?.endToEnd.msgsPerSec ?? peak?.submission.msgsPerSec ?? 0;
    if (opts.half && peakRate > 0) {
      // A p99 on a shared 2-core machine moves from run to run: repeat the half-load
      // run and judge the median run (all of them are kept in the results).
      const rate = opts.halfRate ?? peakRate / 2;
      // With --compare postfix, tuned Postfix takes the same paced load in turn: what this
      // machine allows another relay at that rate (not judged).
      const halfRelays: RelayKind[] = relays.includes('postfix-tuned') ? ['sealrelay', 'postfix-tuned'] : ['sealrelay'];
      const halves = new Map<RelayKind, ThroughputResult[]>(halfRelays.map((r) => [r, []]));
      for (let i = 1; i <= opts.halfRepeats; i++) {
        for (const relay of halfRelays) {
          const label = `${relay}-${halfStyle}-half${opts.halfRepeats > 1 ? `#${i}` : ''}`;
          // Paced and timed: the Node generator, whatever drove the full-speed runs.
          const half = await attempt(label, () => runThroughput({ ...common, relay, label, style: halfStyle, generator: 'node', ratePerSec: rate, ...profiled(label) }, log));
          if (half) {
            log(oneLine(half));
            halves.get(relay)!.push(half);
          }
        }
      }
      const median = (runs: ThroughputResult[]) =>
        [...runs].sort((a, b) => (a.acceptLatencyMs?.p99 ?? Infinity) - (b.acceptLatencyMs?.p99 ?? Infinity))[Math.floor((runs.length - 1) / 2)];
      const brief = (runs: ThroughputResult[]) => runs.map((h) => ({ p50: h.acceptLatencyMs?.p50 ?? null, p99: h.acceptLatencyMs?.p99 ?? null, ratePerSec: h.load.ratePerSec, failed: h.failed }));
      results.throughput.half = median(halves.get('sealrelay')!);
      results.throughput.halfRuns = brief(halves.get('sealrelay')!);
      const tuned = halves.get('postfix-tuned');
      if (tuned?.length) {
        results.throughput.halfTuned = median(tuned);
        results.throughput.halfTunedRuns = brief(tuned);
      }
      if (opts.schedTrace) {
        const label = `sealrelay-${halfStyle}-half-traced`;
        const traced = await attempt(label, () =>
          runThroughput({ ...common, relay: 'sealrelay', label, style: halfStyle, generator: 'node', ratePerSec: rate, schedTrace: true, ...profiled(label) }, log),
        );
        if (traced) {
          log(oneLine(traced));
          results.throughput.traced = traced;
        }
      }
    }
    save();
  }

  if (opts.scenario !== 'throughput') {
    results.queue = await attempt('queue', () =>
      runQueueScale({ dir: join(work, 'queue'), messages: opts.queueMessages, size: opts.queueSize, domain: BENCH_DOMAIN, caFile: tls.caFile }, log),
    );
  }

  results.finishedAt = new Date().toISOString();
  save();
  console.log(summary(results));
  console.log(`\nresults: ${resultFile}\n         ${join(out, 'latest.json')}`);
  if (results.errors.length) return 1;
  if (opts.check && Object.values(results.targets).some((t) => t.met === false)) return 2;
  return 0;
}

function ratios(seal: ThroughputResult | undefined, postfix: ThroughputResult | undefined): Ratios | null {
  if (!seal || !postfix) return null;
  const ratio = (a: number | null, b: number | null) => (a && b ? Math.round((a / b) * 100) / 100 : null);
  return {
    endToEnd: ratio(seal.endToEnd.msgsPerSec, postfix.endToEnd.msgsPerSec),
    submission: ratio(seal.submission.msgsPerSec, postfix.submission.msgsPerSec),
    relayCpu: ratio(seal.cpu.relay.msPerMsg, postfix.cpu.relay.msPerMsg),
  };
}

function compareAll(runs: Record<string, ThroughputResult>, styles: SubmitStyle[]): Results['comparison'] {
  const out: Results['comparison'] = {};
  for (const style of styles) {
    const seal = runs[`sealrelay-${style}`];
    const tuned = runs[`postfix-tuned-${style}`];
    const stock = runs[`postfix-stock-${style}`];
    if (!seal || (!tuned && !stock)) continue;
    out[style] = { vsTuned: ratios(seal, tuned), vsStock: ratios(seal, stock), referenceTunedPostfix: REFERENCE_TUNED_POSTFIX[style] };
  }
  return out;
}

function evaluateTargets(r: Results): Results['targets'] {
  const targets: Results['targets'] = {};
  for (const style of r.options.styles) {
    if (!r.throughput.runs[`sealrelay-${style}`]) continue;
    const vs = r.comparison[style]?.vsTuned ?? null;
    const how = styleText(style);
    targets[`endToEndVsTunedPostfix/${style}`] = {
      target: `end to end ≥ ${TARGET.endToEndRatio}× tuned Postfix, ${how}`,
      measured: vs?.endToEnd ? `${vs.endToEnd}× (${rate(r, `sealrelay-${style}`)} vs ${rate(r, `postfix-tuned-${style}`)})` : 'tuned Postfix not measured (--compare postfix)',
      met: vs?.endToEnd ? vs.endToEnd >= TARGET.endToEndRatio : null,
    };
    targets[`relayCpuVsTunedPostfix/${style}`] = {
      target: `the relay's own CPU per message ≤ ${TARGET.relayCpuRatio}× tuned Postfix's, ${how}`,
      measured: vs?.relayCpu ? `${vs.relayCpu}× (${cpu(r, `sealrelay-${style}`)} vs ${cpu(r, `postfix-tuned-${style}`)} ms/msg)` : 'tuned Postfix not measured (--compare postfix)',
      met: vs?.relayCpu ? vs.relayCpu <= TARGET.relayCpuRatio : null,
    };
  }
  const half = r.throughput.half;
  if (half) {
    const p99 = half.acceptLatencyMs?.p99 ?? null;
    const perMessage = half.load.style === 'per-message';
    targets.halfLoadP99 = {
      target: `p99 accept latency ≤ ${TARGET.halfLoadP99Ms} ms at half of peak, a new connection per message`,
      measured:
        `${p99 ?? '-'} ms at ${half.load.ratePerSec} msgs/s, ${styleText(half.load.style)}, median of ${r.throughput.halfRuns?.length ?? 1} runs: ` +
        `${(r.throughput.halfRuns ?? []).map((h) => h.p99 ?? '-').join(', ')} ms` +
        (half.failed ? `; ${half.failed} failed` : '') +
        (r.throughput.halfTunedRuns ? `; tuned Postfix at the same rate: ${r.throughput.halfTunedRuns.map((h) => h.p99 ?? '-').join(', ')} ms` : ''),
      // Measured on kept-open sessions only (--submit session), it says nothing about the target.
      met: perMessage && p99 !== null ? half.failed === 0 && p99 <= TARGET.halfLoadP99Ms : null,
    };
  }
  if (r.queue) {
    targets.queuePeakRss = {
      target: `peak RSS ≤ ${TARGET.queuePeakRssBytes / 1e6} MB with ${r.queue.messages} messages queued`,
      measured: mb(r.queue.relay.peakRss),
      met: r.queue.relay.peakRss <= TARGET.queuePeakRssBytes,
    };
  }
  return targets;
}

function styleText(style: SubmitStyle): string {
  return style === 'per-message' ? 'a new connection per message' : 'sessions kept open';
}

function rate(r: Results, label: string): string {
  const e2e = r.throughput.runs[label]?.endToEnd.msgsPerSec;
  return e2e ? `${e2e} msgs/s` : '-';
}

function cpu(r: Results, label: string): string {
  return String(r.throughput.runs[label]?.cpu.relay.msPerMsg ?? '-');
}

function oneLine(t: ThroughputResult): string {
  const connect = t.connectLatencyMs ? `; connect → ready p50 ${t.connectLatencyMs.p50} ms p99 ${t.connectLatencyMs.p99} ms` : '';
  const acc = t.acceptLatencyMs ? `accept p50 ${t.acceptLatencyMs.p50} ms p99 ${t.acceptLatencyMs.p99} ms${commitPart(t)}${connect}` : 'accept latency not timed';
  return (
    `${t.label}: submission ${t.submission.msgsPerSec} msgs/s, end to end ${t.endToEnd.msgsPerSec ?? 'incomplete'} msgs/s, ${acc}, ` +
    `CPU ms/msg relay ${t.cpu.relay.msPerMsg} receiver ${t.cpu.receiver.msPerMsg} generator ${t.cpu.loadGenerator.msPerMsg} machine ${t.cpu.machine.msPerMsg}, ` +
    `peak ${mb(t.memory.peakBytes)} (${t.memory.peakKind}), cores busy ${pct(t.cpu.machineBusy)} (before: ${pct(t.cpu.backgroundBusy)})` +
    (t.failed ? `, ${t.failed} FAILED` : '')
  );
}

/** The relay's own commit time (SealRelay logs it per message), beside the accept latency it is part of. */
function commitPart(t: ThroughputResult): string {
  const commit = 'commitMs' in t.relayLog ? (t.relayLog.commitMs as { p50: number; p99: number } | null) : null;
  return commit ? ` (of which commit p50 ${commit.p50} ms p99 ${commit.p99} ms)` : '';
}

function summary(r: Results): string {
  const lines: string[] = ['', '=== SealRelay benchmark ==='];
  const m = r.machine;
  lines.push(`machine: ${m.nproc} cores (${m.cpuModel}), ${mb(m.memoryBytes)} RAM, ${m.kernel}, node ${m.node}, OpenSSL ${m.openssl}, SQLite ${m.sqlite}, postfix ${m.postfix ?? '-'}, tree ${m.commit ?? '-'}`);
  const o = r.options;
  const runs = [...Object.values(r.throughput.runs), ...[r.throughput.half, r.throughput.halfTuned].filter((t) => t !== undefined)];
  if (runs.length) {
    const receiver = runs[0]!.receiver.name;
    lines.push(
      `load: ${o.messages} messages × ${o.size} B from ${o.sessions} senders, warm-up ${o.warmup}; receiving MX: ${receiver}; ` +
        `delivery over TLS 1.3, certificate verified`,
    );
    if (o.relayNodeFlags.length) lines.push(`SealRelay ran with extra node flags (an experiment, not as shipped): ${o.relayNodeFlags.join(' ')}`);
    lines.push('');
    const header = ['run', 'how', 'submit/s', 'e2e/s', 'acc p50', 'acc p99', 'CPU ms/msg: relay', 'receiver', 'generator', 'machine', 'busy', 'peak mem', 'conns', 'TLS', 'failed'];
    const rows = runs.map((t) => [
      t.label + (t.load.ratePerSec ? ` @${t.load.ratePerSec}/s` : ''),
      `${t.load.style === 'per-message' ? 'conn/msg' : 'sessions'} ${t.load.generator}${t.load.submitTls === 'starttls' ? ' +TLS' : ''}`,
      String(t.submission.msgsPerSec),
      t.endToEnd.msgsPerSec === null ? `incomplete (${t.endToEnd.landed})` : String(t.endToEnd.msgsPerSec),
      t.acceptLatencyMs ? `${t.acceptLatencyMs.p50} ms` : '-',
      t.acceptLatencyMs ? `${t.acceptLatencyMs.p99} ms` : '-',
      String(t.cpu.relay.msPerMsg),
      String(t.cpu.receiver.msPerMsg),
      String(t.cpu.loadGenerator.msPerMsg),
      String(t.cpu.machine.msPerMsg),
      pct(t.cpu.machineBusy),
      `${mb(t.memory.peakBytes)}${t.memory.peakKind === 'VmHWM' ? '' : ' (PSS)'}`,
      String(t.deliveryHop.connectionsWithMail),
      Object.entries(t.deliveryHop.tlsConnections).map(([k, v]) => `${k}×${v}`).join(' ') + (t.deliveryHop.plaintextMessages ? ` +${t.deliveryHop.plaintextMessages} PLAIN` : ''),
      String(t.failed),
    ]);
    lines.push(...table([header, ...rows]));
    lines.push(
      '  (e2e = last message landed at the receiver; acc = accept latency, timed by the node generator only; CPU per landed message of each',
      '   process tree apart, machine = all cores busy, others\' load included; busy = share of the cores; conns = delivery connections that carried mail)',
    );
    const noisy = runs.filter((t) => t.cpu.backgroundBusy > NOISY_BACKGROUND);
    if (noisy.length) lines.push(`  WARNING: the cores were ${noisy.map((t) => `${pct(t.cpu.backgroundBusy)} busy before ${t.label}`).join(', ')} with the bench idle: someone else's load skews these figures`);
  }
  const traced = r.throughput.traced?.schedTrace;
  if (traced) {
    const ms = (x: LatencySummary) => `p50 ${x.p50} ms, p99 ${x.p99} ms, max ${x.max} ms (${x.count})`;
    const main = traced.relayThreads.find((t) => t.main);
    lines.push(
      '',
      `traced half-load run (${r.throughput.traced!.label}, perf sched; accept p99 ${r.throughput.traced!.acceptLatencyMs?.p99 ?? '-'} ms, not judged):`,
      `  waiting for a core, each time a relay thread got one: ${ms(traced.relaySchedDelayMs)}`,
      ...(main ? [`    its main thread (ingress): ${ms(main.schedDelayMs)}`] : []),
      `    every task on the machine: ${ms(traced.machineSchedDelayMs)}`,
      `  the relay's fsync and fdatasync calls (the store's commits and checkpoints): ${ms(traced.relayFsyncMs)}`,
    );
  }
  if (r.throughput.postfixSkipped) lines.push(`postfix: not measured — ${r.throughput.postfixSkipped}`);
  for (const [style, c] of Object.entries(r.comparison)) {
    const part = (name: string, x: Ratios | null) => (x ? `${name}: end to end ${x.endToEnd ?? '-'}×, submission ${x.submission ?? '-'}×, relay CPU per message ${x.relayCpu ?? '-'}×` : null);
    const parts = [part('vs tuned Postfix', c.vsTuned), part('vs stock Postfix', c.vsStock)].filter((x) => x !== null);
    lines.push('', `SealRelay, ${styleText(style as SubmitStyle)}: ${parts.join('; ')}`);
    lines.push(`  (the issue's reference for tuned Postfix, with smtp-source and a receiving Postfix: ${c.referenceTunedPostfix})`);
  }
  if (r.queue) {
    const q = r.queue;
    const scan = (name: string) => (q.scans[name] ? `${q.scans[name].p50} ms` : '-');
    lines.push('');
    lines.push(`queue: ${q.messages} deferred messages × ${q.messageBytes} B (store ${mb(q.fill.dbBytes)}, filled at ${q.fill.enqueueMsgsPerSec} msgs/s)`);
    lines.push(`  relay: start-up ${q.relay.startupMs} ms, RSS ${mb(q.relay.rssAfterStartup)} after start-up, ${mb(q.relay.rssAfterPolls)} after ${q.relay.pollsWatched} polls, peak ${mb(q.relay.peakRss)}; idle CPU ${q.relay.idleCpuMsPerSec} ms/s; attempts made ${q.relay.unexpectedAttempts}`);
    lines.push(`  scans (median of ${q.scans.nextDueAt?.count ?? 0}): nextDueAt ${scan('nextDueAt')}, claim (nothing due) ${scan('claimNothingDue')}, queueStats ${scan('queueStats')}, listQueue(100) ${scan('listQueue100')}`);
    lines.push(
      q.cli.ok
        ? `  \`sealrelay queue --json\`: ${q.cli.wallMs} ms for ${q.cli.lines} lines, peak RSS ${mb(q.cli.peakRss)}`
        : `  \`sealrelay queue --json\`: FAILED (${q.cli.error})`,
    );
  }
  if (Object.keys(r.targets).length) {
    lines.push('', 'targets:');
    for (const t of Object.values(r.targets)) lines.push(`  [${t.met === null ? ' ? ' : t.met ? 'met' : 'MISSED'}] ${t.target}: ${t.measured}`);
  }
  for (const e of r.errors) lines.push(`ERROR in ${e.run}: ${e.error}`);
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => '  ' + r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

const code = await main().catch((err: unknown) => {
  console.error('bench: unexpected error:', err);
  return 1;
});
runCleanups();
process.exit(code);
