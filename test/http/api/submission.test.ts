// POST /api/v1/messages with hostile bodies: each is refused with the status and
// the field at fault, and nothing is queued. And what a good one becomes: the
// MIME MailComposer writes, our Received stamp, the envelope, the auth user that
// names the token, the campaign — queued once per Idempotency-Key.
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { sample, startApi, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
afterEach(async () => api?.close());

async function bodyOf(queueId: string): Promise<string> {
  return (await api.store.readBody(queueId))!.toString('utf8');
}

describe('POST /api/v1/messages refuses', () => {
  it('hostile and malformed bodies with 400 naming the field, and queues nothing', async () => {
    api = await startApi({ ingress: { listeners: {}, max_recipients: 3 } });
    const token = await api.token('app', ['send']);
    const cases: [string, unknown, string, string?][] = [
      ['CRLF in the subject', sample({ subject: 'Hi\r\nBcc: victim@evil.test' }), 'subject'],
      ['LF in a recipient', sample({ to: ['pat@clinic.test\nBcc: x@evil.test'] }), 'to[0]'],
      ['CR in from', sample({ from: 'lab@hospital.test\rX: y' }), 'from'],
      ['CRLF in a header value', sample({ headers: { 'X-Ref': 'a\r\nBcc: x@evil.test' } }), 'headers.X-Ref'],
      ['a NUL in an attachment name', sample({ attachments: [{ filename: 'a\u0000.pdf', content: 'AAAA' }] }), 'attachments[0].filename'],
      ['a header name with a colon', sample({ headers: { 'X-A: b\r\nBcc': 'x' } }), 'headers'],
      ['Received set by the caller', sample({ headers: { Received: 'from evil' } }), 'headers.Received'],
      ['DKIM-Signature set by the caller', sample({ headers: { 'dkim-signature': 'v=1' } }), 'headers.dkim-signature'],
      ['Content-Type set by the caller', sample({ headers: { 'Content-Type': 'text/html' } }), 'headers.Content-Type'],
      ['Bcc as a header', sample({ headers: { Bcc: 'x@evil.test' } }), 'headers.Bcc'],
      ['MIME-Version set by the caller', sample({ headers: { 'MIME-Version': '1.0' } }), 'headers.MIME-Version'],
      ['a bad Message-ID', sample({ headers: { 'Message-ID': 'no-brackets' } }), 'headers.Message-ID'],
      ['an unknown field', sample({ priority: 'high' }), 'priority'],
      ['an unknown attachment field', sample({ attachments: [{ filename: 'a.txt', content: 'AAAA', path: '/etc/passwd' }] }), 'attachments[0].path'],
      ['a number for the subject', sample({ subject: 42 }), 'subject'],
      ['a string for to', sample({ to: 'pat@clinic.test' }), 'to'],
      ['no from', { to: ['pat@clinic.test'], text: 'x' }, 'from'],
      ['no recipient', sample({ to: [] }), 'to'],
      ['an invalid address', sample({ to: ['not an address'] }), 'to[0]'],
      ['two addresses in one', sample({ cc: ['a@b.test, c@d.test'] }), 'cc[0]'],
      ['a group', sample({ bcc: ['list: a@b.test;'] }), 'bcc[0]'],
      ['too many recipients', sample({ to: ['a@c.test', 'b@c.test'], cc: ['c@c.test'], bcc: ['d@c.test'] }), 'to'],
      ['attachment content not base64', sample({ attachments: [{ filename: 'a.txt', content: 'not base64!' }] }), 'attachments[0].content'],
      ['a JSON array', [sample()], 'body'],
    ];
    for (const [what, json, field] of cases) {
      const res = await api.request('POST', '/api/v1/messages', { token, json });
      expect(res.statusCode, what).toBe(400);
      const problem = res.json();
      expect(problem.field, `${what}: ${JSON.stringify(problem)}`).toBe(field);
      expect(typeof problem.message, what).toBe('string');
      expect(typeof problem.error, what).toBe('string');
      // The offending value is not echoed back.
      expect(res.body, what).not.toContain('evil.test');
    }
    const notJson = await api.request('POST', '/api/v1/messages', { token, payload: '{"from": "a@b.test",', headers: { 'content-type': 'application/json' } });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ error: 'invalid_json', field: 'body' });
    const form = await api.request('POST', '/api/v1/messages', { token, payload: 'from=a@b.test', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.statusCode).toBe(400);
    const text = await api.request('POST', '/api/v1/messages', { token, payload: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(400);
    expect(text.json()).toMatchObject({ field: 'body' });
    expect(await api.store.listQueue()).toEqual([]);
    expect(api.kicks.count).toBe(0);
  });

  it('a message over ingress.max_message_bytes with 413, and a body over the route\'s limit likewise', async () => {
    api = await startApi({ ingress: { listeners: {}, max_message_bytes: 2000 } });
    const token = await api.token('app', ['send']);
    const big = await api.request('POST', '/api/v1/messages', { token, json: sample({ text: 'x'.repeat(5000) }) });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ error: 'too_large', field: 'body' });
    // Small parts, but the MIME with its headers and encoding is over the limit.
    const justOver = await api.request('POST', '/api/v1/messages', { token, json: sample({ text: 'é'.repeat(900) }) });
    expect(justOver.statusCode).toBe(413);
    const huge = await api.request('POST', '/api/v1/messages', { token, json: sample({ attachments: [{ filename: 'a.bin', content: 'A'.repeat(2 * 1024 * 1024) }] }) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json()).toMatchObject({ error: 'too_large' });
    expect(await api.store.listQueue()).toEqual([]);
  });
});

describe('POST /api/v1/messages queues', () => {
  it('the MIME with our Received "with HTTPS", the envelope with bcc, the token as auth user and the campaign; 202 with the ids', async () => {
    api = await startApi({ reports: { custom_header: 'X-Department' } });
    const token = await api.token('billing', ['send']);
    const res = await api.request('POST', '/api/v1/messages', {
      token,
      json: sample({
        to: ['Pat <pat@clinic.test>'],
        cc: ['kim@clinic.test'],
        bcc: ['audit@hospital.test', 'PAT@clinic.test'],
        subject: 'Résultats',
        html: '<p>Ready</p>',
        attachments: [{ filename: 'r.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4').toString('base64') }],
        headers: { 'X-Department': 'Cardiology', 'Message-ID': '<fixed-1@hospital.test>' },
        campaign: 'results-2026',
      }),
    });
    expect(res.statusCode).toBe(202);
    const { queueId, messageId } = res.json();
    expect(messageId).toBe('<fixed-1@hospital.test>');
    expect(api.kicks.count).toBe(1);
    const [entry] = await api.store.listQueue();
    expect(entry).toMatchObject({ queueId, sender: 'lab@hospital.test', messageId });
    expect(entry!.recipients.map((r) => r.recipient)).toEqual(['pat@clinic.test', 'kim@clinic.test', 'audit@hospital.test']);
    const mime = await bodyOf(queueId);
    expect(mime).toMatch(new RegExp(`^Received: from \\[127\\.0\\.0\\.1\\] \\(\\[127\\.0\\.0\\.1\\]\\)\\s+by relay\\.api\\.test \\(SealRelay\\)\\s+with HTTPS id ${queueId};`));
    expect(mime).toContain(`Date: ${new Date(api.clock.now()).toUTCString().replace('GMT', '+0000')}`);
    const header = mime.slice(0, mime.indexOf('\r\n\r\n'));
    expect(header).not.toMatch(/^bcc:/im);
    expect(header).not.toContain('audit@hospital.test');
    expect(header).toContain('X-Department: Cardiology');
    expect(header).toMatch(/^Subject: =\?UTF-8\?/m);
    expect(mime).toContain('Content-Type: application/pdf; name=r.pdf');
    const [queued] = await api.store.listEvents({ limit: 10 });
    expect(queued).toMatchObject({ type: 'queued', campaign: 'results-2026', custom: 'Cardiology', subject: 'Résultats' });
    const [claimed] = await api.store.claim({ owner: 't', limit: 1, leaseMs: 1000 });
    expect(claimed).toMatchObject({ authUser: 'token:billing', queueId });
  });

  it('the campaign header among headers the same way as at SMTP ingress: read, then taken out', async () => {
    api = await startApi();
    const token = await api.token('app', ['send']);
    const res = await api.request('POST', '/api/v1/messages', { token, json: sample({ headers: { 'X-Campaign-ID': 'flu-2026' } }) });
    expect(res.statusCode).toBe(202);
    expect(await bodyOf(res.json().queueId)).not.toMatch(/x-campaign-id/i);
    expect((await api.store.listEvents({ limit: 1 }))[0]).toMatchObject({ campaign: 'flu-2026' });
  });
});

