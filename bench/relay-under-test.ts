// relay-under-test: SealRelay as the benchmark runs it — a real
// `node bin/sealrelay.js --config FILE start` child process, configured the way
// an operator would write the YAML, in a temp directory of its own.
//
// The config: one STARTTLS submission listener on port 0 (the port is read from
// the relay.started log line), the store in the temp directory, a static route
// for the bench domain to the receiver, the receiver's CA as tls.ca_file and the
// bench domain under `forced` + `verification: ca`. Forced+ca means a message can
// only reach the receiver over TLS with a certificate the relay verified, so the
// figures cannot come from a plaintext shortcut. Everything else stays at its
// default (concurrency, connections_per_host, idle_reuse_ms, logging at info),
// because the claim in the README is about the relay as shipped.
//
// The relay's stdout (pino JSON) goes straight to a file, not through a pipe
// into the benchmark: parsing thousands of log lines would steal the shared CPU
// from the load generator. The file is read for relay.started and, after the run,
// to count lines per message.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { onCleanup } from './cleanup.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { readMemory, treeCpuMs, treeMemory } from './proc-stats.ts';

const ROOT = join(import.meta.dirname, '..');
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
/** How often the log file is read while waiting for relay.started. */
const START_POLL_MS = 50;

/** What the benchmark needs from any relay it measures (SealRelay here, Postfix in postfix.ts). */
export interface RelayUnderTest {
  readonly name: string;
  readonly version: string;
  /** Submission port on 127.0.0.1. */
  readonly port: number;
  /** The process whose tree is the relay (for Postfix, the master). */
  readonly pid: number;
  /** CPU the relay's processes have used since they started, ms. */
  cpuMs(): number;
  /** Summed RSS and PSS of the relay's processes now, bytes. */
  memory(): { rss: number; pss: number; processes: number };
  /** The kernel's peak RSS (VmHWM) when the relay is one process; null for a process tree. */
  kernelPeakRss(): number | null;
  readonly logFile: string;
  stop(): Promise<void>;
}

export interface SealRelayOptions {
  /** Temp directory for config, store, certificates and the log. */
  dir: string;
  /** Where bench-domain mail goes: the receiver. */
  route: { domain: string; host: string; port: number };
  /** The receiver's CA (trusted for verification: ca). */
  caFile: string;
  /** Submission sessions the load generator opens (the per-IP limit must allow them). */
  sessions: number;
  /** Store file; default a new one in `dir` (the queue scenario passes a pre-filled one). */
  storePath?: string;
  /** Extra delivery settings, e.g. poll_interval_ms for the queue scenario. */
  delivery?: Record<string, unknown>;
  logLevel?: string;
  /** Extra node flags for the relay process, e.g. ['--cpu-prof', '--cpu-prof-dir=DIR'] (run.ts --profile). */
  nodeFlags?: string[];
  /** Settings by dotted path set over the above, e.g. {'ingress.receive_budget_bytes': 33554432} (memory.ts --relay-config). */
  settings?: Record<string, unknown>;
}

export function sealRelayConfig(opts: SealRelayOptions): Record<string, unknown> {
  const config: Record<string, unknown> = {
    server: { hostname: 'relay.bench.local' },
    store: { driver: 'sqlite', path: opts.storePath ?? join(opts.dir, 'sealrelay.db') },
    ingress: {
      listeners: { submission: { host: '127.0.0.1', port: 0, tls: 'starttls' } },
      // The development names: only a pair so named is generated when missing.
      cert_file: join(opts.dir, 'sealrelay-dev.crt'),
      key_file: join(opts.dir, 'sealrelay-dev.key'),
      users_file: join(opts.dir, 'users.yaml'),
      relay_networks: ['127.0.0.1/32'],
      max_connections_per_ip: Math.max(20, opts.sessions + 5),
    },
    tls: { ca_file: opts.caFile },
    delivery: {
      routes: { [opts.route.domain]: `${opts.route.host}:${opts.route.port}` },
      shutdown_grace_seconds: 5,
      ...opts.delivery,
    },
    policies: { domains: { [opts.route.domain]: { mode: 'forced', verification: 'ca' } } },
    logging: { level: opts.logLevel ?? 'info' },
  };
  for (const [path, value] of Object.entries(opts.settings ?? {})) setPath(config, path.split('.'), value);
  return config;
}

