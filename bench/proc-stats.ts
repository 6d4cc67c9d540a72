// proc-stats: CPU time and memory of other processes, read from Linux /proc.
//
// The benchmark charges the relay for the CPU its own processes burn, not for
// wall time: on a shared 2-core box the load generator and the receiver compete
// for the same cores, so "CPU ms per message" is the figure that survives a
// noisy run. /proc/PID/stat gives utime/stime in clock ticks (CLK_TCK, read once
// from getconf); cutime/cstime hold the CPU of children already reaped, which is
// how a Postfix master accounts for smtpd/cleanup/smtp processes that exited
// mid-run. /proc/PID/status gives VmRSS and VmHWM (the kernel's own peak RSS);
// smaps_rollup gives PSS, which does not count shared pages twice when several
// processes of one program run at once.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second for /proc/PID/stat times (getconf CLK_TCK; 100 on every Linux we know). */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface ProcStat {
  pid: number;
  ppid: number;
  /** Own user+system CPU, ms. */
  cpuMs: number;
  /** CPU of children this process has reaped (cutime+cstime), ms. */
  reapedChildrenCpuMs: number;
}

/** null when the process is gone (it may exit between listing and reading). */
export function readStat(pid: number): ProcStat | null {
  return parseStat(pid, `/proc/${pid}/stat`);
}

/**
 * CPU of the calling thread so far, ms (/proc/thread-self/stat): what a worker
 * thread (the load generator) burns, apart from the rest of its process.
 */
export function threadCpuMs(): number {
  return parseStat(0, '/proc/thread-self/stat')?.cpuMs ?? 0;
}

/** CPU of the children this process has reaped so far, ms: a child program run to its end (smtp-source). */
export function reapedChildrenCpuMs(): number {
  return readStat(process.pid)?.reapedChildrenCpuMs ?? 0;
}

function parseStat(pid: number, path: string): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14 → index 11.
  const tick = 1000 / clockTicks();
  const n = (i: number) => Number(fields[i] ?? 0);
  return { pid, ppid: n(1), cpuMs: (n(11) + n(12)) * tick, reapedChildrenCpuMs: (n(13) + n(14)) * tick };
}

export interface Memory {
  /** Resident set size now, bytes. */
  rss: number;
  /** Kernel's peak RSS of the process (VmHWM), bytes. */
  hwm: number;
  /** Proportional set size now, bytes (shared pages split between sharers). */
  pss: number;
}

export function readMemory(pid: number): Memory | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string, text: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  let pss = 0;
  try {
    pss = kb('Pss', readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  } catch {
    // Older kernels lack smaps_rollup; PSS stays 0 and only RSS is reported.
  }
  return { rss: kb('VmRSS', status), hwm: kb('VmHWM', status), pss };
}

/** `root` and every live descendant (by walking ppid links over all of /proc once). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(stat.pid);
    children.set(stat.ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * CPU of a whole process tree so far, ms: the root's own and reaped children's
 * time plus the own time of every live descendant. A child that exits moves its
 * time into its parent's reaped total, so the sum never goes backwards as long
 * as the parent reaps (Postfix's master does).
 */
export function treeCpuMs(root: number): number {
  let total = 0;
  for (const pid of processTree(root)) {
    const stat = readStat(pid);
    if (!stat) continue;
    total += stat.cpuMs + (pid === root ? stat.reapedChildrenCpuMs : 0);
  }
  return total;
}

/** Summed RSS and PSS of a process tree now, and how many processes it had. */
export function treeMemory(root: number): { rss: number; pss: number; processes: number } {
  let rss = 0;
  let pss = 0;
  let processes = 0;
  for (const pid of processTree(root)) {
    const m = readMemory(pid);
    if (!m) continue;
    rss += m.rss;
    pss += m.pss;
    processes++;
  }
  return { rss, pss, processes };
}

/** Peak of a memory figure, sampled on a timer (the kernel keeps no peak for a sum of processes). */
export class PeakSampler {
  private peak = { rss: 0, pss: 0 };
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly sample: () => { rss: number; pss: number },
    intervalMs: number,
  ) {
    this.take();
    this.timer = setInterval(() => this.take(), intervalMs);
    // Never keep the benchmark alive on its own.
    this.timer.unref();
  }

  private take(): void {
    try {
      const s = this.sample();
      this.peak = { rss: Math.max(this.peak.rss, s.rss), pss: Math.max(this.peak.pss, s.pss) };
    } catch {
      // A process that vanished mid-sample is simply not counted in this sample.
    }
  }

  stop(): { rss: number; pss: number } {
    clearInterval(this.timer);
    this.take();
    return this.peak;
  }
}

/** Whole-machine CPU from /proc/stat, in ticks: busy (everything but idle and iowait) and total. */
export function systemCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Share of all cores busy over the next `ms` (0..1). Taken just before a run while
 * the bench itself is idle, it shows whether something else was eating the cores.
 */
export async function backgroundBusy(ms: number): Promise<number> {
  const a = systemCpu();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = systemCpu();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}
