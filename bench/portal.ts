// bench/portal.ts — `npm run bench:portal [-- options]`: what the secure portal
// costs. Two scenarios, each run on the real parts (SQLite in a temp dir, HTTPS on
// loopback). The processes measured run the relay's code compiled (compiled.ts:
// no TypeScript loader in their RSS, as dist/ runs) and are started with what
// bin/sealrelay.js gives the relay (--expose-gc, MALLOC_MMAP_THRESHOLD_=16384
// unless the environment sets it):
//
// store   Items stored per second. In a child process per case (portal-store.ts,
//         so one case's heap cannot inflate the next one's peak): --items messages of --size
//         bytes (bench/message.ts: a text part and a base64 attachment) are queued
//         and claimed as ingress and delivery do, then each recipient goes the way
//         delivery sends a recipient to the portal (portal-items.ts): read the
//         message, hand it to the portal desk (sealed under the master key,
//         notification written), one durable store.finish. --warmup items first,
//         not counted; then the measured items, one at a time and --parallel at
//         once. Figures: items/s, per-item time (and its read / hand / commit
//         parts), CPU per item (all the process's threads, the store's included),
//         peak RSS (the kernel's VmHWM, reset after the queue was filled and the
//         warm-up done). At the end one stored item is opened again and compared.
//
// pages   Page latency with --recipients recipients at once. The portal listener
//         runs in a child process of its own (portal-server.ts: the store thread,
//         the keyring and buildWebServer('portal') as relay.ts wires them), so its
//         CPU and RSS are its own. It is given one --size message per recipient the
//         way delivery gives it (seed). Each bench recipient is a small browser
//         (portal-client.ts) with its own loopback address, cookie jar and
//         kept-alive HTTPS connection, and reads its mail from the queue the portal
//         wrote to, as a person reads theirs. The phases, in order:
//           landing     GET of the link from the notification email, before any
//                       proof (what the person, and mail scanners, see first)
//           (proof)     "send me a code", the code read from the code email, the
//                       code posted: every recipient verified (timed, not a figure)
//           message     GET of the message page with the verified session
//                       (decrypting and rendering the whole message)
//           attachment  GET of the attachment (decrypting the message again)
//         Each phase: --page-warmup requests per recipient first, not counted; then
//         --requests per recipient, each recipient one after another, all at once.
//         Figures: requests/s, latency p50/p90/p99/max, errors, the server
//         process's CPU per request and peak RSS (VmHWM reset before the phase).
//
// Writes bench/results/portal-<ISO time>.json (rewritten after each case and phase,
// so an interrupted run keeps what it measured) and prints a summary. Nothing here
// asserts a time: a run reports, it does not pass or fail on speed. Every child
// process is stopped on exit, error and Ctrl-C (cleanup.ts).
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { simpleParser } from 'mailparser';
import { CODE_EMAIL_SUBJECT } from '../src/portal/code-email.ts';
import { onCleanup, runCleanups } from './cleanup.ts';
import { runFiles } from './run-files.ts';
import { compileBenchChildren } from './compiled.ts';
import { machineInfo } from './machine.ts';
import { messageFactory } from './message.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { BenchBrowser, clientAddress, findForm, findLink, type Fetched } from './portal-client.ts';
import { inParallel, PORTAL_BENCH_DOMAIN, recipientOf, writePortalBenchConfig } from './portal-items.ts';
import type { PortalServerCall, PortalServerMessage, PortalServerRequest, Seeded } from './portal-server.ts';
import type { StoreFigures } from './portal-store.ts';
import { backgroundBusy, readMemory, readStat } from './proc-stats.ts';
import { makeReceiverTls } from './receiver-process.ts';

const ROOT = join(import.meta.dirname, '..');
/** The children, run compiled (compiled.ts). */
const STORE_CHILD = 'bench/portal-store.ts';
const SERVER_CHILD = 'bench/portal-server.ts';
const MB = 1e6;
/** What bin/sealrelay.js starts the relay with (its shebang line): the bench's processes get the same. */
const SHIPPED_NODE_FLAGS = ['--expose-gc'];
const SHIPPED_ENV = { MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '16384' };
/** Share of the cores busy before a case, with the bench idle, above which the summary warns. */
const NOISY_BACKGROUND = 0.1;
const SERVER_READY_TIMEOUT_MS = 60_000;
const SERVER_CALL_TIMEOUT_MS = 600_000;
/** Items the server is given at once while seeding (as delivery's concurrency would). */
const SEED_PARALLEL = 4;

