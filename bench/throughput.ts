// throughput: scenario 1 for one relay — a fresh receiver and a fresh relay
// (new store, new queue), a short warm-up, then N messages from K sessions, and
// the figures the issue asks for:
//
//   submission msgs/s   accepted messages / (last 250 − first MAIL FROM)
//   end-to-end msgs/s   landed messages / (last landed at the receiver − first MAIL FROM)
//   accept latency      MAIL FROM → 250 after DATA, per message (p50/p99)
//   end-to-end latency  MAIL FROM → landed at the receiver, per message
//   CPU ms per message  CPU of the relay's processes over the measured window / N
//   peak RSS            the relay's peak resident memory (see RelayUnderTest)
//
// The measured window runs from just before the first MAIL FROM to the moment the
// last message landed, so the CPU the relay spends delivering its backlog after
// the load generator is done is counted too. The warm-up (JIT, TLS session
// caches, the first connections) is delivered and forgotten before the window.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from './load.ts';
import { runLoadOnThread } from './load-thread.ts';
import { messageFactory } from './message.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { startPostfix, summarizeMaillog } from './postfix.ts';
import { backgroundBusy, PeakSampler, systemCpu, treeCpuMs } from './proc-stats.ts';
import { startReceiver, type Receiver, type ReceiverTls } from './receiver-process.ts';
import { startSealRelay, summarizeRelayLog, type RelayLogSummary, type RelayUnderTest } from './relay-under-test.ts';

/** Memory of the relay is sampled this often (ms) for the peak of a process tree. */
const SAMPLE_INTERVAL_MS = 200;
/** Before the window opens the machine is watched in probes this long, idle, for load that is not ours (ms). */
const BACKGROUND_PROBE_MS = 1000;
/** Share of all cores busy, with the bench idle, below which the machine counts as quiet. */
export const QUIET_BELOW = 0.1;

export type RelayKind = 'sealrelay' | 'postfix';

export interface ThroughputOptions {
  relay: RelayKind;
  /** Short name of the run in results and X-Bench-Id (e.g. "sealrelay-full"). */
  label: string;
  dir: string;
  tls: ReceiverTls;
  domain: string;
  messages: number;
  size: number;
  sessions: number;
  warmup: number;
  ratePerSec?: number;
  submitTls: 'starttls' | 'plain';
  /** Bound on the load and on waiting for the last message to land, each. */
  timeoutMs: number;
  /** Wait up to this long for the machine to be quiet (others' load) before the window opens. */
  quietWaitMs: number;
  postfixTlsLevel?: 'verify' | 'encrypt';
  /** Node flags for the SealRelay process (profiling). */
  nodeFlags?: string[];
}

export interface ThroughputResult {
  label: string;
  relay: { name: string; version: string };
  load: { messages: number; messageBytes: number; sessions: number; ratePerSec: number | null; submitTls: string; warmup: number };
  accepted: number;
  failed: number;
  errors: string[];
  submission: { seconds: number; msgsPerSec: number };
  endToEnd: { complete: boolean; landed: number; seconds: number | null; msgsPerSec: number | null };
  acceptLatencyMs: LatencySummary;
  endToEndLatencyMs: LatencySummary;
  cpu: {
    relayMsPerMsg: number;
    relayMs: number;
    receiverMs: number;
    loadGeneratorMs: number;
    windowMs: number;
    /** Share of all cores busy during the window (1 = every core saturated). */
    machineBusy: number;
    /** Share of all cores busy just before the window with the bench idle: anything above ~0.05 is someone else's load. */
    backgroundBusy: number;
  };
  memory: {
    /** The figure to compare: kernel VmHWM for a one-process relay, else the sampled peak of summed PSS. */
    peakBytes: number;
    peakKind: 'VmHWM' | 'sampled sum of PSS';
    sampledPeakRssSum: number;
    sampledPeakPssSum: number;
    processes: number;
  };
  deliveryHop: {
    connectionsWithMail: number;
    messagesPerConnection: number;
    tlsConnections: Record<string, number>;
    plaintextMessages: number;
  };
  /** What the relay itself logged: SealRelay events by name, or Postfix delivery status and TLS lines. */
  relayLog: RelayLogSummary | Record<string, unknown>;
}

export async function runThroughput(opts: ThroughputOptions, progress: (line: string) => void): Promise<ThroughputResult> {
  const dir = join(opts.dir, opts.label);
  mkdirSync(dir, { recursive: true });
  const receiver = await startReceiver(opts.tls);
  let relay: RelayUnderTest | null = null;
  let result: ThroughputResult;
  try {
    const route = { domain: opts.domain, host: '127.0.0.1', port: receiver.port };
    relay =
      opts.relay === 'sealrelay'
        ? await startSealRelay({ dir, route, caFile: opts.tls.caFile, sessions: opts.sessions, nodeFlags: opts.nodeFlags })
        : await startPostfix({ dir, route, caFile: opts.tls.caFile, certFile: opts.tls.certFile, keyFile: opts.tls.keyFile, tlsLevel: opts.postfixTlsLevel });
    progress(`${opts.label}: ${relay.name} ${relay.version} on port ${relay.port}, receiver on ${receiver.port}`);
    result = await measure(opts, relay, receiver, progress);
  } finally {
    await relay?.stop();
    await receiver.stop();
  }
  // The relay's own account, read once it has stopped and flushed its log.
  result.relayLog = relay.name === 'postfix' ? summarizeMaillog(relay.logFile) : summarizeRelayLog(relay.logFile, opts.label);
  return result;
}

