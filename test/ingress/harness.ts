/**
 * Ingress test harness: a real startIngress on 127.0.0.1 port 0 with a dev
 * certificate made by dev-cert.ts, a recording stub for Store.enqueue (the store is
 * not under test here), captured pino output, and a raw-socket SMTP client that
 * can STARTTLS on the same socket and write exact bytes.
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { configSchema, type Config } from '../../src/config/schema.ts';
import { ensureDevCertificate } from '../../src/ingress/dev-cert.ts';
import { startIngress, type Ingress } from '../../src/ingress/index.ts';
import { hashPassword, type User, type UserDirectory } from '../../src/ingress/users.ts';
import { createLogger } from '../../src/log.ts';
import type { NewMessage, QueueEntry } from '../../src/store/store.ts';

export const HOSTNAME = 'relay.ingress.test';

let cert: { cert: string; key: string } | null = null;
/** One dev certificate per test file (RSA keygen takes a moment). */
export function testCertificate(): { cert: string; key: string } {
  if (!cert) {
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-ingress-cert-'));
    cert = ensureDevCertificate(join(dir, 'dev.crt'), join(dir, 'dev.key'), HOSTNAME);
  }
  return cert;
}

export type Over = Record<string, unknown>;

/** A valid Config with one listener named `submission` (port 0) plus `ingress` overrides. */
export function ingressConfig(ingress: Over = {}, over: Over = {}): Config {
  return configSchema.parse({
    server: { hostname: HOSTNAME },
    ingress: { listeners: { submission: { host: '127.0.0.1', port: 0, tls: 'starttls' } }, ...ingress },
    logging: { level: 'debug' },
    ...over,
  });
}

/** Cheap scrypt parameters: tests hash many passwords; the format is the same. */
export async function testUsers(spec: Record<string, { password: string; requireTls?: boolean }>): Promise<UserDirectory> {
  const users = new Map<string, User>();
  for (const [name, { password, requireTls }] of Object.entries(spec)) {
    users.set(name, { name, passwordHash: await hashPassword(password, { N: 1024, r: 8, p: 1 }), requireTls: requireTls ?? false });
  }
  return users;
}

/** Records what ingress enqueues; can fail or hold the commit (the store itself is tested elsewhere). */
export class RecordingStore {
  readonly messages: NewMessage[] = [];
  /** Events in order, to prove the 250 came after the commit. */
  readonly events: string[] = [];
  /** Parts staged per queue id (stageBodyPart), until enqueued or discarded. */
  readonly staged = new Map<string, Buffer[]>();
  failNext = 0;
  /** The next stageBodyPart calls that fail, as a store that cannot write would. */
  failStage = 0;
  #hold: Promise<void> | null = null;
  #release: (() => void) | null = null;

  /** Until release(), enqueue does not resolve. */
  hold(): void {
    this.#hold = new Promise((resolve) => (this.#release = resolve));
  }

  release(): void {
    this.#release?.();
    this.#hold = null;
  }

