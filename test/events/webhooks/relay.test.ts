// Webhooks end to end: the real relay (startRelay) takes mail over SMTP, delivers it
// to a real MX, and sends every event to real HTTP receivers on loopback. Checked by
// the receivers: each request is signed (the test's own node:crypto HMAC, and the
// README's snippet verbatim) by every secret of a rotation; the body is the event
// without the subject; 500s are retried with the same event id; a dead endpoint
// that comes back gets everything; one message's events arrive in order; an
// endpoint gets only its event types.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RelayEvent } from '../../../src/events/event.ts';
import { createLogger } from '../../../src/log.ts';
import { startRelay, type Relay } from '../../../src/relay.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../../helpers/mx.ts';
import { logCapture, queueIdOf, submit, testConfig } from '../../helpers/relay.ts';
import { independentlyVerified, payloadOf, startReceiver, type ReceivedRequest, type Receiver } from './receiver.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const SNIPPET_FILE = join(ROOT, 'config', 'webhook-verify.mjs');
type Verify = (body: string, header: string, secret: string, toleranceSeconds?: number) => boolean;

const OLD_SECRET = 'old-secret-read-from-a-file-0123456789';
const NEW_SECRET = 'new-secret-read-from-the-environment-9876543210';
const SUBJECT = 'Lab results SUBJECT-MARKER';