async function measure(opts: ThroughputOptions, relay: RelayUnderTest, receiver: Receiver, progress: (line: string) => void): Promise<ThroughputResult> {
  const message = { size: opts.size, domain: opts.domain };
  const factory = messageFactory(message);
  const load = (messages: number, runTag: string, ratePerSec?: number): Promise<LoadResult> =>
    runLoadOnThread({ host: '127.0.0.1', port: relay.port, sessions: opts.sessions, messages, message, runTag, tls: opts.submitTls, ratePerSec, timeoutMs: opts.timeoutMs });

  if (opts.warmup > 0) {
    const landed = receiver.landed(opts.warmup, opts.timeoutMs);
    const warm = await load(opts.warmup, `${opts.label}-warmup`);
    if (warm.failed) throw new Error(`${opts.label}: warm-up failed: ${warm.errors.join('; ')}`);
    if ((await landed) === null) throw new Error(`${opts.label}: warm-up messages did not all land within ${opts.timeoutMs} ms`);
  }
  // Also lets the relay settle the warm-up's bookkeeping before the window opens.
  const quietFrom = performance.now();
  let background = await backgroundBusy(BACKGROUND_PROBE_MS);
  while (background >= QUIET_BELOW && performance.now() - quietFrom < opts.quietWaitMs) {
    if (performance.now() - quietFrom < BACKGROUND_PROBE_MS * 1.5) progress(`${opts.label}: cores ${Math.round(background * 100)}% busy with the bench idle; waiting up to ${opts.quietWaitMs / 1000} s for quiet`);
    background = await backgroundBusy(BACKGROUND_PROBE_MS);
  }
  receiver.reset();

  progress(`${opts.label}: ${opts.messages} × ${opts.size} B over ${opts.sessions} sessions${opts.ratePerSec ? ` at ${opts.ratePerSec.toFixed(1)} msgs/s` : ''}`);
  const sampler = new PeakSampler(() => relay.memory(), SAMPLE_INTERVAL_MS);
  const cpu0 = { relay: relay.cpuMs(), receiver: treeCpuMs(receiver.pid), self: process.cpuUsage(), system: systemCpu(), at: performance.now() };
  const landedAt = receiver.landed(opts.messages, opts.timeoutMs * 2);
  const result = await load(opts.messages, opts.label, opts.ratePerSec);
  // Only what was accepted can land: wait for the last one only when all were accepted.
  const lastLanded = result.submissions.length === opts.messages ? await landedAt : null;
  const cpu1 = { relay: relay.cpuMs(), receiver: treeCpuMs(receiver.pid), self: process.cpuUsage(cpu0.self), system: systemCpu(), at: performance.now() };
  const peak = sampler.stop();
  const processes = relay.memory().processes;
  const report = await receiver.report();

  const accepted = result.submissions.length;
  const submissionSeconds = (result.endedAt - result.startedAt) / 1000;
  const e2eSeconds = lastLanded === null ? null : (lastLanded - result.startedAt) / 1000;
  const started = new Map(result.submissions.map((s) => [s.id, s.startedAt]));
  const e2eLatencies = report.landings.flatMap(([id, at]) => (started.has(id) ? [at - started.get(id)!] : []));
  const kernelPeak = relay.kernelPeakRss();
  const systemTicks = cpu1.system.total - cpu0.system.total;

  return {
    label: opts.label,
    relay: { name: relay.name, version: relay.version },
    load: {
      messages: opts.messages,
      messageBytes: factory.build(`${opts.label}-0`, 0).length,
      sessions: opts.sessions,
      ratePerSec: opts.ratePerSec ? round(opts.ratePerSec) : null,
      submitTls: result.tls ? 'starttls' : 'plain',
      warmup: opts.warmup,
    },
    accepted,
    failed: result.failed,
    errors: result.errors,
    submission: { seconds: round(submissionSeconds), msgsPerSec: round(accepted / submissionSeconds) },
    endToEnd: {
      complete: lastLanded !== null,
      landed: report.landed,
      seconds: e2eSeconds === null ? null : round(e2eSeconds),
      msgsPerSec: e2eSeconds === null ? null : round(report.landed / e2eSeconds),
    },
    acceptLatencyMs: summarize(result.submissions.map((s) => s.latencyMs)),
    endToEndLatencyMs: summarize(e2eLatencies),
    cpu: {
      relayMsPerMsg: round((cpu1.relay - cpu0.relay) / Math.max(1, report.landed)),
      relayMs: round(cpu1.relay - cpu0.relay),
      receiverMs: round(cpu1.receiver - cpu0.receiver),
      loadGeneratorMs: round((cpu1.self.user + cpu1.self.system) / 1000),
      windowMs: round(cpu1.at - cpu0.at),
      machineBusy: round(systemTicks ? (cpu1.system.busy - cpu0.system.busy) / systemTicks : 0),
      backgroundBusy: round(background),
    },
    memory: {
      peakBytes: kernelPeak ?? peak.pss,
      peakKind: kernelPeak === null ? 'sampled sum of PSS' : 'VmHWM',
      sampledPeakRssSum: peak.rss,
      sampledPeakPssSum: peak.pss,
      processes,
    },
    deliveryHop: {
      connectionsWithMail: report.connectionsWithMail,
      messagesPerConnection: round(report.landed / Math.max(1, report.connectionsWithMail)),
      tlsConnections: report.tlsConnections,
      plaintextMessages: report.plaintextMessages,
    },
    relayLog: {},
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
