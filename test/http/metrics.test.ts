// GET /metrics (src/http/metrics.ts) on a real HTTPS api listener on loopback:
// real mail through the real relay to real MXs (TLS 1.3, TLS 1.2, plaintext, a
// greylisting one, a refused recipient, a dead MX), then the exposition parsed and
// every count checked against the delivery records the relay wrote (a separate
// table from the events the metrics read). On a real store: portal events, the
// webhook backlog provider, the guard in front, no double counting across scrapes
// (sequential or at once), and the same totals from a fresh collector (a restart).
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { makeApiToken } from '../../src/http/api/tokens.ts';
import { buildWebServer } from '../../src/http/listeners.ts';
import type { WebhookMetrics } from '../../src/events/webhooks/metrics.ts';
import { RelayMetrics, type MetricsDeps } from '../../src/http/metrics.ts';
import type { HttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { generateMasterKey, Keyring } from '../../src/portal/master-keys.ts';
import { sealPortalItem } from '../../src/portal/vault.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { allocLoopbackIp, startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { sharedTestCa } from '../helpers/test-ca.ts';
import { testWebCertificate } from '../helpers/web-server.ts';

/** Starts an api listener with /metrics on loopback over `store`, and a token of the metrics scope to scrape it with. */
async function metricsServer(config: Config, deps: Omit<MetricsDeps, 'guard' | 'maxQueueMs' | 'store'> & { store: SqliteStore }): Promise<{ server: HttpServer; port: number; token: string; readOnly: string }> {
  const tls = testWebCertificate();
  const made = makeApiToken({ name: `scraper-${randomBytes(4).toString('hex')}`, scopes: ['metrics'], now: Date.now(), expiresAt: null });
  const reader = makeApiToken({ name: `reader-${randomBytes(4).toString('hex')}`, scopes: ['read', 'send', 'admin'], now: Date.now(), expiresAt: null });
  await deps.store.createApiToken(made.record);
  await deps.store.createApiToken(reader.record);
  const server = await buildWebServer('api', {
    config,
    logger: createLogger('silent'),
    tls: { cert: tls.certPem, key: tls.keyPem },
    listen: { host: '127.0.0.1', port: 0 },
    api: { store: deps.store, kick: () => undefined },
    metrics: { ...deps, maxQueueMs: config.delivery.retry.lifetime_seconds * 1000 },
  });
  const { port } = await server.listen();
  return { server, port, token: made.token, readOnly: reader.token };
}

function scrape(port: number, token: string | null): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/metrics', ca: sharedTestCa().certPem, servername: 'localhost', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The exposition as `name{a="1",b="2"}` → value, labels sorted; HELP/TYPE lines checked to name every metric. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`).sort();
    samples.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return samples;
}

const sample = (s: Map<string, number>, key: string) => s.get(key) ?? 0;

