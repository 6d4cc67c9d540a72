// load: the load generator in Node (nodemailer's SMTP connection), the one that
// times every message. K senders share N messages: each takes the next message
// number, sends it, and takes the next. How a sender submits (`connection`):
//
//   session      one connection kept open for the whole run, as an application's
//                connection pool would (RSET between messages; smtp-source -d)
//   per-message  a new connection per message: connect, greeting, EHLO,
//                [STARTTLS, EHLO,] MAIL, RCPT, DATA, QUIT, close — as nodemailer
//                without `pool`, PHPMailer without SMTPKeepAlive, cron jobs and
//                smtp-source without -d do
//
// `tls: 'starttls'` upgrades every connection (an app talking to a relay over the
// LAN should); `tls: 'plain'` does not (what smtp-source does).
//
// Accept latency is timed per message up to the 250 after the final dot, the
// relay's promise that the message is durable, i.e. the latency an application
// sees for "queued". It starts at MAIL FROM in a kept-open session (the span of
// SMTPConnection#send(); the RSET between messages is outside it) and at the TCP
// connect with a new connection per message (the greeting, EHLO and STARTTLS are
// part of what the application waits for; QUIT is not).
//
// With `ratePerSec` the run is paced: message i may not start before
// start + i/rate. A session that is still busy sends its next message late, so
// the load can only fall below the rate, never exceed it.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { shutdown } from '../src/delivery/connection.ts';
import { epochMs } from './clock.ts';
import { messageFactory } from './message.ts';
import { threadCpuMs } from './proc-stats.ts';

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
  /** A connection kept open per sender, or a new one per message. */
  connection: 'session' | 'per-message';
  /** Messages per second across all sessions; unpaced when absent. */
  ratePerSec?: number;
  /** The whole load gives up after this long; what did not finish counts as failed. */
  timeoutMs: number;
}

export interface Submission {
  id: string;
  /** Epoch ms at MAIL FROM (session) or at connect (per-message). */
  startedAt: number;
  /** From startedAt to the 250 after DATA, ms. */
  latencyMs: number;
  /** Per-message connections: connect → ready for MAIL FROM (greeting, EHLO, STARTTLS), ms. */
  connectMs?: number;
}

export interface LoadResult {
  /** Epoch ms: the first MAIL FROM, and the last 250 (or failure). */
  startedAt: number;
  endedAt: number;
  submissions: Submission[];
  /** Messages that got their 250 (= submissions.length). */
  accepted: number;
  failed: number;
  /** The first few distinct failure texts, for the results file. */
  errors: string[];
  connections: number;
  /** Whether the submission sessions ran over STARTTLS (every one of them). */
  tls: boolean;
  timedOut: boolean;
  /** CPU of the generator's own thread over the load, ms (/proc/thread-self). */
  cpuMs: number;
}

/** Per-command timeouts of the client, ms: generous, the relay may be saturated on purpose. */
const CONNECT_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 60_000;
/** A session whose connection broke is reopened at most this many times. */
const MAX_RECONNECTS_PER_SESSION = 3;
const MAX_ERRORS_KEPT = 5;
/** A per-message connection waits this long at most for the server to close after QUIT. */
const QUIT_TIMEOUT_MS = 10_000;

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  let next = 0;
  let failed = 0;
  let connections = 0;
  let allTls = true;
  let timedOut = false;
  const errors = new Set<string>();
  const submissions: Submission[] = [];
  const open = new Set<SMTPConnection>();
  const cpu0 = threadCpuMs();
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

  /** The next message number to send, after the pacing wait; null when the run is over. */
  const take = async (): Promise<number | null> => {
    if (timedOut) return null;
    const i = next++;
    if (i >= opts.messages) return null;
    if (opts.ratePerSec) {
      const wait = t0 + (i * 1000) / opts.ratePerSec - performance.now();
      if (wait > 0) await sleep(wait);
    }
    return i;
  };

  const perMessage = async () => {
    for (let i = await take(); i !== null; i = await take()) {
      const id = `${opts.runTag}-${i}`;
      const message = factory.build(id, i);
      const begin = performance.now();
      const startedAt = epochMs();
      let conn: SMTPConnection;
      try {
        conn = await connect(opts);
      } catch (err) {
        noteError(err);
        failed++;
        continue;
      }
      connections++;
      open.add(conn);
      if (!conn.secure) allTls = false;
      const connectMs = performance.now() - begin;
      try {
        await call((cb) => conn.send({ from: factory.sender, to: [factory.recipient(i)] }, message, cb));
        submissions.push({ id, startedAt, latencyMs: performance.now() - begin, connectMs });
      } catch (err) {
        noteError(err);
        failed++;
      } finally {
        // Like an application without a pool: QUIT, and the next message waits for the close.
        await shutdown(conn, QUIT_TIMEOUT_MS);
        open.delete(conn);
      }
    }
  };

  const session = async () => {
    let conn: SMTPConnection | null = null;
    let reconnects = 0;
    let used = false;
    try {
      for (let i = await take(); i !== null; i = await take()) {
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

  await Promise.all(Array.from({ length: Math.max(1, opts.sessions) }, opts.connection === 'per-message' ? perMessage : session));
  clearTimeout(deadline);
  // Messages never started because of the timeout count as failed too.
  failed += Math.max(0, opts.messages - next);
  const endedAt = submissions.reduce((last, s) => Math.max(last, s.startedAt + s.latencyMs), startedAt);
  return { startedAt, endedAt, submissions, accepted: submissions.length, failed, errors: [...errors], connections, tls: allTls && opts.tls === 'starttls', timedOut, cpuMs: threadCpuMs() - cpu0 };
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