  async enqueue(message: NewMessage): Promise<void> {
    this.events.push(`enqueue-start ${message.queueId}`);
    if (this.#hold) await this.#hold;
    if (this.failNext > 0) {
      this.failNext--;
      this.events.push(`enqueue-failed ${message.queueId}`);
      throw new Error('disk full (simulated)');
    }
    // Recorded whole, as the store would read it back: the head, then the staged parts.
    const parts = this.staged.get(message.queueId) ?? [];
    const staged = message.staged ?? { parts: 0, bytes: 0 };
    if (parts.length !== staged.parts || parts.reduce((n, p) => n + p.length, 0) !== staged.bytes) throw new Error(`${message.queueId}: staged parts do not match`);
    this.staged.delete(message.queueId);
    this.messages.push({ ...message, body: Buffer.concat([message.body, ...parts]), staged: undefined });
    this.events.push(`enqueue-committed ${message.queueId}`);
  }

  async stageBodyPart(queueId: string, part: number, data: Buffer): Promise<void> {
    if (this.failStage > 0) {
      this.failStage--;
      this.events.push(`stage-failed ${queueId} ${part}`);
      throw new Error('cannot write (simulated)');
    }
    const parts = this.staged.get(queueId) ?? [];
    if (part !== parts.length + 1) throw new Error(`${queueId}: part ${part} staged out of order`);
    parts.push(Buffer.from(data));
    this.staged.set(queueId, parts);
    this.events.push(`stage ${queueId} ${part}`);
  }

  async discardStaged(queueId: string): Promise<void> {
    this.staged.delete(queueId);
    this.events.push(`discard ${queueId}`);
  }

  async readBody(queueId: string): Promise<Buffer | null> {
    const parts = this.staged.get(queueId);
    return parts ? Buffer.concat(parts) : null;
  }

  /** Ingress asks this only for a message carrying our own Received stamp (loop check): anything committed counts as still queued. */
  async getQueueEntry(queueId: string): Promise<QueueEntry | null> {
    const m = this.messages.find((x) => x.queueId === queueId);
    if (!m) return null;
    const recipients = m.recipients.map((recipient, seq) => ({ seq, recipient, state: 'queued' as const, attempts: 0, nextAttemptAt: m.receivedAt, lastError: null, leasedUntil: null }));
    return { queueId, sender: m.sender, messageId: m.messageId, size: m.body.length, receivedAt: m.receivedAt, recipients };
  }
}

export interface LogLine {
  level: number;
  event?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface TestIngress {
  ingress: Ingress;
  store: RecordingStore;
  logs: LogLine[];
  /** The raw JSON text of every log line, to check that secrets never appear. */
  rawLogs: string[];
  port(name?: string): number;
  close(): Promise<void>;
}

export async function startTestIngress(opts: { config?: Config; users?: UserDirectory; store?: RecordingStore; drainTimeoutMs?: number } = {}): Promise<TestIngress> {
  const config = opts.config ?? ingressConfig();
  const store = opts.store ?? new RecordingStore();
  const logs: LogLine[] = [];
  const rawLogs: string[] = [];
  const logger = createLogger('debug', {
    write(line: string) {
      rawLogs.push(line);
      logs.push(JSON.parse(line) as LogLine);
    },
  });
  const ingress = await startIngress({
    config,
    store,
    logger,
    tlsCredentials: testCertificate(),
    users: opts.users ?? new Map(),
    onQueued: (id) => store.events.push(`onQueued ${id}`),
    drainTimeoutMs: opts.drainTimeoutMs ?? 2000,
  });
  return {
    ingress,
    store,
    logs,
    rawLogs,
    port(name) {
      const l = name ? ingress.listeners.find((x) => x.name === name) : ingress.listeners[0];
      if (!l) throw new Error(`no listener ${name}`);
      return l.port;
    },
    close: () => ingress.close(),
  };
}

export interface Reply {
  code: number;
  /** All lines, without the code and separator. */
  lines: string[];
  /** The last line's text, e.g. "5.7.1 Relay access denied". */
  text: string;
}

/**
 * A raw SMTP client: exact bytes out, replies parsed as RFC 5321 §4.2 multiline
 * replies. Every reply line is checked against the reply grammar.
 */
export class RawClient {
  #socket: net.Socket | tls.TLSSocket;
  #buffer = '';
  #replies: Reply[] = [];
  #waiters: ((r: Reply) => void)[] = [];
  #pending: string[] = [];
  closed = false;
  readonly errors: Error[] = [];