describe('metrics of real mail through the relay', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let relay: TestRelay;
  let reader: SqliteStore;
  let web: Awaited<ReturnType<typeof metricsServer>>;
  const deadIp = allocLoopbackIp();

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx.a.test', rejectRecipients: ['nobody@a.test'] },
      { kind: 'tls12', name: 'mx.b.test' },
      { kind: 'plain', name: 'mx.plain.test' },
      { kind: 'greylist', name: 'mx.grey.test' },
    ]);
    const ip = (name: string) => mxs.byName(name).host;
    dns = await startDnsStub({
      'a.test': { MX: [{ preference: 10, exchange: 'mx.a.test' }] },
      'hospital.test': { MX: [{ preference: 10, exchange: 'mx.a.test' }] },
      'mx.a.test': { A: [ip('mx.a.test')] },
      'b.test': { MX: [{ preference: 10, exchange: 'mx.b.test' }] },
      'mx.b.test': { A: [ip('mx.b.test')] },
      'plain.test': { MX: [{ preference: 10, exchange: 'mx.plain.test' }] },
      'mx.plain.test': { A: [ip('mx.plain.test')] },
      'grey.test': { MX: [{ preference: 10, exchange: 'mx.grey.test' }] },
      'mx.grey.test': { A: [ip('mx.grey.test')] },
      'dead.test': { MX: [{ preference: 10, exchange: 'mx.dead.test' }] },
      'mx.dead.test': { A: [deadIp] },
    });
    relay = await startTestRelay(testConfig({ delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 0.3, max_seconds: 0.5 } } }));
    reader = new SqliteStore(relay.config.store.path);
    web = await metricsServer(relay.config, { store: reader });
  }, 30_000);

  afterAll(async () => {
    await web?.server.close();
    await reader?.close();
    await relay?.close();
    await mxs?.close();
    await dns?.close();
  });

  it('counts attempts by outcome, method and TLS version, latency, and the queue, as the records tell them', async () => {
    const send = (to: string[]) => submit({ port: relay.port, from: 'app@hospital.test', to, body: 'From: <app@hospital.test>\r\nSubject: m\r\n\r\nhello\r\n' });
    await send(['x@a.test', 'y@a.test', 'nobody@a.test']);
    await send(['z@b.test']);
    await send(['p@plain.test']);
    await send(['g@grey.test']);
    const stuck = queueIdOf(await send(['d@dead.test']));

    // Everything settles but the dead MX's recipient, which has been deferred at least once; the bounce to the sender is delivered.
    await relay.waitForRecords((r) => {
      const final = (rcpt: string) => r.some((x) => x.recipient === rcpt && x.outcome !== 'deferred');
      return ['x@a.test', 'y@a.test', 'nobody@a.test', 'z@b.test', 'p@plain.test', 'g@grey.test', 'app@hospital.test'].every(final) && r.some((x) => x.queueId === stuck && x.outcome === 'deferred');
    }, 30_000);

    const got = await scrape(web.port, web.token);
    expect(got.status).toBe(200);
    expect(got.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = parseExposition(got.body);
    // Reread: the dead MX may have been tried again between the records and the scrape.
    const all = await reader.queryRecords({});

    // Attempts by outcome and method, exactly as many as the records.
    const byOutcomeMethod = new Map<string, number>();
    for (const r of all) {
      const method = r.outcome === 'delivered' || r.outcome === 'portal-notified' ? r.method : 'none';
      const key = `sealrelay_delivery_attempts_total{method="${method}",outcome="${r.outcome}"}`;
      byOutcomeMethod.set(key, (byOutcomeMethod.get(key) ?? 0) + 1);
    }
    const scraped = [...s].filter(([k]) => k.startsWith('sealrelay_delivery_attempts_total{'));
    expect(new Map(scraped)).toEqual(byOutcomeMethod);
    // What happened, in plain numbers: the mix is what the MXs were.
    expect(sample(s, 'sealrelay_delivery_attempts_total{method="tls",outcome="delivered"}')).toBe(5); // x, y, z, g, the bounce
    expect(sample(s, 'sealrelay_delivery_attempts_total{method="plaintext",outcome="delivered"}')).toBe(1);
    expect(sample(s, 'sealrelay_delivery_attempts_total{method="none",outcome="bounced"}')).toBe(1);
    expect(sample(s, 'sealrelay_delivery_attempts_total{method="none",outcome="deferred"}')).toBeGreaterThanOrEqual(2); // greylist once, the dead MX

    // TLS mix by the version each attempt negotiated.
    const tlsOf = (v: string) => all.filter((r) => (r.tls?.protocol ?? 'none') === v).length;
    expect(sample(s, 'sealrelay_delivery_tls_attempts_total{version="TLSv1.3"}')).toBe(tlsOf('TLSv1.3'));
    expect(sample(s, 'sealrelay_delivery_tls_attempts_total{version="TLSv1.2"}')).toBe(tlsOf('TLSv1.2'));
    expect(sample(s, 'sealrelay_delivery_tls_attempts_total{version="none"}')).toBe(tlsOf('none'));
    expect(tlsOf('TLSv1.2')).toBe(1);

    // Latency: one observation per delivered recipient, each under the time the test took.
    const delivered = all.filter((r) => r.outcome === 'delivered').length;
    expect(sample(s, 'sealrelay_delivery_latency_seconds_count{outcome="delivered"}')).toBe(delivered);
    expect(sample(s, 'sealrelay_delivery_latency_seconds_bucket{le="+Inf",outcome="delivered"}')).toBe(delivered);
    expect(sample(s, 'sealrelay_delivery_latency_seconds_sum{outcome="delivered"}')).toBeGreaterThan(0);
    expect([...s.keys()].filter((k) => k.startsWith('sealrelay_delivery_latency_seconds_count'))).toEqual(['sealrelay_delivery_latency_seconds_count{outcome="delivered"}']);
    expect(sample(s, 'sealrelay_delivery_latency_seconds_bucket{le="60",outcome="delivered"}')).toBe(delivered);
    expect(sample(s, 'sealrelay_delivery_latency_seconds_bucket{le="0.1",outcome="delivered"}')).toBeLessThan(delivered); // the greylisted one waited a retry

    // Recipients queued: the 7 submitted and the bounce.
    expect(sample(s, 'sealrelay_recipients_queued_total')).toBe(8);
    // The queue: only the dead MX's message waits.
    expect(sample(s, 'sealrelay_queue_messages')).toBe(1);
    expect(sample(s, 'sealrelay_queue_recipients{state="queued"}')).toBe(1);
    expect(sample(s, 'sealrelay_queue_recipients{state="held"}')).toBe(0);
    expect(sample(s, 'sealrelay_queue_bytes')).toBeGreaterThan(0);
    const age = sample(s, 'sealrelay_queue_oldest_age_seconds');
    expect(age).toBeGreaterThan(0);
    expect(age).toBeLessThan(60);
  }, 60_000);

  it('is scraped only with a token of the metrics scope: none or a wrong one is 401, one without the scope (even read, send and admin) is 403', async () => {
    expect((await scrape(web.port, null)).status).toBe(401);
    expect((await scrape(web.port, 'wrong')).status).toBe(401);
    const forbidden = await scrape(web.port, web.readOnly);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toContain('does not have the metrics scope');
  });
});