describe('Idempotency-Key', () => {
  it('the same key and body: the first 202 again and one message; another body: 422; another token: its own key', async () => {
    api = await startApi();
    const token = await api.token('app', ['send']);
    const other = await api.token('other', ['send']);
    const headers = { 'idempotency-key': 'order-1234' };
    const first = await api.request('POST', '/api/v1/messages', { token, json: sample(), headers });
    expect(first.statusCode).toBe(202);
    // Same content, keys in another order: the same request.
    const again = await api.request('POST', '/api/v1/messages', { token, json: { text: 'Your results are ready.', subject: 'Results', to: ['pat@clinic.test'], from: 'Lab <lab@hospital.test>' }, headers });
    expect(again.statusCode).toBe(202);
    expect(again.json()).toEqual(first.json());
    expect(again.headers['idempotent-replayed']).toBe('true');
    const changed = await api.request('POST', '/api/v1/messages', { token, json: sample({ subject: 'Other' }), headers });
    expect(changed.statusCode).toBe(422);
    expect(changed.json()).toMatchObject({ error: 'idempotency_key_reused', field: 'Idempotency-Key' });
    const othersKey = await api.request('POST', '/api/v1/messages', { token: other, json: sample(), headers });
    expect(othersKey.statusCode).toBe(202);
    expect(othersKey.json().queueId).not.toBe(first.json().queueId);
    expect((await api.store.listQueue()).length).toBe(2);
    expect(api.kicks.count).toBe(2);
  });

  it('duplicates sent at once queue one message and all get its answer', async () => {
    api = await startApi();
    const token = await api.token('app', ['send']);
    const all = await Promise.all(Array.from({ length: 8 }, () => api.request('POST', '/api/v1/messages', { token, json: sample(), headers: { 'idempotency-key': 'burst' } })));
    expect(all.map((r) => r.statusCode)).toEqual(Array(8).fill(202));
    expect(new Set(all.map((r) => r.json().queueId)).size).toBe(1);
    expect((await api.store.listQueue()).length).toBe(1);
    expect((await api.store.listEvents({ limit: 100 })).filter((e) => e.type === 'queued').length).toBe(1);
  });

  it('is kept api.idempotency_hours, then the key is new again and pruned', async () => {
    api = await startApi({ api: { idempotency_hours: 24 } });
    const token = await api.token('app', ['send']);
    const headers = { 'idempotency-key': 'k' };
    const first = (await api.request('POST', '/api/v1/messages', { token, json: sample(), headers })).json().queueId;
    api.clock.advance(23 * 3_600_000);
    expect((await api.request('POST', '/api/v1/messages', { token, json: sample(), headers })).json().queueId).toBe(first);
    api.clock.advance(2 * 3_600_000);
    const later = (await api.request('POST', '/api/v1/messages', { token, json: sample(), headers })).json().queueId;
    expect(later).not.toBe(first);
    const dayAgo = () => api.clock.now() - 24 * 3_600_000;
    expect(await api.store.pruneIdempotencyKeys(dayAgo())).toBe(0);
    api.clock.advance(25 * 3_600_000);
    expect(await api.store.pruneIdempotencyKeys(dayAgo())).toBe(1);
  });

  it('a bad key is a 400 naming the header', async () => {
    api = await startApi();
    const token = await api.token('app', ['send']);
    const res = await api.request('POST', '/api/v1/messages', { token, json: sample(), headers: { 'idempotency-key': 'x'.repeat(300) } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ field: 'idempotency-key' });
  });
});

