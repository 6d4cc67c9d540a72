// The API on a whole relay (startRelay with api.listen, over real HTTPS) toward a
// real MX: a message sent by the API travels exactly as one sent by SMTP — same
// decision, method, TLS facts and outcome in its record, same events — and its
// timeline, search and signed evidence are read back through the API.
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../../src/delivery/record.ts';
import { verifyEvidence } from '../../../src/events/evidence.ts';
import { generateEvidenceKey } from '../../../src/events/evidence-key.ts';
import { makeApiToken } from '../../../src/http/api/tokens.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../../helpers/relay.ts';

let mx: StartedMx;
let relay: TestRelay;
let base: string;
let token: string;
let publicKey: ReturnType<typeof generateEvidenceKey>;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** JSON.parse of the body, as loosely typed as fastify inject's json(). */
  json(): ReturnType<typeof JSON.parse>;
}

/** One request over HTTPS to the relay's api listener (its certificate is the self-signed development one). */
function call(method: string, path: string, opts: { json?: unknown; token?: string; idempotencyKey?: string } = {}): Promise<Answer> {
  const payload = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${base}${path}`,
      {
        method,
        rejectUnauthorized: false,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...(opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

beforeAll(async () => {
  mx = await startMx('tls13', { name: 'mx.clinic.test' });
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-api-relay-'));
  const keyFile = join(dir, 'evidence.key');
  publicKey = generateEvidenceKey(keyFile);
  const config = testConfig({
    api: { listen: 0 },
    // One domain per path: what the first delivery teaches of a domain (TLS-known) must not change the other's decision.
    delivery: { routes: { 'clinic.test': `127.0.0.1:${mx.port}`, 'smtp.clinic.test': `127.0.0.1:${mx.port}`, 'api.clinic.test': `127.0.0.1:${mx.port}` } },
    evidence: { signing_key_file: keyFile },
  });
  // The token is made before the relay opens the store, as `sealrelay token add` would.
  const seed = new SqliteStore(config.store.path);
  const made = makeApiToken({ name: 'lab-app', scopes: ['send', 'read'], now: Date.now(), expiresAt: null });
  await seed.createApiToken(made.record);
  await seed.close();
  token = made.token;
  relay = await startTestRelay(config);
  base = relay.relay.web.find((l) => l.name === 'api')!.url;
}, 30_000);

afterAll(async () => {
  await relay?.close();
  await mx?.close();
});

/** What must be the same for two messages to two recipients: everything but ids, addresses, times and the MX's own reply text. */
function comparable(r: DeliveryRecord): unknown {
  const { queueId: _q, messageId: _m, at: _a, durationMs: _d, recipient: _r, domain: _domain, smtp, ...rest } = r;
  return { ...rest, smtp: { code: smtp.code, enhanced: smtp.enhanced } };
}

describe('the API on the relay', () => {
  it('delivers a message sent by API with the same record and events as one sent by SMTP', async () => {
    const smtpId = queueIdOf(await submit({ port: relay.port, from: 'lab@hospital.test', to: ['ann@smtp.clinic.test'], body: 'From: <lab@hospital.test>\r\nTo: <ann@smtp.clinic.test>\r\nSubject: Results\r\n\r\nReady.\r\n' }));
    const sent = await call('POST', '/api/v1/messages', { token, json: { from: 'lab@hospital.test', to: ['bob@api.clinic.test'], subject: 'Results', text: 'Ready.' } });
    expect(sent.status).toBe(202);
    const apiId = sent.json().queueId as string;
    const records = await relay.waitForRecords((rs) => [smtpId, apiId].every((id) => rs.some((r) => r.queueId === id && r.outcome === 'delivered')));
    const bySmtp = records.find((r) => r.queueId === smtpId)!;
    const byApi = records.find((r) => r.queueId === apiId)!;
    expect(byApi.recipient).toBe('bob@api.clinic.test');
    expect(byApi.messageId).toBe(sent.json().messageId);
    expect(comparable(byApi)).toEqual(comparable(bySmtp));
    expect(byApi).toMatchObject({ method: 'tls', outcome: 'delivered', tls: { protocol: 'TLSv1.3' } });

    // The MX saw our stamp: the API's hop over HTTPS with its TLS facts, as SMTP's over STARTTLS.
    const got = await mx.waitFor(2);
    const apiRaw = got.find((m) => m.envelope.to.includes('bob@api.clinic.test'))!.raw.toString();
    expect(apiRaw).toMatch(new RegExp(`by relay\\.sealrelay\\.test \\(SealRelay\\)\\s+with HTTPS id ${apiId}\\s+\\(version=TLSv1\\.[23]\\s+cipher=\\S+\\s+bits=\\d+\\s+verify=NO\\)`));
    const smtpRaw = got.find((m) => m.envelope.to.includes('ann@smtp.clinic.test'))!.raw.toString();
    expect(smtpRaw).toMatch(/with ESMTPS id /);

    const reader = new SqliteStore(relay.config.store.path);
    try {
      const events = await reader.listEvents({ limit: 100 });
      const types = (id: string) => events.filter((e) => e.queueId === id).map((e) => e.type);
      expect(types(apiId)).toEqual(types(smtpId));
    } finally {
      await reader.close();
    }
  });

  it("reads a message's timeline, finds it by recipient and since, and signs its evidence", async () => {
    const json = { from: 'lab@hospital.test', to: ['cy@clinic.test'], subject: 'Timeline', text: 'x' };
    const sent = (await call('POST', '/api/v1/messages', { token, json, idempotencyKey: 'timeline-1' })).json();
    // Sent again (through the relay's store thread): the same answer, nothing queued twice.
    const again = await call('POST', '/api/v1/messages', { token, json, idempotencyKey: 'timeline-1' });
    expect(again.status).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(sent);
    expect((await call('POST', '/api/v1/messages', { token, json: { ...json, text: 'y' }, idempotencyKey: 'timeline-1' })).status).toBe(422);
    await relay.waitForRecords((rs) => rs.some((r) => r.queueId === sent.queueId && r.outcome === 'delivered'));
    const timeline = await call('GET', `/api/v1/messages/${sent.queueId}`, { token });
    expect(timeline.status).toBe(200);
    const { entries, queued, reference } = timeline.json();
    expect(reference).toBe(sent.queueId);
    expect(queued).toBeNull();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ queueId: sent.queueId, recipient: 'cy@clinic.test', outcome: 'delivered', method: 'tls', decision: { mode: 'opportunistic' }, tls: { protocol: 'TLSv1.3', cipher: expect.any(String), bits: expect.any(Number) }, mx: { host: expect.any(String) } });
    // By Message-ID too.
    expect((await call('GET', `/api/v1/messages/${encodeURIComponent(sent.messageId)}`, { token })).json().entries[0].queueId).toBe(sent.queueId);

    const since = new Date(Date.now() - 60_000).toISOString();
    const found = await call('GET', `/api/v1/messages?recipient=cy@clinic.test&since=${encodeURIComponent(since)}&limit=10`, { token });
    expect(found.status).toBe(200);
    expect(found.json().entries.map((e: { queueId: string }) => e.queueId)).toEqual([sent.queueId]);
    expect((await call('GET', `/api/v1/messages?recipient=cy@clinic.test&since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, { token })).json().entries).toEqual([]);
    expect((await call('GET', '/api/v1/messages?since=yesterday', { token })).json()).toMatchObject({ field: 'since' });

    const evidence = await call('GET', `/api/v1/messages/${sent.queueId}/evidence`, { token });
    expect(evidence.status).toBe(200);
    const verified = verifyEvidence(evidence.body, publicKey);
    expect(verified.valid).toBe(true);
    expect(evidence.json().payload.messages[0].recipients[0]).toMatchObject({ recipient: 'cy@clinic.test' });
    expect((await call('GET', '/api/v1/messages/0000000000000000/evidence', { token })).status).toBe(404);
    expect((await call('GET', '/api/v1/messages/0000000000000000', { token })).json()).toMatchObject({ error: 'not_found', field: 'id' });
  });

  it('serves the OpenAPI document without a token, the same as docs/openapi.json, and JSON 404s under /api/', async () => {
    const served = await call('GET', '/api/v1/openapi.json');
    expect(served.status).toBe(200);
    const { readFileSync } = await import('node:fs');
    const committed = JSON.parse(readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'));
    expect(served.json(), 'docs/openapi.json is out of date: run npm run openapi').toEqual(committed);
    const missing = await call('GET', '/api/v1/nothing', { token });
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found' });
    // Security headers as on every response of the web side.
    expect(served.headers['x-content-type-options']).toBe('nosniff');
    expect(served.headers['cache-control']).toBe('no-store');
  });

  it('every API request is in the audit trail: the token (or none), method, route pattern, status and address', async () => {
    await call('GET', '/api/v1/queue', { token });
    await call('GET', '/api/v1/queue');
    const reader = new SqliteStore(relay.config.store.path);
    try {
      const deadline = Date.now() + 10_000;
      let entries = await reader.listAudit({ action: 'api.request', limit: 1000 });
      while (entries.filter((e) => (e.target ?? '').includes('/api/v1/queue')).length < 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        entries = await reader.listAudit({ action: 'api.request', limit: 1000 });
      }
      const queue = entries.filter((e) => (e.target ?? '').includes('/api/v1/queue'));
      expect(queue.map((e) => [e.actorKind, e.actorName, e.ip])).toEqual([['token', 'lab-app', '127.0.0.1'], [expect.any(String), expect.any(String), '127.0.0.1']]);
      expect(queue.map((e) => e.detail)).toEqual([expect.stringContaining('200'), expect.stringContaining('401')]);
      expect(JSON.stringify(queue)).not.toContain(token);
    } finally {
      await reader.close();
    }
  });
});