describe('metrics on a real store', () => {
  let dir: string;
  let store: SqliteStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sealrelay-metrics-'));
    store = new SqliteStore(join(dir, 'store.db'));
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts portal events and the webhook backlog; scrapes never count an event twice; a new collector gets the same totals', async () => {
    const keyring = new Keyring([{ id: 'k1', key: generateMasterKey() }], 'k1');
    const now = Date.now();
    await store.enqueue({ queueId: 'Q1', sender: 'app@clinic.example', recipients: ['pat@example.org'], body: Buffer.from('Subject: s\r\n\r\nb\r\n'), messageId: '<q1@clinic.example>', subject: 's', clientIp: null, authUser: null, receivedAt: now });
    const item = sealPortalItem(keyring, { queueId: 'Q1', seq: 0, messageId: '<q1@clinic.example>', sender: 'app@clinic.example', recipient: 'pat@example.org', createdAt: now, expiresAt: now + 86_400_000 }, Buffer.from('Subject: s\r\n\r\nb\r\n'));
    await store.putPortalItem(item.item);
    const hook = (endpoint: string, backlog: number, deliveredTotal: number): WebhookMetrics => ({
      endpoint, configured: true, backlog, oldestPendingSeconds: backlog ? 42 : 0, failed: 1, deliveredTotal, failedAttemptsTotal: 2, gaveUpTotal: 1,
    });
    let hooks = [hook('a', 3, 10)];
    const webhooks = async () => hooks;
    const config = testConfig();
    const web = await metricsServer(config, { store, webhooks });
    try {
      await store.recordPortalEvent(item.item.id, 'portal-opened', { ip: '198.51.100.4' });
      await store.recordPortalEvent(item.item.id, 'portal-opened', { ip: '198.51.100.4' });
      let s = parseExposition((await scrape(web.port, web.token)).body);
      expect(sample(s, 'sealrelay_portal_events_total{event="portal-opened"}')).toBe(2);
      expect(sample(s, 'sealrelay_webhook_backlog{endpoint="a"}')).toBe(3);
      expect(sample(s, 'sealrelay_webhook_oldest_pending_seconds{endpoint="a"}')).toBe(42);
      expect(sample(s, 'sealrelay_webhook_delivered_total{endpoint="a"}')).toBe(10);

      await store.recordPortalEvent(item.item.id, 'portal-replied', { ip: '198.51.100.4' });
      await store.recallPortalItems('Q1', 'alice');
      hooks = [hook('a', 0, 15), hook('b', 1, 0)];
      // Two scrapes at once read the new events once.
      const [a, b] = await Promise.all([scrape(web.port, web.token), scrape(web.port, web.token)]);
      for (const got of [a, b]) {
        s = parseExposition(got.body);
        expect(sample(s, 'sealrelay_portal_events_total{event="portal-opened"}')).toBe(2);
        expect(sample(s, 'sealrelay_portal_events_total{event="replied"}')).toBe(1);
        expect(sample(s, 'sealrelay_portal_events_total{event="recalled"}')).toBe(1);
        expect(sample(s, 'sealrelay_recipients_queued_total')).toBe(1);
        // Gauges are as the webhooks are now; the totals count on from the last read, once.
        expect(sample(s, 'sealrelay_webhook_backlog{endpoint="a"}')).toBe(0);
        expect(sample(s, 'sealrelay_webhook_backlog{endpoint="b"}')).toBe(1);
        expect(sample(s, 'sealrelay_webhook_delivered_total{endpoint="a"}')).toBe(15);
        expect(sample(s, 'sealrelay_webhook_gave_up_total{endpoint="a"}')).toBe(1);
      }

      // A restart: a new collector reads the outbox from its start and arrives at the same totals.
      const fresh = parseExposition(await new RelayMetrics({ store, maxQueueMs: 60_000, webhooks }).scrape());
      const counters = (m: Map<string, number>) => [...m].filter(([k]) => /_total(\{|$)/.test(k));
      expect(counters(fresh)).toEqual(counters(s));
      // Without webhooks, no webhook metric at all.
      const without = parseExposition(await new RelayMetrics({ store, maxQueueMs: 60_000 }).scrape());
      expect([...without.keys()].some((k) => k.startsWith('sealrelay_webhook_'))).toBe(false);
    } finally {
      await web.server.close();
    }
  });

  it('the oldest age and held recipients follow the queue', async () => {
    const now = Date.now();
    await store.enqueue({ queueId: 'Q2', sender: 'app@clinic.example', recipients: ['a@example.org', 'b@example.org'], body: Buffer.from('x'), messageId: null, subject: null, clientIp: null, authUser: null, receivedAt: now - 120_000 });
    await store.hold('Q2', 'alice');
    const s = parseExposition(await new RelayMetrics({ store, maxQueueMs: 60_000, now: () => now }).scrape());
    expect(sample(s, 'sealrelay_queue_recipients{state="held"}')).toBe(2);
    expect(sample(s, 'sealrelay_queue_oldest_age_seconds')).toBe(120);
  });
});
