// load: the load generator. K SMTP sessions, each kept open for the whole run
// as an application's connection pool would, share N messages between them:
// each session takes the next message number, sends it, says RSET, and takes
// the next. The submission hop uses STARTTLS by default (an app talking to a
// relay over the LAN should), `tls: 'plain'` skips it.
//
// Accept latency is timed per message from the start of MAIL FROM to the 250
// after the final dot, i.e. the span of SMTPConnection#send(); the RSET between
// messages is outside it. That 250 is the relay's promise that the message is
// durable, so this is the latency an application sees for "queued".
//
// With `ratePerSec` the run is paced: message i may not start before
// start + i/rate. A session that is still busy sends its next message late, so
// the load can only fall below the rate, never exceed it.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { epochMs } from './clock.ts';
import { messageFactory } from './message.ts';

export interface LoadOptions {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  /** The messages to submit (built by message.ts on the load generator's own thread). */
  message: { size: number; domain: string };
  /** Prefix of every X-Bench-Id, so runs cannot be confused. */
  runTag: string;
  tls: 'starttls' | 'plain';
  /** Messages per second across all sessions; unpaced when absent. */
  ratePerSec?: number;
  /** The whole load gives up after this long; what did not finish counts as failed. */
  timeoutMs: number;
}

export interface Submission {
  id: string;
  /** Epoch ms at MAIL FROM. */
  startedAt: number;
  /** MAIL FROM → 250 after DATA, ms. */
  latencyMs: number;
}

export interface LoadResult {
  /** Epoch ms: the first MAIL FROM, and the last 250 (or failure). */
  startedAt: number;
  endedAt: number;
  submissions: Submission[];
  failed: number;
  /** The first few distinct failure texts, for the results file. */
  errors: string[];
  connections: number;
  /** Whether the submission sessions ran over STARTTLS (every one of them). */
  tls: boolean;
  timedOut: boolean;
}

/** Per-command timeouts of the client, ms: generous, the relay may be saturated on purpose. */
const CONNECT_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 60_000;
/** A session whose connection broke is reopened at most this many times. */
const MAX_RECONNECTS_PER_SESSION = 3;
const MAX_ERRORS_KEPT = 5;

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  let next = 0;
  let failed = 0;
  let connections = 0;
  let allTls = true;
  let timedOut = false;
  const errors = new Set<string>();
  const submissions: Submission[] = [];
  const open = new Set<SMTPConnection>();
  const t0 = performance.now();
  const startedAt = epochMs();
  const factory = messageFactory(opts.message);
  const noteError = (err: unknown) => {
    if (errors.size < MAX_ERRORS_KEPT) errors.add(String((err as Error)?.message ?? err));
  };

  const deadline = setTimeout(() => {
    timedOut = true;
    for (const c of open) c.close();
  }, opts.timeoutMs);

  const session = async () => {
    let conn: SMTPConnection | null = null;
    let reconnects = 0;
    let used = false;
    try {
      while (!timedOut) {
        const i = next++;
        if (i >= opts.messages) break;
        if (opts.ratePerSec) {
          const wait = t0 + (i * 1000) / opts.ratePerSec - performance.now();
          if (wait > 0) await sleep(wait);
        }
        if (!conn) {
          if (reconnects++ > MAX_RECONNECTS_PER_SESSION) {
            failed++;
            continue;
          }
          try {
            conn = await connect(opts);
            connections++;
            open.add(conn);
            used = false;
            if (!conn.secure) allTls = false;
          } catch (err) {
            noteError(err);
            failed++;
            conn = null;
            continue;
          }
        }
        const c: SMTPConnection = conn;
        const id = `${opts.runTag}-${i}`;
        const message = factory.build(id, i);
        try {
          // RSET between transactions, as nodemailer's pool and most apps do.
          if (used) await call<boolean | undefined>((cb) => c.reset(cb));
          used = true;
          const begin = performance.now();
          const startedAt = epochMs();
          await call((cb) => c.send({ from: factory.sender, to: [factory.recipient(i)] }, message, cb));
          submissions.push({ id, startedAt, latencyMs: performance.now() - begin });
        } catch (err) {
          noteError(err);
          failed++;
          // A reply error leaves the session usable; a broken socket does not.
          if (!c._socket || c._socket.destroyed) {
            open.delete(c);
            c.close();
            conn = null;
          }
        }
      }
    } finally {
      if (conn) {
        open.delete(conn);
        conn.quit();
      }
    }
  };

  await Promise.all(Array.from({ length: Math.max(1, opts.sessions) }, session));
  clearTimeout(deadline);
  // Messages never started because of the timeout count as failed too.
  failed += Math.max(0, opts.messages - next);
  const endedAt = submissions.reduce((last, s) => Math.max(last, s.startedAt + s.latencyMs), startedAt);
  return { startedAt, endedAt, submissions, failed, errors: [...errors], connections, tls: allTls && opts.tls === 'starttls', timedOut };
}

function connect(opts: LoadOptions): Promise<SMTPConnection> {
  const conn = new SMTPConnection({
    host: opts.host,
    port: opts.port,
    name: 'app.bench.local',
    ignoreTLS: opts.tls === 'plain',
    requireTLS: opts.tls === 'starttls',
    // The relay's submission certificate is its self-signed dev pair; this hop is not what is measured.
    tls: { rejectUnauthorized: false },
    connectionTimeout: CONNECT_TIMEOUT_MS,
    greetingTimeout: CONNECT_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
  });
  return new Promise((resolve, reject) => {
    // Errors after connect surface through the send/reset callbacks; this only keeps them from crashing us.
    conn.on('error', reject);
    conn.connect((err) => (err ? reject(err) : resolve(conn)));
  });
}

function call<T>(start: (cb: (err: Error | null, result?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => start((err, result) => (err ? reject(err) : resolve(result))));
}