describe('webhooks from the relay', () => {
  let mx: StartedMx;
  let relay: Relay;
  let reader: SqliteStore;
  const logs = logCapture();
  let signed: Receiver;
  let flaky: Receiver;
  let dead: Receiver;
  let picky: Receiver;
  const queueIds: string[] = [];
  let events: RelayEvent[] = [];

  beforeAll(async () => {
    mx = await startMx('tls13', { name: 'mx.dest.test' });
    signed = await startReceiver();
    flaky = await startReceiver();
    // Two 500s for every event, then 200.
    const tries = new Map<string, number>();
    flaky.answer = (req) => {
      const id = String(req.headers['sealrelay-event-id']);
      tries.set(id, (tries.get(id) ?? 0) + 1);
      return tries.get(id)! <= 2 ? 500 : 200;
    };
    dead = await startReceiver();
    await dead.stop();
    picky = await startReceiver();
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-hooks-'));
    const oldFile = join(dir, 'old.secret');
    writeFileSync(oldFile, `${OLD_SECRET}\n`);
    chmodSync(oldFile, 0o600);
    const config = testConfig({
      delivery: { routes: { 'dest.test': `127.0.0.1:${mx.port}` } },
      webhooks: {
        endpoints: [
          { name: 'signed', url: signed.url, secrets: [{ id: 'old', file: oldFile }, { id: 'new', env: 'HOOK_NEW' }] },
          { name: 'flaky', url: flaky.url, secrets: [{ id: 'new', env: 'HOOK_NEW' }] },
          { name: 'dead', url: dead.url, secrets: [{ id: 'new', env: 'HOOK_NEW' }], timeout_seconds: 2 },
          { name: 'picky', url: picky.url, events: ['delivered', 'bounced'], secrets: [{ id: 'new', env: 'HOOK_NEW' }] },
        ],
        poll_interval_ms: 50,
        retry: { first_seconds: 0.05, max_seconds: 0.2 },
      },
      logging: { level: 'info' },
    });
    relay = await startRelay({ config, logger: createLogger('info', logs.stream), env: { HOOK_NEW: NEW_SECRET } });
    reader = new SqliteStore(config.store.path);
    // Every endpoint's cursor is made at the dispatcher's first turn: what is sent after it is theirs.
    await until(async () => (await reader.webhookStatus()).length === 4, 'the endpoints’ cursors');

    const port = relay.listeners[0]!.port;
    for (let i = 0; i < 3; i++) {
      const body = `From: <app@clinic.test>\r\nTo: <p${i}@dest.test>\r\nSubject: ${SUBJECT}\r\n\r\nresult ${i}\r\n`;
      queueIds.push(queueIdOf(await submit({ port, from: 'app@clinic.test', to: [`p${i}a@dest.test`, `p${i}b@dest.test`], body })));
    }
    await mx.waitFor(3, 20_000);
    // Every recipient delivered (with `secured`, in the same commit): no more events come.
    await until(async () => (events = await reader.listEvents({ limit: 1000 })).filter((e) => e.type === 'secured').length === 6, 'six deliveries');
    expect(events.filter((e) => e.type === 'queued')).toHaveLength(6);
  }, 60_000);

  afterAll(async () => {
    await relay?.close();
    await reader?.close();
    for (const r of [signed, flaky, dead, picky]) await r?.stop();
    await mx?.close();
  });

  it('sends every event once to a healthy endpoint, signed by both secrets of a rotation (the test’s own HMAC)', async () => {
    await signed.waitFor((r) => r.length >= events.length);
    expect(signed.requests.map((r) => payloadOf(r).id).sort()).toEqual(events.map((e) => e.id).sort());
    for (const req of signed.requests) {
      expect(req.method).toBe('POST');
      expect(req.path).toBe('/hooks/sealrelay');
      expect(req.headers['content-type']).toBe('application/json');
      expect(req.headers['sealrelay-event-id']).toBe(payloadOf(req).id);
      const old = independentlyVerified(req, OLD_SECRET);
      expect(old.ok).toBe(true);
      expect(old.keyIds).toEqual(['old', 'new']);
      expect(independentlyVerified(req, NEW_SECRET).ok).toBe(true);
      expect(Math.abs(old.t - Date.now() / 1000)).toBeLessThan(60);
    }
  });

  it('carries the event as JSON, with its id, type and schema version, never the subject', () => {
    const byId = new Map(events.map((e) => [e.id, e]));
    for (const req of signed.requests) {
      const p = payloadOf(req);
      const e = byId.get(p.id)!;
      expect(p).toEqual({
        schema: 1,
        id: e.id,
        type: e.type,
        at: new Date(e.at).toISOString(),
        queue_id: e.queueId,
        seq: e.seq,
        sender: 'app@clinic.test',
        recipient: e.recipient,
        domain: 'dest.test',
        method: e.method,
        tls: e.tls,
        campaign: null,
        custom: null,
        automated: false,
      });
      expect(req.body).not.toContain('SUBJECT-MARKER');
      expect(req.body).not.toContain('result');
    }
    expect(new Set(signed.requests.map((r) => payloadOf(r).type))).toEqual(new Set(['queued', 'delivered', 'secured']));
  });

  it('passes the README’s verification snippet, verbatim, with either secret; it rejects a changed body, another secret and an old timestamp', async () => {
    const { verifySealRelay } = (await import(pathToFileURL(SNIPPET_FILE).href)) as { verifySealRelay: Verify };
    const req = signed.requests[0]!;
    const header = String(req.headers['sealrelay-signature']);
    expect(verifySealRelay(req.body, header, OLD_SECRET)).toBe(true);
    expect(verifySealRelay(req.body, header, NEW_SECRET)).toBe(true);
    expect(verifySealRelay(req.body.replace('"schema":1', '"schema":2'), header, OLD_SECRET)).toBe(false);
    expect(verifySealRelay(req.body, header, 'some-other-secret-of-enough-length-000')).toBe(false);
    expect(verifySealRelay(req.body, 'garbage', OLD_SECRET)).toBe(false);
    const t = independentlyVerified(req, OLD_SECRET).t;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(t * 1000 + 299_000);
      expect(verifySealRelay(req.body, header, OLD_SECRET)).toBe(true);
      // A capture replayed six minutes later is refused by the receiver.
      vi.setSystemTime(t * 1000 + 301_000);
      expect(verifySealRelay(req.body, header, OLD_SECRET)).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('the README shows that snippet verbatim', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme.includes(readFileSync(SNIPPET_FILE, 'utf8').trim()), 'README.md must carry config/webhook-verify.mjs verbatim (the webhooks section)').toBe(true);
  });

  it('retries after 500s with the same event id and body until a 2xx, one message’s events in order', async () => {
    await flaky.waitFor(() => flaky.accepted().length >= events.length, 30_000, 'every event accepted after two 500s');
    for (const e of events) {
      const tries = flaky.requests.filter((r) => payloadOf(r).id === e.id);
      expect(tries.map((r) => r.status)).toEqual([500, 500, 200]);
      expect(new Set(tries.map((r) => r.body)).size).toBe(1);
    }
    expectInOrderPerMessage(flaky.requests, events);
    await until(async () => (await reader.webhookStatus()).find((s) => s.endpoint === 'flaky')!.pending === 0, 'flaky settled');
    expect((await reader.webhookStatus()).find((s) => s.endpoint === 'flaky')).toMatchObject({ pending: 0, failed: 0, deliveredTotal: events.length, failedAttemptsTotal: 2 * events.length, lastStatus: 500, lastError: 'HTTP 500' });
  });

  it('keeps everything for a dead endpoint and, once it is back, delivers it all, in order per message', async () => {
    await until(async () => (await reader.troubledWebhookDeliveries('dead', 10)).some((d) => d.lastError === 'connection refused'), 'refusals recorded');
    await until(async () => (await reader.webhookStatus()).find((s) => s.endpoint === 'dead')!.pending === events.length, 'every event in the outbox');
    const status = (await reader.webhookStatus()).find((s) => s.endpoint === 'dead')!;
    expect(status).toMatchObject({ pending: events.length, failed: 0, deliveredTotal: 0, lastStatus: null, lastError: 'connection refused' });
    await dead.start();
    await dead.waitFor(() => dead.accepted().length >= events.length, 30_000, 'the backlog after the endpoint came back');
    expect(dead.requests.map((r) => payloadOf(r).id).sort()).toEqual(events.map((e) => e.id).sort());
    expectInOrderPerMessage(dead.requests, events);
    await until(async () => (await reader.webhookStatus()).find((s) => s.endpoint === 'dead')!.pending === 0, 'dead settled');
  });

  it('sends an endpoint only the event types it takes', async () => {
    const delivered = events.filter((e) => e.type === 'delivered');
    await picky.waitFor((r) => r.length >= delivered.length);
    expect(picky.requests.map((r) => payloadOf(r).id).sort()).toEqual(delivered.map((e) => e.id).sort());
  });

  it('logs no secret and no subject', () => {
    expect(logs.text()).not.toContain(OLD_SECRET);
    expect(logs.text()).not.toContain(NEW_SECRET);
    expect(logs.text()).not.toContain('SUBJECT-MARKER');
    expect(logs.lines.some((l) => l.event === 'webhooks.failed' && l.endpoint === 'flaky' && l.status === 500)).toBe(true);
  });
});

/**
 * One message's events reach the receiver in id order: no request for an event
 * before the previous event of its message was answered 2xx.
 */
function expectInOrderPerMessage(requests: readonly ReceivedRequest[], events: readonly RelayEvent[]): void {
  const order = new Map<string, string[]>();
  for (const e of events) order.set(e.queueId, [...(order.get(e.queueId) ?? []), e.id]);
  const done = new Set<string>();
  for (const req of requests) {
    const p = payloadOf(req);
    const ids = order.get(p.queue_id)!;
    const earlier = ids.slice(0, ids.indexOf(p.id));
    expect(earlier.filter((id) => !done.has(id)), `event ${p.id} (${p.type}) sent before earlier events of ${p.queue_id}`).toEqual([]);
    if (req.status !== null && req.status < 300) done.add(p.id);
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