/** Sets config[a][b][c] = value for path a.b.c, making the objects on the way. */
function setPath(config: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let at = config;
  for (const key of path.slice(0, -1)) {
    const next = at[key];
    at = at[key] = next !== null && typeof next === 'object' && !Array.isArray(next) ? (next as Record<string, unknown>) : {};
  }
  at[path[path.length - 1]!] = value;
}

export async function startSealRelay(opts: SealRelayOptions): Promise<RelayUnderTest> {
  const configFile = join(opts.dir, 'sealrelay.yaml');
  writeFileSync(configFile, stringify(sealRelayConfig(opts)));
  const logFile = join(opts.dir, 'sealrelay.log');
  const fd = openSync(logFile, 'w');
  // As `npm start` and the Docker image run it (README "Memory"): --expose-gc, glibc's mmap threshold fixed low.
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', ...(opts.nodeFlags ?? []), join(ROOT, 'bin', 'sealrelay.js'), '--config', configFile, 'start'], {
    cwd: ROOT,
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '16384' },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const forget = onCleanup('sealrelay', () => child.kill('SIGKILL'));
  let exitCode: number | string | null = null;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? signal;
      resolve();
    }),
  );

  const port = await waitForStart(logFile, () => exitCode).catch((err: Error) => {
    child.kill('SIGKILL');
    forget();
    throw err;
  });
  const pid = child.pid!;
  return {
    name: 'sealrelay',
    version: readVersion(),
    port,
    pid,
    logFile,
    cpuMs: () => treeCpuMs(pid),
    memory: () => treeMemory(pid),
    kernelPeakRss: () => readMemory(pid)?.hwm ?? null,
    async stop() {
      if (exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      forget();
    },
  };
}

async function waitForStart(logFile: string, exitCode: () => number | string | null): Promise<number> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const text = readFileSync(logFile, 'utf8');
    for (const line of text.split('\n')) {
      if (!line.includes('"relay.started"') || !line.includes('"listeners"')) continue;
      const started = JSON.parse(line) as { listeners: { name: string; port: number }[] };
      const port = started.listeners[0]?.port;
      if (port) return port;
    }
    if (exitCode() !== null) throw new Error(`sealrelay exited (${exitCode()}) before relay.started:\n${text.slice(-3000)}`);
    await sleep(START_POLL_MS);
  }
  throw new Error(`sealrelay did not log relay.started within ${START_TIMEOUT_MS} ms (see ${logFile})`);
}

function readVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export interface RelayLogSummary {
  /** Log lines by `event`: how chatty the relay was per message. */
  events: Record<string, number>;
  /**
   * The relay's own time from the end of DATA's commit request to the commit
   * (`commitMs` of ingress.queued), for the messages of run `runTag` only: the
   * store's share of the accept latency the load generator measured.
   */
  commitMs: LatencySummary | null;
}

/** What the relay logged, read after a run. */
export function summarizeRelayLog(logFile: string, runTag: string): RelayLogSummary {
  const events: Record<string, number> = {};
  const commits: number[] = [];
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return { events, commitMs: null };
  }
  // Bench Message-IDs are <runTag-i@app.bench.local>; the warm-up has its own tag.
  const ofRun = new RegExp(`"messageId":"<${runTag.replace(/[^\w-]/g, '\\$&')}-\\d+@`);
  for (const line of text.split('\n')) {
    if (!line) continue;
    const event = /"event":"([^"]+)"/.exec(line)?.[1] ?? (line.startsWith('{') ? '(no event)' : '(not json)');
    events[event] = (events[event] ?? 0) + 1;
    if (event === 'ingress.queued' && ofRun.test(line)) {
      const ms = Number(/"commitMs":([\d.]+)/.exec(line)?.[1]);
      if (Number.isFinite(ms)) commits.push(ms);
    }
  }
  return { events, commitMs: commits.length ? summarize(commits) : null };
}
