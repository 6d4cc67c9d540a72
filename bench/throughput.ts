// throughput: one run of the throughput scenario for one relay — a fresh
// receiving MX and a fresh relay (new store, new queue), a short warm-up, then N
// messages from K senders submitting one way, and the figures the issue asks for:
//
//   submission msgs/s   accepted messages / (last 250 − start of the load)
//   end-to-end msgs/s   landed messages / (last landed at the receiver − start of the load)
//   accept latency      per message, up to the 250 after DATA (p50/p99; load.ts says
//                       from where); only the Node generator times messages
//   end-to-end latency  per message, start → landed at the receiver
//   CPU ms per message  over the measured window ÷ landed messages, for each party
//                       apart: the relay's process tree, the receiver's, the load
//                       generator's, and the whole machine (others' load included)
//   peak memory         the relay's peak (see RelayUnderTest)
//
// The measured window runs from just before the load starts to the moment the
// last message landed, so the CPU the relay spends delivering its backlog after
// the load generator is done is counted too. The warm-up (JIT, TLS session
// caches, the first connections, Postfix's first daemons) is delivered and
// forgotten before the window opens, and is submitted the same way as the run.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runLoadOnThread } from './load-thread.ts';
import type { LoadResult } from './load.ts';
import { messageFactory } from './message.ts';
import { startSchedTrace, type SchedTraceResult } from './sched-trace.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { startPostfix, summarizeMaillog, type PostfixVariant } from './postfix.ts';
import { backgroundBusy, clockTicks, PeakSampler, systemCpu } from './proc-stats.ts';
import { startPostfixReceiver } from './receiver-postfix.ts';
import { startReceiver, type Receiver, type ReceiverTls } from './receiver-process.ts';
import { startSealRelay, summarizeRelayLog, type RelayLogSummary, type RelayUnderTest } from './relay-under-test.ts';
import { runSmtpSource, writeSmtpSourceMessage, type SmtpSourceResult } from './smtp-source.ts';

/** Memory of the relay is sampled this often (ms) for the peak of a process tree. */
const SAMPLE_INTERVAL_MS = 200;
/** Before the window opens the machine is watched in probes this long, idle, for load that is not ours (ms). */
const BACKGROUND_PROBE_MS = 1000;
/** Share of all cores busy, with the bench idle, below which the machine counts as quiet. */
export const QUIET_BELOW = 0.1;

export type RelayKind = 'sealrelay' | `postfix-${PostfixVariant}`;
export type ReceiverKind = 'postfix' | 'sink';
/** How the application submits: a new connection per message, or a session kept open. */
export type SubmitStyle = 'per-message' | 'session';
export type GeneratorKind = 'smtp-source' | 'node';

export interface ThroughputOptions {
  relay: RelayKind;
  /** Short name of the run in results and X-Bench-Id (e.g. "sealrelay-per-message"). */
  label: string;
  dir: string;
  tls: ReceiverTls;
  domain: string;
  receiver: ReceiverKind;
  style: SubmitStyle;
  generator: GeneratorKind;
  messages: number;
  size: number;
  sessions: number;
  warmup: number;
  /** Paced load (Node generator only). */
  ratePerSec?: number;
  submitTls: 'starttls' | 'plain';
  /** Bound on the load and on waiting for the last message to land, each. */
  timeoutMs: number;
  /** Wait up to this long for the machine to be quiet (others' load) before the window opens. */
  quietWaitMs: number;
  postfixTlsLevel?: 'verify' | 'encrypt';
  /** Node flags for the SealRelay process (profiling). */
  nodeFlags?: string[];
  /** Record the scheduler and the relay's fsyncs over the window (sched-trace.ts; SealRelay only). */
  schedTrace?: boolean;
}

/** CPU of one party over the measured window. */
export interface CpuShare {
  ms: number;
  msPerMsg: number;
}

