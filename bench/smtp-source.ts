// smtp-source: Postfix's own load generator (smtp-source(1), Debian's postfix
// package) as the bench's load, the tool the issue's reference figures came from.
// It is C, one process, one event loop: it costs the shared cores far less per
// message than a Node client, which leaves them to the relay and the receiver.
//
//   smtp-source -s K -m N [-d] -f SENDER -t RECIPIENT -F FILE -M HELO 127.0.0.1:PORT
//
// -s K parallel sessions share N messages; without -d each message gets a new
// connection (connect, greeting, EHLO, MAIL, RCPT, DATA, QUIT), with -d a session
// keeps its connection for the next message. Every message is FILE (the bench's
// message from message.ts, LF line ends: smtp-source adds CRLF and dot-stuffs).
//
// What it cannot do: STARTTLS (submission is plaintext) and timing single
// messages, so runs driven by it have msgs/s and CPU but no accept latency (the
// Node generator, load.ts, times every message). Without -A it exits non-zero at
// the first reply that is not the expected one, so exit 0 means all N accepted.
// Its CPU is read from this process's reaped-children total (cutime+cstime) once
// it has exited and been reaped: exact, with nothing sampled.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { epochMs } from './clock.ts';
import { onCleanup } from './cleanup.ts';
import { messageFactory } from './message.ts';
import { reapedChildrenCpuMs } from './proc-stats.ts';

export const SMTP_SOURCE = '/usr/sbin/smtp-source';
const MAX_STDERR_CHARS = 2000;

export interface SmtpSourceOptions {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  connection: 'session' | 'per-message';
  /** Written by writeSmtpSourceMessage. */
  messageFile: string;
  sender: string;
  recipient: string;
  timeoutMs: number;
}

/** The same load result as load.ts gives, without per-message timings. */
export interface SmtpSourceResult {
  startedAt: number;
  endedAt: number;
  accepted: number;
  failed: number;
  errors: string[];
  connections: number;
  tls: false;
  timedOut: boolean;
  cpuMs: number;
  submissions: [];
}

export function smtpSourceUnavailable(): string | null {
  return existsSync(SMTP_SOURCE) ? null : `${SMTP_SOURCE} is not installed (it comes with Debian's postfix package: npm run test:setup)`;
}

/** The bench message (message.ts) as smtp-source -F wants it; returns the envelope to use with it. */
export function writeSmtpSourceMessage(file: string, opts: { size: number; domain: string }, runTag: string): { sender: string; recipient: string } {
  const factory = messageFactory(opts);
  writeFileSync(file, factory.build(`${runTag}-smtp-source`, 0).toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
  return { sender: factory.sender, recipient: factory.recipient(0) };
}

export function runSmtpSource(opts: SmtpSourceOptions): Promise<SmtpSourceResult> {
  const args = [
    '-s', String(opts.sessions),
    '-m', String(opts.messages),
    ...(opts.connection === 'session' ? ['-d'] : []),
    '-f', opts.sender,
    '-t', opts.recipient,
    '-F', opts.messageFile,
    '-M', 'app.bench.local',
    `${opts.host}:${opts.port}`,
  ];
  const cpu0 = reapedChildrenCpuMs();
  const startedAt = epochMs();
  const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const forget = onCleanup('smtp-source', () => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < MAX_STDERR_CHARS) stderr += chunk;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      forget();
      reject(new Error(`smtp-source did not run: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      const endedAt = epochMs();
      clearTimeout(timer);
      forget();
      const ok = code === 0 && !timedOut;
      resolve({
        startedAt,
        endedAt,
        // Exit 0 without -A: every message got its 250.
        accepted: ok ? opts.messages : 0,
        failed: ok ? 0 : opts.messages,
        errors: ok ? [] : [`smtp-source ${timedOut ? `timed out after ${opts.timeoutMs} ms` : `exited with ${code ?? signal}`}: ${stderr.trim().slice(-500)}`],
        connections: opts.connection === 'session' ? opts.sessions : opts.messages,
        tls: false,
        timedOut,
        cpuMs: reapedChildrenCpuMs() - cpu0,
        submissions: [],
      });
    });
  });
}