const PHASES = ['landing', 'message', 'attachment'] as const;
type Phase = (typeof PHASES)[number];

const USAGE = `usage: npm run bench:portal -- [options]

  --scenario store|pages|all   what to run (default all)
  --size BYTES           bytes per message (default 1000000: 1 MB, a text part and a base64 attachment)
 store:
  --items N              items stored per case, measured (default 200)
  --warmup N             items stored first in each case, not counted (default 10)
  --parallel LIST        recipients handed to the portal at once, one case each (default 1,4)
 pages:
  --recipients N         recipients at once, each with its own item, session and address (default 50)
  --requests N           requests per recipient per phase, measured (default 40)
  --page-warmup N        requests per recipient per phase first, not counted (default 2)
  --phases LIST          of landing,message,attachment (default all three)
 --out DIR               results directory (default bench/results)
 --keep                  keep the temp directory (configs, stores, the server's log)`;

interface Options {
  scenarios: ('store' | 'pages')[];
  size: number;
  items: number;
  warmup: number;
  parallel: number[];
  recipients: number;
  requests: number;
  pageWarmup: number;
  phases: Phase[];
  out: string;
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        scenario: { type: 'string', default: 'all' },
        size: { type: 'string', default: '1000000' },
        items: { type: 'string', default: '200' },
        warmup: { type: 'string', default: '10' },
        parallel: { type: 'string', default: '1,4' },
        recipients: { type: 'string', default: '50' },
        requests: { type: 'string', default: '40' },
        'page-warmup': { type: 'string', default: '2' },
        phases: { type: 'string', default: PHASES.join(',') },
        out: { type: 'string', default: join(ROOT, 'bench', 'results') },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, value: string | undefined, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}, not ${JSON.stringify(value)}`);
    return n;
  };
  const scenario = values.scenario;
  if (scenario !== 'store' && scenario !== 'pages' && scenario !== 'all') usage(`--scenario must be store, pages or all, not ${JSON.stringify(scenario)}`);
  const phases = values.phases!.split(',').map((p) => p.trim());
  for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) usage(`--phases: unknown phase ${JSON.stringify(p)} (landing, message, attachment)`);
  const recipients = int('recipients', values.recipients, 1);
  // 127.0.1.1 … 127.0.250.250: room for far more than a bench needs.
  if (recipients > 62_500) usage('--recipients: at most 62500 (one loopback address each)');
  return {
    scenarios: scenario === 'all' ? ['store', 'pages'] : [scenario],
    size: int('size', values.size, 1024),
    items: int('items', values.items, 1),
    warmup: int('warmup', values.warmup, 0),
    parallel: values.parallel!.split(',').map((p) => int('parallel', p.trim(), 1)),
    recipients,
    requests: int('requests', values.requests, 1),
    pageWarmup: int('page-warmup', values['page-warmup'], 0),
    phases: PHASES.filter((p) => phases.includes(p)),
    out: resolve(values.out!),
    keep: values.keep!,
  };
}

function usage(problem: string): never {
  console.error(`bench:portal: ${problem}\n\n${USAGE}`);
  process.exit(64);
}

const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

// ---- store: the parent's side ----

interface StoreCaseResult extends StoreFigures {
  name: string;
  backgroundBusy: number;
}

async function runStoreCase(opts: Options, parallel: number, work: string, script: string): Promise<StoreCaseResult> {
  const dir = join(work, `store-p${parallel}`);
  mkdirSync(dir, { recursive: true });
  const busy = await backgroundBusy(1000);
  log(`store-p${parallel}: ${opts.warmup} warm-up + ${opts.items} items of ${mbText(opts.size)}, ${parallel} at once, in a child process; cores ${pct(busy)} busy before`);
  const args = [...SHIPPED_NODE_FLAGS, script, '--dir', dir, '--parallel', String(parallel), '--items', String(opts.items), '--warmup', String(opts.warmup), '--size', String(opts.size)];
  const output = await runChild(args);
  return { name: `store-p${parallel}`, ...(JSON.parse(output) as StoreFigures), backgroundBusy: round(busy) };
}

/** Runs a bench child to its end; its stdout (the figures), stderr passed through. */
function runChild(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...SHIPPED_ENV }, stdio: ['ignore', 'pipe', 'inherit'] });
    const done = onCleanup(`store case ${child.pid}`, () => child.kill('SIGKILL'));
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      done();
      if (code === 0) resolvePromise(Buffer.concat(chunks).toString('utf8'));
      else reject(new Error(`store case exited with ${signal ?? `code ${code}`}`));
    });
  });
}

// ---- pages: the server child ----

interface PortalServer {
  readonly url: string;
  readonly pid: number;
  call<T>(req: PortalServerCall): Promise<T>;
  stop(): Promise<void>;
}

async function startPortalServer(dir: string, tls: { certFile: string; keyFile: string }, script: string): Promise<PortalServer> {
  const configFile = writePortalBenchConfig(dir, tls);
  const logFile = join(dir, 'portal-server.log');
  const out = openSync(logFile, 'a');
  const child: ChildProcess = fork(script, [configFile, tls.certFile, tls.keyFile], {
    cwd: ROOT,
    execArgv: SHIPPED_NODE_FLAGS,
    env: { ...process.env, ...SHIPPED_ENV },
    stdio: ['ignore', out, out, 'ipc'],
  });
  closeSync(out);
  const undo = onCleanup(`portal server ${child.pid}`, () => child.kill('SIGKILL'));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let exited: Error | null = null;
  const ready = new Promise<{ url: string; pid: number }>((resolveReady, rejectReady) => {
    const timer = setTimeout(() => rejectReady(new Error(`the portal server was not ready within ${SERVER_READY_TIMEOUT_MS} ms (log: ${logFile})`)), SERVER_READY_TIMEOUT_MS);
    child.on('message', (m: PortalServerMessage) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolveReady(m);
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        rejectReady(new Error(`the portal server failed to start: ${m.error}`));
      } else {
        const call = pending.get(m.id);
        pending.delete(m.id);
        if (m.error !== undefined) call?.reject(new Error(`portal server: ${m.error}`));
        else call?.resolve(m.value);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      exited = new Error(`the portal server exited (${signal ?? `code ${code}`}; log: ${logFile})`);
      rejectReady(exited);
      for (const call of pending.values()) call.reject(exited);
      pending.clear();
    });
  });
  const { url, pid } = await ready;
  const call = <T>(req: PortalServerCall): Promise<T> => {
    if (exited) return Promise.reject(exited);
    const id = nextId++;
    return new Promise<T>((resolveCall, rejectCall) => {
      const timer = setTimeout(() => rejectCall(new Error(`portal server: no answer to ${req.type} within ${SERVER_CALL_TIMEOUT_MS} ms`)), SERVER_CALL_TIMEOUT_MS);
      pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolveCall(v as T)),
        reject: (e) => (clearTimeout(timer), rejectCall(e)),
      });
      child.send({ ...req, id } as PortalServerRequest);
    });
  };
  return {
    url,
    pid,
    call,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r));
        await call({ type: 'stop' }).catch(() => child.kill('SIGKILL'));
        await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000).unref())]);
        if (!exited) child.kill('SIGKILL');
      }
      undo();
    },
  };
}

// ---- pages: the recipients ----

interface BenchRecipient {
  readonly i: number;
  readonly address: string;
  readonly browser: BenchBrowser;
  /** The link's path, from the notification email. */
  readonly link: string;
  /** Filled once the code is verified. */
  attachment: string | null;
}

/** The raw mail queued to `address`, parsed as a mail program would. */
async function mailbox(server: PortalServer, address: string) {
  const raw = await server.call<string[]>({ type: 'mail', recipient: address });
  return Promise.all(raw.map((b) => simpleParser(Buffer.from(b, 'base64'))));
}

/** Opens recipient i's mail and finds the portal link in the notification. */
async function meetRecipient(server: PortalServer, i: number, ca: string): Promise<BenchRecipient> {
  const address = recipientOf(i);
  const mails = await mailbox(server, address);
  const linkPattern = new RegExp(`${escapeRegExp(server.url)}(/m/[A-Za-z0-9_-]+)`);
  const link = mails.map((m) => linkPattern.exec(m.text ?? '')?.[1]).find((l) => l !== undefined);
  if (!link) throw new Error(`no portal link in the mail of ${address} (${mails.length} messages)`);
  const from = clientAddress(i);
  return { i, address: from, browser: new BenchBrowser(server.url, ca, from, `SealRelay-portal-bench/1 (recipient ${i})`), link, attachment: null };
}

/** As a person does it: ask for a code, read it from the code email, enter it; then open the message and its attachment once. */
async function proveAddress(server: PortalServer, r: BenchRecipient, attachment: Seeded['attachment']): Promise<void> {
  const b = r.browser;
  const landing = expect(await b.get(r.link), 200, 'landing page');
  const ask = findForm(landing.body.toString('utf8'), 'request-code');
  const sent = expect(await b.post(ask.action, { _csrf: ask.csrf }), 303, 'code request');
  const codePage = expect(await b.get(sent.location!), 200, 'code page');
  const verify = findForm(codePage.body.toString('utf8'), 'verify');
  const codeMail = (await mailbox(server, recipientOf(r.i))).filter((m) => m.subject === CODE_EMAIL_SUBJECT).at(-1);
  const code = /Your code is: (\d+)/.exec(codeMail?.text ?? '')?.[1];
  if (!code) throw new Error(`recipient ${r.i}: no code email in the mailbox`);
  const verified = expect(await b.post(verify.action, { _csrf: verify.csrf, code }), 303, 'code check');
  const message = expect(await b.get(verified.location!), 200, 'message page');
  const page = message.body.toString('utf8');
  if (!page.includes(subjectOf(r.i))) throw new Error(`recipient ${r.i}: the message page does not show the message's subject`);
  r.attachment = findLink(page, /\/attachments\/\d+$/);
  const file = expect(await b.get(r.attachment), 200, 'attachment');
  if (createHash('sha256').update(file.body).digest('hex') !== attachment.sha256) throw new Error(`recipient ${r.i}: the attachment downloaded (${file.body.length} bytes) is not the one sent (${attachment.bytes} bytes)`);
}

