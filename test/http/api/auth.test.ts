// Who may use the API: a token of ours, unexpired, unrevoked, with the route's
// scope. Every refusal is JSON naming the Authorization header, with the RFC 6750
// challenge; failures on state-changing requests are counted per IP and lock it
// out; the token itself never reaches the log.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { sample, startApi, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
afterEach(async () => api?.close());

describe('API authentication', () => {
  it('refuses missing, malformed, unknown, wrong, expired and revoked tokens with 401 and queues nothing', async () => {
    api = await startApi();
    const good = await api.token('billing', ['send', 'read']);
    const expiring = await api.token('old', ['send'], api.clock.now() + 60_000);
    const revoked = await api.token('gone', ['send']);
    expect(await api.store.revokeApiToken('gone', api.clock.now())).toBe(true);
    api.clock.advance(60_000);
    const [, id] = /^sr_([0-9a-f]+)_/.exec(good)!;
    const cases: Record<string, Record<string, string>> = {
      missing: {},
      'not bearer': { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
      malformed: { authorization: 'Bearer sr_nothex_x' },
      unknown: { authorization: `Bearer sr_0000000000000000_${'A'.repeat(43)}` },
      'wrong secret': { authorization: `Bearer sr_${id}_${'A'.repeat(43)}` },
      expired: { authorization: `Bearer ${expiring}` },
      revoked: { authorization: `Bearer ${revoked}` },
    };
    for (const [what, headers] of Object.entries(cases)) {
      const res = await api.request('POST', '/api/v1/messages', { json: sample(), headers });
      expect(res.statusCode, what).toBe(401);
      expect(res.json(), what).toMatchObject({ error: 'unauthorized', field: 'Authorization' });
      expect(res.headers['www-authenticate'], what).toBe(what === 'missing' ? 'Bearer realm="SealRelay API"' : 'Bearer realm="SealRelay API", error="invalid_token"');
    }
    expect((await api.request('POST', '/api/v1/messages', { json: sample(), headers: cases.expired! })).json().message).toMatch(/expired at \d{4}-/);
    expect((await api.request('POST', '/api/v1/messages', { json: sample(), headers: cases.revoked! })).json().message).toMatch(/revoked/);
    expect(await api.store.listQueue()).toEqual([]);
    const ok = await api.request('POST', '/api/v1/messages', { token: good, json: sample() });
    expect(ok.statusCode).toBe(202);
  });

  it('refuses a token without the route\'s scope with 403, and each scope opens exactly its routes', async () => {
    api = await startApi();
    const tokens = { send: await api.token('s', ['send']), read: await api.token('r', ['read']), admin: await api.token('a', ['admin']) };
    const queued = (await api.request('POST', '/api/v1/messages', { token: tokens.send, json: sample() })).json().queueId as string;
    const routes = [
      { scope: 'send', method: 'POST', url: '/api/v1/messages', json: sample() },
      { scope: 'read', method: 'GET', url: '/api/v1/messages?recipient=pat@clinic.test' },
      { scope: 'read', method: 'GET', url: `/api/v1/messages/${queued}` },
      { scope: 'read', method: 'GET', url: '/api/v1/queue' },
      { scope: 'read', method: 'GET', url: '/api/v1/domains/clinic.test' },
      { scope: 'admin', method: 'POST', url: `/api/v1/queue/${queued}/hold` },
    ] as const;
    for (const r of routes) {
      for (const [scope, token] of Object.entries(tokens)) {
        const res = await api.request(r.method, r.url, { token, ...('json' in r ? { json: r.json } : {}) });
        if (scope === r.scope) expect(res.statusCode, `${scope} on ${r.method} ${r.url}`).toBeLessThan(300);
        else {
          expect(res.statusCode, `${scope} on ${r.method} ${r.url}`).toBe(403);
          expect(res.json()).toMatchObject({ error: 'forbidden', field: 'Authorization' });
          expect(res.headers['www-authenticate']).toBe(`Bearer realm="SealRelay API", error="insufficient_scope", scope="${r.scope}"`);
        }
      }
    }
  });

  it('counts failed authentications per IP on state-changing requests, then refuses that IP with 429 (GETs are refused, never counted)', async () => {
    api = await startApi({ api: { auth_failure_limit: 3, auth_failure_window_seconds: 60 } });
    const good = await api.token('ok', ['send', 'read']);
    const bad = { authorization: `Bearer sr_0000000000000000_${'B'.repeat(43)}` };
    for (let i = 0; i < 10; i++) expect((await api.request('GET', '/api/v1/queue', { headers: bad })).statusCode).toBe(401);
    expect((await api.request('GET', '/api/v1/queue', { token: good })).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) expect((await api.request('POST', '/api/v1/messages', { headers: bad, json: sample() })).statusCode).toBe(401);
    const locked = await api.request('POST', '/api/v1/messages', { token: good, json: sample() });
    expect(locked.statusCode).toBe(429);
    expect(locked.json()).toMatchObject({ error: 'too_many_requests' });
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await api.request('GET', '/api/v1/queue', { token: good })).statusCode).toBe(429);
    // Another address is not affected; the lockout ends with the window.
    expect((await api.request('POST', '/api/v1/messages', { token: good, json: sample(), ip: '192.0.2.7' })).statusCode).toBe(202);
    api.clock.advance(61_000);
    expect((await api.request('POST', '/api/v1/messages', { token: good, json: sample() })).statusCode).toBe(202);
  });

  it('never logs a token, and notes its last use', async () => {
    const lines: string[] = [];
    const log = new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) });
    api = await startApi({}, log);
    const good = await api.token('ok', ['read']);
    const [, id, secret] = /^sr_([0-9a-f]+)_(.+)$/.exec(good)!;
    await api.request('GET', '/api/v1/queue', { token: good });
    await api.request('GET', '/api/v1/queue', { headers: { authorization: `Bearer sr_${id}_${'C'.repeat(43)}` } });
    await api.request('POST', '/api/v1/messages', { token: good, json: sample() });
    const text = lines.join('');
    expect(text).toContain('"event":"api.auth_failed"');
    expect(text).toContain('"event":"api.forbidden"');
    expect(text).not.toContain(secret);
    expect(text).not.toContain('CCCCCCCC');
    const [info] = await api.store.listApiTokens();
    expect(info).toMatchObject({ name: 'ok', lastUsedAt: api.clock.now() });
    expect(info).not.toHaveProperty('secretHash');
  });
});