  private constructor(socket: net.Socket | tls.TLSSocket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  static async connect(port: number, opts: { implicitTls?: boolean } = {}): Promise<RawClient> {
    const socket = opts.implicitTls
      ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: HOSTNAME })
      : net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once(opts.implicitTls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Connects and reads the greeting; fails unless it is 220. */
  static async open(port: number, opts: { implicitTls?: boolean } = {}): Promise<RawClient> {
    const client = await RawClient.connect(port, opts);
    const greeting = await client.reply();
    if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.text}`);
    return client;
  }

  get socket(): net.Socket | tls.TLSSocket {
    return this.#socket;
  }

  get tlsSocket(): tls.TLSSocket | null {
    return this.#socket instanceof tls.TLSSocket ? this.#socket : null;
  }

  write(data: string | Buffer): void {
    this.#socket.write(data);
  }

  async cmd(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  reply(timeoutMs = 5000): Promise<Reply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no reply within ${timeoutMs} ms (closed=${this.closed})`));
      }, timeoutMs);
      const waiter = (r: Reply) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#waiters.push(waiter);
    });
  }

  /** Replies that arrive within `ms` (for "exactly one reply" checks). */
  async repliesWithin(ms: number): Promise<Reply[]> {
    await new Promise((r) => setTimeout(r, ms));
    const out = this.#replies;
    this.#replies = [];
    return out;
  }

  async ehlo(name = 'app.ingress.test'): Promise<Reply> {
    return this.cmd(`EHLO ${name}`);
  }

  /** STARTTLS, then the TLS handshake on the same socket. */
  async starttls(opts: tls.ConnectionOptions = {}): Promise<void> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS got ${r.code} ${r.text}`);
    await this.upgrade(opts);
  }

  /** The TLS handshake on the current socket, without sending STARTTLS. */
  async upgrade(opts: tls.ConnectionOptions = {}): Promise<void> {
    const raw = this.#socket;
    raw.removeAllListeners('data');
    const secure = tls.connect({ socket: raw as net.Socket, rejectUnauthorized: false, servername: HOSTNAME, ...opts });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#buffer = '';
    this.#attach(secure);
  }

  async authPlain(user: string, password: string): Promise<Reply> {
    return this.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`);
  }

  /** MAIL, RCPTs, DATA and the message; returns the reply to the final dot (or the first refusal). */
  async send(from: string, to: string[], message: string): Promise<Reply> {
    const mail = await this.cmd(`MAIL FROM:<${from}>`);
    if (mail.code !== 250) return mail;
    for (const rcpt of to) {
      const r = await this.cmd(`RCPT TO:<${rcpt}>`);
      if (r.code !== 250) return r;
    }
    const data = await this.cmd('DATA');
    if (data.code !== 354) return data;
    this.write(message.replace(/\r\n\./g, '\r\n..') + '\r\n.\r\n');
    return this.reply();
  }

  async quit(): Promise<void> {
    if (!this.closed) {
      this.write('QUIT\r\n');
      await Promise.race([new Promise((r) => this.#socket.once('close', r)), new Promise((r) => setTimeout(r, 500))]);
    }
    this.destroy();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once('close', () => resolve()));
  }

  #attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', (chunk: Buffer) => this.#onData(chunk.toString('latin1')));
    socket.on('error', (err) => this.errors.push(err));
    socket.on('close', () => (this.closed = true));
  }

  #onData(text: string): void {
    this.#buffer += text;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\r\n')) >= 0) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 2);
      // RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
      const m = /^([2-5][0-5][0-9])([ -])(.*)$/.exec(line) ?? /^([2-5][0-5][0-9])()()$/.exec(line);
      if (!m) throw new Error(`reply line does not match RFC 5321 grammar: ${JSON.stringify(line)}`);
      this.#pending.push(m[3] as string);
      if (m[2] === '-') continue;
      const reply = { code: Number(m[1]), lines: this.#pending, text: m[3] as string };
      this.#pending = [];
      const waiter = this.#waiters.shift();
      if (waiter) waiter(reply);
      else this.#replies.push(reply);
    }
  }
}

/** One message from app@clinic.test to ann@example.test over a new session: the reply to DATA and what was queued. */
export async function submitOne(t: TestIngress, message: string): Promise<{ reply: Reply; queued: NewMessage[] }> {
  const before = t.store.messages.length;
  const c = await RawClient.open(t.port());
  await c.ehlo();
  const reply = await c.send('app@clinic.test', ['ann@example.test'], message);
  await c.quit();
  return { reply, queued: t.store.messages.slice(before) };
}

/** A minimal RFC 5322 message. */
export function message(subject = 'hello', extraHeaders = ''): string {
  return `From: app@clinic.test\r\nTo: patient@example.test\r\nSubject: ${subject}\r\n${extraHeaders}\r\nbody line\r\n`;
}

/** One row step: the command line, the expected reply code, optionally a pattern for the reply text. */
export type Step = readonly [command: string, code: number, text?: RegExp];

/** "AUTH PLAIN <base64>" for user/password (RFC 4616). */
export const plain = (user: string, password: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`;
export const b64 = (s: string) => Buffer.from(s).toString('base64');

/**
 * Runs steps in order; "STARTTLS" expecting 220 also performs the handshake.
 * Returns a transcript for a readable failure message.
 */
export async function runSteps(client: RawClient, steps: readonly Step[]): Promise<string[]> {
  const transcript: string[] = [];
  for (const [command, code, text] of steps) {
    const reply = await client.cmd(command);
    transcript.push(`C: ${command}`, `S: ${reply.code} ${reply.lines.join(' | ')}`);
    const ok = reply.code === code && (!text || text.test(reply.text));
    if (!ok) throw new Error(`expected ${code}${text ? ` ${text}` : ''} for "${command}"\n${transcript.join('\n')}`);
    if (command === 'STARTTLS' && code === 220) await client.upgrade();
  }
  return transcript;
}