function expect(f: Fetched, status: number, what: string): Fetched {
  if (f.status !== status) throw new Error(`${what}: HTTP ${f.status}, expected ${status}: ${f.body.toString('utf8').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 200)}`);
  if (status === 303 && !f.location) throw new Error(`${what}: 303 without a Location`);
  return f;
}

const subjectOf = (i: number) => `Your appointment (ref ${i})`;

/** One request of a phase for recipient r: null when it went as it should, else what went wrong. */
function phaseRequest(phase: Phase, r: BenchRecipient, attachmentBytes: number): Promise<{ ms: number; error: string | null }> {
  const check = (f: Fetched, ok: boolean, what: string) => ({ ms: f.ms, error: f.status === 200 && ok ? null : `${phase}: HTTP ${f.status}${f.status === 200 ? `, ${what}` : ''}` });
  switch (phase) {
    case 'landing':
      return r.browser.get(r.link).then((f) => check(f, f.body.includes('You have a secure message'), 'not the landing page'));
    case 'message':
      return r.browser.get(`${r.link}/message`).then((f) => check(f, f.body.includes(subjectOf(r.i)), 'not the message page'));
    case 'attachment':
      return r.browser.get(r.attachment!, { keepBody: false }).then((f) => check(f, f.bytes === attachmentBytes, `${f.bytes} bytes, expected ${attachmentBytes}`));
  }
}

