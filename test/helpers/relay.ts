/**
 * relay: a whole SealRelay started in-process exactly as `sealrelay start` does
 * (startRelay), on port 0, with a temp SQLite store, DNS going to a local stub,
 * and the test CA as the trust store; plus a submitting client.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { configSchema, type Config } from '../../src/config/schema.ts';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { createLogger } from '../../src/log.ts';
import { startRelay, type Relay } from '../../src/relay.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { sharedTestCa, writeTemp } from './test-ca.ts';

/** A config for tests: port-0 listener, temp store, fast retries, the test CA trusted. */
export function testConfig(over: Record<string, unknown> = {}): Config {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-relay-'));
  const base = {
    server: { hostname: 'relay.sealrelay.test' },
    store: { path: join(dir, 'sealrelay.db') },
    ingress: {
      listeners: { starttls: { host: '127.0.0.1', port: 0, tls: 'starttls' } },
      // The development names: a missing pair is generated only under them (ingress/dev-cert.ts).
      cert_file: join(dir, 'sealrelay-dev.crt'),
      key_file: join(dir, 'sealrelay-dev.key'),
      users_file: join(dir, 'users.yaml'),
    },
    tls: { ca_file: writeTemp('test-ca.pem', sharedTestCa().certPem) },
    delivery: {
      poll_interval_ms: 100,
      connect_timeout_ms: 3000,
      greeting_timeout_ms: 3000,
      socket_timeout_ms: 5000,
      retry: { first_seconds: 0.3, max_seconds: 1, factor: 2, lifetime_seconds: 60 },
      idle_reuse_ms: 500,
      shutdown_grace_seconds: 5,
    },
    // MTA-STS only where a test turns it on with its own DNS stub and policy server.
    mta_sts: { enabled: false },
    logging: { level: process.env.SEALRELAY_TEST_LOG ?? 'silent' },
  };
  return configSchema.parse(merge(base, over));
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export interface TestRelay {
  relay: Relay;
  config: Config;
  port: number;
  /** Delivery records so far, read from the store file like the CLI does. */
  records(filter?: Parameters<SqliteStore['queryRecords']>[0]): Promise<DeliveryRecord[]>;
  /** Waits until `predicate` holds for the records (polling the store). */
  waitForRecords(predicate: (records: DeliveryRecord[]) => boolean, timeoutMs?: number): Promise<DeliveryRecord[]>;
  close(): Promise<void>;
}

export async function startTestRelay(config: Config): Promise<TestRelay> {
  const relay = await startRelay({ config, logger: createLogger(config.logging.level) });
  const reader = new SqliteStore(config.store.path);
  const records = (filter = {}) => reader.queryRecords(filter);
  return {
    relay,
    config,
    port: relay.listeners[0]!.port,
    records,
    async waitForRecords(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const all = await records();
        if (predicate(all)) return all;
        if (Date.now() > deadline) throw new Error(`records never matched; have ${JSON.stringify(all.map((r) => [r.recipient, r.outcome, r.smtp.response]))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      await relay.close();
      await reader.close();
    },
  };
}

export interface SubmitOptions {
  port: number;
  from: string;
  to: string[];
  body?: string | Buffer;
  auth?: { user: string; pass: string };
  /** Use STARTTLS toward the relay (default true); the relay's cert is self-signed. */
  tls?: boolean;
}

/** Submits one message; resolves with the server's final reply text. */
export async function submit(opts: SubmitOptions): Promise<string> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port: opts.port,
    ignoreTLS: opts.tls === false,
    tls: { rejectUnauthorized: false },
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 10_000,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    if (opts.auth) await new Promise<void>((resolve, reject) => conn.login(opts.auth!, (err) => (err ? reject(err) : resolve())));
    const body = opts.body ?? `From: <${opts.from}>\r\nTo: <${opts.to.join('>, <')}>\r\nSubject: test\r\n\r\nhello\r\n`;
    const info = await new Promise<{ response: string }>((resolve, reject) =>
      conn.send({ from: opts.from, to: opts.to }, body, (err, info) => (err ? reject(err) : resolve(info as { response: string }))),
    );
    return info.response;
  } finally {
    conn.quit();
  }
}

export function queueIdOf(response: string): string {
  const m = /queued as ([A-Za-z0-9]+)/.exec(response);
  if (!m) throw new Error(`no queue id in "${response}"`);
  return m[1] as string;
}

/** A sink for the logger that keeps every JSON line, to assert on what was logged. */
export function logCapture(): { stream: Writable; lines: Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    stream,
    get lines() {
      return chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    text: () => chunks.join(''),
  };
}