export interface ThroughputResult {
  label: string;
  relay: { name: string; version: string };
  receiver: { name: string };
  load: {
    messages: number;
    messageBytes: number;
    sessions: number;
    style: SubmitStyle;
    generator: GeneratorKind;
    ratePerSec: number | null;
    submitTls: string;
    warmup: number;
    /** Submission connections the generator opened in the window. */
    connections: number;
  };
  accepted: number;
  failed: number;
  errors: string[];
  submission: { seconds: number; msgsPerSec: number };
  endToEnd: { complete: boolean; landed: number; seconds: number | null; msgsPerSec: number | null };
  /** null when the generator does not time messages (smtp-source). */
  acceptLatencyMs: LatencySummary | null;
  /** Per-message connections (Node generator): connect → ready for MAIL FROM (greeting, EHLO, STARTTLS). */
  connectLatencyMs: LatencySummary | null;
  endToEndLatencyMs: LatencySummary | null;
  cpu: {
    /** The relay's process tree: SealRelay's process and its threads; Postfix's master and every daemon under it. */
    relay: CpuShare;
    /** The receiver's process tree (the receiving Postfix's master and daemons, or the sink's process). */
    receiver: CpuShare;
    /** The load generator: smtp-source's process, or the Node generator's thread. */
    loadGenerator: CpuShare;
    /** Every core's busy time: the three above, the bench's own bookkeeping and anybody else's load. */
    machine: CpuShare;
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
  /** With schedTrace: where the relay's threads waited over the window. */
  schedTrace?: SchedTraceResult;
}

export async function runThroughput(opts: ThroughputOptions, progress: (line: string) => void): Promise<ThroughputResult> {
  if (opts.generator === 'smtp-source' && (opts.ratePerSec || opts.submitTls === 'starttls')) {
    throw new Error(`${opts.label}: smtp-source can neither pace a run nor speak STARTTLS; use the node generator`);
  }
  const dir = join(opts.dir, opts.label);
  mkdirSync(join(dir, 'relay'), { recursive: true });
  mkdirSync(join(dir, 'receiver'), { recursive: true });
  const receiver =
    opts.receiver === 'postfix' ? await startPostfixReceiver({ dir: join(dir, 'receiver'), tls: opts.tls, domain: opts.domain }) : await startReceiver(opts.tls);
  let relay: RelayUnderTest | null = null;
  let result: ThroughputResult;
  try {
    const route = { domain: opts.domain, host: '127.0.0.1', port: receiver.port };
    const relayDir = join(dir, 'relay');
    relay =
      opts.relay === 'sealrelay'
        ? await startSealRelay({ dir: relayDir, route, caFile: opts.tls.caFile, sessions: opts.sessions, nodeFlags: opts.nodeFlags })
        : await startPostfix({
            dir: relayDir,
            route,
            caFile: opts.tls.caFile,
            certFile: opts.tls.certFile,
            keyFile: opts.tls.keyFile,
            tlsLevel: opts.postfixTlsLevel,
            variant: opts.relay === 'postfix-tuned' ? 'tuned' : 'stock',
          });
    progress(`${opts.label}: ${relay.name} ${relay.version} on port ${relay.port}, receiver ${receiver.name} on ${receiver.port}`);
    result = await measure(opts, relay, receiver, progress);
  } finally {
    await relay?.stop();
    await receiver.stop();
  }
  // The relay's own account, read once it has stopped and flushed its log.
  result.relayLog = relay.name.startsWith('postfix') ? summarizeMaillog(relay.logFile) : summarizeRelayLog(relay.logFile, opts.label);
  return result;
}

type Load = LoadResult | SmtpSourceResult;

async function measure(opts: ThroughputOptions, relay: RelayUnderTest, receiver: Receiver, progress: (line: string) => void): Promise<ThroughputResult> {
  const message = { size: opts.size, domain: opts.domain };
  const factory = messageFactory(message);
  const sourceFile = join(opts.dir, opts.label, 'smtp-source-message.txt');
  const envelope = opts.generator === 'smtp-source' ? writeSmtpSourceMessage(sourceFile, message, opts.label) : null;
  const load = (messages: number, runTag: string, ratePerSec?: number): Promise<Load> =>
    envelope
      ? runSmtpSource({ host: '127.0.0.1', port: relay.port, sessions: opts.sessions, messages, connection: opts.style, messageFile: sourceFile, ...envelope, timeoutMs: opts.timeoutMs })
      : runLoadOnThread({
          host: '127.0.0.1',
          port: relay.port,
          sessions: opts.sessions,
          messages,
          message,
          runTag,
          tls: opts.submitTls,
          connection: opts.style,
          ratePerSec,
          timeoutMs: opts.timeoutMs,
        });

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

  progress(
    `${opts.label}: ${opts.messages} × ${opts.size} B, ${opts.sessions} senders, ${opts.style === 'per-message' ? 'a new connection per message' : 'sessions kept open'} (${opts.generator})` +
      (opts.ratePerSec ? ` at ${opts.ratePerSec.toFixed(1)} msgs/s` : ''),
  );
  const trace = opts.schedTrace ? await startSchedTrace(join(opts.dir, opts.label)) : null;
  const sampler = new PeakSampler(() => relay.memory(), SAMPLE_INTERVAL_MS);
  const cpu0 = { relay: relay.cpuMs(), receiver: receiver.cpuMs(), system: systemCpu(), at: performance.now() };
  const landedAt = receiver.landed(opts.messages, opts.timeoutMs * 2);
  const result = await load(opts.messages, opts.label, opts.ratePerSec);
  // Only what was accepted can land: wait for the last one only when all were accepted.
  const lastLanded = result.accepted === opts.messages ? await landedAt : null;
  const cpu1 = { relay: relay.cpuMs(), receiver: receiver.cpuMs(), system: systemCpu(), at: performance.now() };
  const peak = sampler.stop();
  const schedTrace = trace ? await trace.stop(relay.pid) : undefined;
  const processes = relay.memory().processes;
  const report = await receiver.report();

  const submissionSeconds = (result.endedAt - result.startedAt) / 1000;
  const e2eSeconds = lastLanded === null ? null : (lastLanded - result.startedAt) / 1000;
  const started = new Map(result.submissions.map((s) => [s.id, s.startedAt]));
  const e2eLatencies = report.landings.flatMap(([id, at]) => (started.has(id) ? [at - started.get(id)!] : []));
  const connectLatencies = result.submissions.flatMap((s) => (s.connectMs === undefined ? [] : [s.connectMs]));
  const kernelPeak = relay.kernelPeakRss();
  const systemTicks = cpu1.system.total - cpu0.system.total;
  const perMsg = (ms: number): CpuShare => ({ ms: round(ms), msPerMsg: round(ms / Math.max(1, report.landed)) });

  return {
    label: opts.label,
    relay: { name: relay.name, version: relay.version },
    receiver: { name: receiver.name },
    load: {
      messages: opts.messages,
      messageBytes: factory.build(`${opts.label}-0`, 0).length,
      sessions: opts.sessions,
      style: opts.style,
      generator: opts.generator,
      ratePerSec: opts.ratePerSec ? round(opts.ratePerSec) : null,
      submitTls: result.tls ? 'starttls' : 'plain',
      warmup: opts.warmup,
      connections: result.connections,
    },
    accepted: result.accepted,
    failed: result.failed,
    errors: result.errors,
    submission: { seconds: round(submissionSeconds), msgsPerSec: round(result.accepted / submissionSeconds) },
    endToEnd: {
      complete: lastLanded !== null,
      landed: report.landed,
      seconds: e2eSeconds === null ? null : round(e2eSeconds),
      msgsPerSec: e2eSeconds === null ? null : round(report.landed / e2eSeconds),
    },
    acceptLatencyMs: result.submissions.length ? summarize(result.submissions.map((s) => s.latencyMs)) : null,
    connectLatencyMs: connectLatencies.length ? summarize(connectLatencies) : null,
    endToEndLatencyMs: e2eLatencies.length ? summarize(e2eLatencies) : null,
    cpu: {
      relay: perMsg(cpu1.relay - cpu0.relay),
      receiver: perMsg(cpu1.receiver - cpu0.receiver),
      loadGenerator: perMsg(result.cpuMs),
      machine: perMsg(((cpu1.system.busy - cpu0.system.busy) * 1000) / clockTicks()),
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
    ...(schedTrace ? { schedTrace } : {}),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