interface PhaseResult {
  phase: Phase;
  recipients: number;
  requestsPerRecipient: number;
  warmupPerRecipient: number;
  backgroundBusy: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  wallMs: number;
  requestsPerSec: number;
  /** Every completed request's time, errors included (they are counted apart), ms. */
  latencyMs: LatencySummary;
  server: {
    cpuMs: number;
    cpuMsPerRequest: number;
    /** Share of one core the server process used over the phase. */
    cores: number;
    rssBeforeBytes: number;
    /** VmHWM over the phase (reset just before it). */
    peakRssBytes: number;
    peakReset: boolean;
    rssAfterBytes: number;
  };
  /** The bench's own CPU over the phase (the recipients' browsers share the cores with the server). */
  clientCpuMs: number;
}

async function runPhase(phase: Phase, recipients: readonly BenchRecipient[], server: PortalServer, opts: Options, attachmentBytes: number): Promise<PhaseResult> {
  const busy = await backgroundBusy(1000);
  const errors: string[] = [];
  let errorCount = 0;
  const samples: number[] = [];
  const one = async (r: BenchRecipient, measured: boolean) => {
    let result: { ms: number; error: string | null };
    try {
      result = await phaseRequest(phase, r, attachmentBytes);
    } catch (err) {
      result = { ms: NaN, error: `${phase}: ${(err as Error).message}` };
    }
    if (!measured) return;
    if (Number.isFinite(result.ms)) samples.push(result.ms);
    if (result.error) {
      errorCount++;
      if (errors.length < 10) errors.push(`recipient ${r.i}: ${result.error}`);
    }
  };
  const everyone = (n: number, measured: boolean) => Promise.all(recipients.map(async (r) => { for (let k = 0; k < n; k++) await one(r, measured); }));

  await everyone(opts.pageWarmup, false);
  const peakReset = resetPeak(server.pid);
  const rssBeforeBytes = readMemory(server.pid)?.rss ?? 0;
  const serverCpu0 = readStat(server.pid)?.cpuMs ?? 0;
  const clientCpu0 = process.cpuUsage();
  const t0 = performance.now();
  await everyone(opts.requests, true);
  const wallMs = performance.now() - t0;
  const clientCpu = process.cpuUsage(clientCpu0);
  const serverCpuMs = (readStat(server.pid)?.cpuMs ?? 0) - serverCpu0;
  const memory = readMemory(server.pid);
  const requests = recipients.length * opts.requests;
  return {
    phase,
    recipients: recipients.length,
    requestsPerRecipient: opts.requests,
    warmupPerRecipient: opts.pageWarmup,
    backgroundBusy: round(busy),
    requests,
    errors: errorCount,
    errorSamples: errors,
    wallMs: round(wallMs),
    requestsPerSec: round(requests / (wallMs / 1000)),
    latencyMs: summarize(samples),
    server: {
      cpuMs: round(serverCpuMs),
      cpuMsPerRequest: round(serverCpuMs / requests),
      cores: round(serverCpuMs / wallMs),
      rssBeforeBytes,
      peakRssBytes: memory?.hwm ?? 0,
      peakReset,
      rssAfterBytes: memory?.rss ?? 0,
    },
    clientCpuMs: round((clientCpu.user + clientCpu.system) / 1000),
  };
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

interface PagesResult {
  recipients: number;
  messageBytes: number;
  attachmentBytes: number;
  server: {
    pid: number;
    /** After start-up, before any item. */
    idleRssBytes: number;
    /** After the items were stored, before the first phase. */
    seededRssBytes: number;
    /** VmHWM of start-up and seeding, before the first reset. */
    setupPeakRssBytes: number;
  };
  setup: {
    seeded: Seeded;
    /** Every recipient's proof of address (code asked, read from the mail, entered) and first view and download, all at once, ms. */
    proofMs: number;
  };
  phases: PhaseResult[];
}

async function runPages(opts: Options, work: string, script: string, save: (pages: PagesResult) => void): Promise<PagesResult> {
  const dir = join(work, 'pages');
  mkdirSync(dir, { recursive: true });
  const tls = makeReceiverTls(dir);
  const ca = readFileSync(tls.caFile, 'utf8');
  const server = await startPortalServer(dir, tls, script);
  const recipients: BenchRecipient[] = [];
  try {
    const idleRssBytes = readMemory(server.pid)?.rss ?? 0;
    log(`pages: portal server (pid ${server.pid}) at ${server.url}; storing ${opts.recipients} items of ${mbText(opts.size)} as delivery does`);
    const seeded = await server.call<Seeded>({ type: 'seed', n: opts.recipients, size: opts.size, parallel: SEED_PARALLEL });
    const seededRssBytes = readMemory(server.pid)?.rss ?? 0;
    const setupPeakRssBytes = readMemory(server.pid)?.hwm ?? 0;
    for (let i = 0; i < opts.recipients; i++) recipients.push(await meetRecipient(server, i, ca));
    const attachment = seeded.attachment;
    const result: PagesResult = {
      recipients: opts.recipients,
      messageBytes: messageFactory({ size: opts.size, domain: PORTAL_BENCH_DOMAIN }).build('x'.repeat(32), 0).length,
      attachmentBytes: attachment.bytes,
      server: { pid: server.pid, idleRssBytes, seededRssBytes, setupPeakRssBytes },
      setup: { seeded: { ...seeded, ms: round(seeded.ms) }, proofMs: 0 },
      phases: [],
    };
    const measure = async (phase: Phase) => {
      log(`pages/${phase}: ${opts.recipients} recipients × (${opts.pageWarmup} warm-up + ${opts.requests}) requests`);
      const p = await runPhase(phase, recipients, server, opts, attachment.bytes);
      result.phases.push(p);
      log(oneLine(p));
      save(result);
    };
    if (opts.phases.includes('landing')) await measure('landing');
    if (opts.phases.includes('message') || opts.phases.includes('attachment')) {
      log(`pages: ${opts.recipients} recipients prove their address (code by email) and open their message once`);
      const t0 = performance.now();
      await inParallel(recipients, recipients.length, (r) => proveAddress(server, r, attachment));
      result.setup.proofMs = round(performance.now() - t0);
      for (const phase of ['message', 'attachment'] as const) if (opts.phases.includes(phase)) await measure(phase);
    }
    return result;
  } finally {
    for (const r of recipients) r.browser.close();
    await server.stop();
  }
}

// ---- main ----

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const { startedAt, resultFile, work } = runFiles({ out: opts.out, name: 'portal', tmpPrefix: 'sealrelay-portal-bench-', keep: opts.keep, log });

  const { out: _out, keep: _keep, ...recorded } = opts;
  const results = {
    scenario: 'portal',
    startedAt: startedAt.toISOString(),
    finishedAt: null as string | null,
    machine: machineInfo(ROOT),
    options: recorded,
    /** How every bench process that runs relay code was started: compiled (compiled.ts), as bin/sealrelay.js starts the relay. */
    processes: { code: 'compiled JavaScript (tsc, the project options), no TypeScript loader', nodeFlags: SHIPPED_NODE_FLAGS, env: { ...SHIPPED_ENV, ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(NODE_OPTIONS|UV_THREADPOOL_SIZE)$/.test(k))) } },
    message: 'bench/message.ts: text part + base64 attachment (application/pdf) of random bytes, CRLF lines; one message per recipient',
    settings: 'portal.* at their defaults (no key_in_link, no passphrase); store SQLite (WAL) on its own thread, as the relay opens it',
    store: [] as StoreCaseResult[],
    pages: null as PagesResult | null,
    errors: [] as { case: string; error: string }[],
  };
  const save = () => writeFileSync(resultFile, `${JSON.stringify(results, null, 2)}\n`);
  log(`machine: ${results.machine.nproc} cores, ${mbText(results.machine.memoryBytes)} RAM, node ${results.machine.node}; background load is recorded per case`);
  log('compiling the bench children and the relay code they run (tsc, as dist/ is built)…');
  const compiled = compileBenchChildren(join(work, 'build'), [STORE_CHILD, SERVER_CHILD]);

  if (opts.scenarios.includes('store')) {
    for (const parallel of opts.parallel) {
      try {
        const r = await runStoreCase(opts, parallel, work, compiled[STORE_CHILD]!);
        results.store.push(r);
        log(`${r.name}: ${r.itemsPerSec} items/s, ${r.cpuMsPerItem} ms CPU per item, peak RSS ${mbText(r.peakRssBytes)}`);
      } catch (err) {
        log(`store-p${parallel} failed: ${(err as Error).message}`);
        results.errors.push({ case: `store-p${parallel}`, error: (err as Error).message });
      }
      save();
    }
  }
  if (opts.scenarios.includes('pages')) {
    try {
      results.pages = await runPages(opts, work, compiled[SERVER_CHILD]!, (pages) => {
        results.pages = pages;
        save();
      });
    } catch (err) {
      log(`pages failed: ${(err as Error).stack ?? (err as Error).message}`);
      results.errors.push({ case: 'pages', error: (err as Error).message });
    }
  }
  results.finishedAt = new Date().toISOString();
  save();
  console.log(summary(results.store, results.pages, results.errors));
  console.log(`\nresults: ${resultFile}`);
  const failedRequests = results.pages?.phases.some((p) => p.errors > 0) ?? false;
  return results.errors.length || failedRequests ? 1 : 0;
}

