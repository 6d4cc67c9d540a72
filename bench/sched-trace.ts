// sched-trace: where the relay's threads waited during a run (`--sched-trace`).
//
// An accept at half load is a few milliseconds of work spread over several threads
// (ingress, the store thread, the commit's fsync, ingress again): its tail is
// made of waits. This records, for the measured window, the kernel's scheduler
// events on every core and the relay's fsync/fdatasync calls (`perf sched record -a`,
// Linux tracepoints; needs root and Debian's linux-perf), then reads them back:
//
// - scheduling delay: for every time one of the relay's threads got a core, how
//   long it had stood runnable without one (`perf sched timehist`, "sch delay");
//   the same for every task on the machine, for comparison;
// - fsync: how long each of the relay's took (`perf script`), the disk's part of a
//   commit (SQLite as better-sqlite3 builds it calls fsync, not fdatasync).
//
// Tracing costs the traced run some CPU (every context switch is recorded), so a
// traced run is an extra run, never one whose figures are judged.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { onCleanup } from './cleanup.ts';
import { summarize, type LatencySummary } from './percentiles.ts';

/** How long perf may take to write its buffers out once asked to stop. */
const STOP_TIMEOUT_MS = 30_000;
/** How long perf may take to start tracing. */
const START_SETTLE_MS = 1000;
/** Threads listed one by one, the busiest first. */
const THREADS_LISTED = 8;
const PERF_OUTPUT_BYTES = 1024 * 1024 * 1024;

export interface ThreadWaits {
  tid: number;
  /** The process's first thread (in SealRelay: ingress, the event loop that serves SMTP). */
  main: boolean;
  runMs: number;
  /** Times it got a core. */
  runs: number;
  schedDelayMs: LatencySummary;
}

export interface SchedTraceResult {
  /** Every time one of the relay's threads got a core: how long it had been runnable first. */
  relaySchedDelayMs: LatencySummary;
  relayThreads: ThreadWaits[];
  /** The same for every task on the machine. */
  machineSchedDelayMs: LatencySummary;
  /** Each fsync or fdatasync of the relay's, start to return. */
  relayFsyncMs: LatencySummary;
}

/** Why a trace cannot be made here, or null when it can. */
export function schedTraceUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'perf sched needs root';
  const probe = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return "perf is not installed (Debian's linux-perf)";
  return null;
}

export interface SchedTrace {
  /** Stops recording and reads the trace back for the relay process `pid`. */
  stop(pid: number): Promise<SchedTraceResult>;
}

export async function startSchedTrace(dir: string): Promise<SchedTrace> {
  const data = join(dir, 'perf-sched.data');
  const perf: ChildProcess = spawn(
    'perf',
    ['sched', 'record', '-a', '-o', data, ...['enter', 'exit'].flatMap((at) => ['fdatasync', 'fsync'].flatMap((call) => ['-e', `syscalls:sys_${at}_${call}`]))],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  perf.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => perf.once('exit', (code) => resolve(code)));
  const remove = onCleanup('perf sched record', () => void perf.kill('SIGKILL'));
  // perf has no "ready" signal: give it time to open its buffers, and fail if it is gone.
  const early = await Promise.race([exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), START_SETTLE_MS))]);
  if (early !== 'running') throw new Error(`perf sched record exited (${early}): ${stderr.trim()}`);

  return {
    async stop(pid) {
      perf.kill('SIGINT');
      const timer = setTimeout(() => perf.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      remove();
      try {
        return readTrace(data, pid);
      } finally {
        rmSync(data, { force: true });
      }
    },
  };
}

function perfText(args: string[]): string {
  const out = spawnSync('perf', args, { encoding: 'utf8', maxBuffer: PERF_OUTPUT_BYTES });
  if (out.error || out.status !== 0) throw new Error(`perf ${args[0]} ${args[1] ?? ''} failed: ${out.error?.message ?? out.stderr.trim()}`);
  return out.stdout;
}

function readTrace(data: string, pid: number): SchedTraceResult {
  const threads = new Map<number, { runMs: number; delays: number[] }>();
  const machine: number[] = [];
  // "   10103.157029 [0000]  node[15558/15550]   0.000   0.008   0.016": time, cpu, comm[tid/pid], wait, sch delay, run time (ms).
  const line = /^\s*\d+\.\d+\s+\[\d+\]\s+.*\[(\d+)(?:\/(\d+))?\]\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$/;
  for (const text of perfText(['sched', 'timehist', '-i', data]).split('\n')) {
    const m = line.exec(text);
    if (!m) continue;
    const tid = Number(m[1]);
    const owner = m[2] === undefined ? tid : Number(m[2]);
    const delay = Number(m[4]);
    // tid 0 is the idle task: it "runs" whenever a core has nothing to do.
    if (tid === 0) continue;
    machine.push(delay);
    if (owner !== pid) continue;
    const t = threads.get(tid) ?? { runMs: 0, delays: [] };
    t.runMs += Number(m[5]);
    t.delays.push(delay);
    threads.set(tid, t);
  }

  // "node 15613/15613 [001] 10104.649220: syscalls:sys_enter_fdatasync: fd: 0x3"
  const syscall = /\s(\d+)\/(\d+)\s+\[\d+\]\s+(\d+\.\d+):\s+syscalls:sys_(enter|exit)_(?:fdatasync|fsync):/;
  const entered = new Map<number, number>();
  const fsyncs: number[] = [];
  for (const text of perfText(['script', '-i', data, '-F', 'comm,pid,tid,cpu,time,event']).split('\n')) {
    const m = syscall.exec(text);
    if (!m || Number(m[1]) !== pid) continue;
    const tid = Number(m[2]);
    const at = Number(m[3]) * 1000;
    if (m[4] === 'enter') entered.set(tid, at);
    else if (entered.has(tid)) {
      fsyncs.push(at - entered.get(tid)!);
      entered.delete(tid);
    }
  }

  const all = [...threads.values()].flatMap((t) => t.delays);
  const relayThreads = [...threads]
    .sort((a, b) => b[1].runMs - a[1].runMs)
    .slice(0, THREADS_LISTED)
    .map(([tid, t]) => ({ tid, main: tid === pid, runMs: Math.round(t.runMs), runs: t.delays.length, schedDelayMs: summarize(t.delays) }));
  return { relaySchedDelayMs: summarize(all), relayThreads, machineSchedDelayMs: summarize(machine), relayFsyncMs: summarize(fsyncs) };
}