it('tells the audit hook of every API request as it ends, by route pattern and token name', async () => {
  api = await startApi();
  const token = await api.token('app', ['send']);
  await api.request('POST', '/api/v1/messages', { token, json: sample() });
  await api.request('GET', '/api/v1/queue');
  expect(api.audit.map(({ token: t, method, route, status }) => ({ token: t, method, route, status }))).toEqual([
    { token: 'app', method: 'POST', route: '/api/v1/messages', status: 202 },
    { token: null, method: 'GET', route: '/api/v1/queue', status: 401 },
  ]);
});

it('a commit that fails is a 503 to send again, and the key is not spent: the retry queues the message', async () => {
  api = await startApi();
  const token = await api.token('app', ['send']);
  // A real failure of the real store: every insert into messages aborts (as a full disk would).
  const raw = new Database(api.config.store.path);
  raw.exec(`CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'no room'); END;`);
  const headers = { 'idempotency-key': 'retry-me' };
  const failed = await api.request('POST', '/api/v1/messages', { token, json: sample(), headers });
  expect(failed.statusCode).toBe(503);
  expect(failed.json()).toMatchObject({ error: 'queue_unavailable' });
  expect(failed.headers['retry-after']).toBe('60');
  expect(await api.store.listQueue()).toEqual([]);
  raw.exec('DROP TRIGGER refuse');
  raw.close();
  const retried = await api.request('POST', '/api/v1/messages', { token, json: sample(), headers });
  expect(retried.statusCode).toBe(202);
  expect(retried.headers['idempotent-replayed']).toBeUndefined();
  expect((await api.store.listQueue()).length).toBe(1);
});