function oneLine(p: PhaseResult): string {
  return `pages/${p.phase}: ${p.requestsPerSec} req/s, p50 ${p.latencyMs.p50} ms, p99 ${p.latencyMs.p99} ms, max ${p.latencyMs.max} ms, ${p.errors} errors; server ${p.server.cpuMsPerRequest} ms CPU per request, peak RSS ${mbText(p.server.peakRssBytes)}`;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => '  ' + r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function summary(store: readonly StoreCaseResult[], pages: PagesResult | null, errors: readonly { case: string; error: string }[]): string {
  const lines = ['', '=== SealRelay portal benchmark ==='];
  if (store.length) {
    lines.push('', `items stored (message ${mbText(store[0]!.messageBytes)}: read, seal + notification, durable commit, as delivery does):`);
    lines.push(
      ...table(
        ['case', 'at once', 'items', 'items/s', 'MB/s', 'per item p50/p99', 'hand p50', 'commit p50', 'CPU/item', 'peak RSS'],
        store.map((c) => [c.name, String(c.parallel), String(c.items), c.itemsPerSec.toFixed(1), c.mbPerSec.toFixed(1), `${ms(c.itemMs.p50)}/${ms(c.itemMs.p99)}`, ms(c.handMs.p50), ms(c.commitMs.p50), ms(c.cpuMsPerItem), mbText(c.peakRssBytes)]),
      ),
    );
    lines.push('  (CPU = all threads of the process; peak RSS = VmHWM over the measured items, each case in its own process)');
  }
  if (pages) {
    lines.push('', `pages (${pages.recipients} recipients at once over HTTPS on loopback, each its own item of ${mbText(pages.messageBytes)}, session and address; server in its own process):`);
    lines.push(
      ...table(
        ['phase', 'requests', 'req/s', 'p50', 'p90', 'p99', 'max', 'errors', 'server CPU/req', 'server cores', 'server peak RSS'],
        pages.phases.map((p) => [p.phase, String(p.requests), p.requestsPerSec.toFixed(1), ms(p.latencyMs.p50), ms(p.latencyMs.p90), ms(p.latencyMs.p99), ms(p.latencyMs.max), String(p.errors), ms(p.server.cpuMsPerRequest), p.server.cores.toFixed(2), mbText(p.server.peakRssBytes)]),
      ),
    );
    lines.push(`  server RSS: ${mbText(pages.server.idleRssBytes)} idle, ${mbText(pages.server.seededRssBytes)} with the items stored; ${pages.setup.seeded.items} items stored in ${(pages.setup.seeded.ms / 1000).toFixed(1)} s, every recipient verified in ${(pages.setup.proofMs / 1000).toFixed(1)} s`);
    for (const p of pages.phases) for (const e of p.errorSamples) lines.push(`  ERROR ${e}`);
  }
  const noisy = [...store.map((c) => [c.name, c.backgroundBusy] as const), ...(pages?.phases.map((p) => [`pages/${p.phase}`, p.backgroundBusy] as const) ?? [])].filter(([, b]) => b > NOISY_BACKGROUND);
  if (noisy.length) lines.push('', `NOTE: the cores were ${noisy.map(([n, b]) => `${pct(b)} busy before ${n}`).join(', ')} with the bench idle: someone else's load skews these times`);
  for (const e of errors) lines.push(`ERROR in ${e.case}: ${e.error}`);
  return lines.join('\n');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const round = (x: number): number => Math.round(x * 100) / 100;
const pct = (x: number): string => `${Math.round(x * 100)}%`;
const ms = (x: number): string => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;
const mbText = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

const code = await main().catch((err: unknown) => {
  console.error('bench:portal: unexpected error:', err);
  return 1;
});
runCleanups();
process.exit(code);
