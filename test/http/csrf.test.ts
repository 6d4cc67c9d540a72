// The one CSRF defence (src/http/csrf.ts), at the protocol level: a state-changing
// request needs a token made for this browser's cookie and session, recent, and,
// where the browser says where the request came from, our own origin. What a
// real cross-site form does in Chromium is in browser.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { CSRF_HEADER, TOKEN_MAX_AGE_MS } from '../../src/http/csrf.ts';
import { DEMO_PASSWORD, InjectClient, sameOrigin, startTestWebServer, type TestWebServer } from '../helpers/web-server.ts';

let web: TestWebServer;
afterEach(async () => web?.close());

const refused = (res: { statusCode: number; body: string }) => {
  expect(res.statusCode).toBe(403);
  expect(res.body).toContain('This form can no longer be sent');
};

describe('a state-changing request', () => {
  it('is accepted with the token of the form the browser was shown', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const token = await browser.formToken();
    const res = await browser.post('/form', { _csrf: token, note: 'hello' });
    expect(res.statusCode).toBe(200);
    expect(web.notes).toEqual(['hello']);
    // The same token in a header (for our own scripts' fetches).
    const viaHeader = await browser.request('POST', '/form', { form: { note: 'again' }, headers: { ...sameOrigin(web), [CSRF_HEADER]: token } });
    expect(viaHeader.statusCode).toBe(200);
    expect(web.notes).toEqual(['hello', 'again']);
  });

  it('is refused without a token, and nothing is saved', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    await browser.formToken();
    refused(await browser.post('/form', { note: 'no token' }));
    refused(await browser.post('/form', { note: 'empty', _csrf: '' }));
    expect(web.notes).toEqual([]);
  });

  it("is refused with a token made for another browser's cookie, or with no cookie at all", async () => {
    web = await startTestWebServer();
    const victim = new InjectClient(web);
    const attacker = new InjectClient(web);
    const attackersToken = await attacker.formToken();
    await victim.formToken();
    refused(await victim.post('/form', { _csrf: attackersToken, note: 'planted' }));
    const cookieless = new InjectClient(web);
    refused(await cookieless.post('/form', { _csrf: attackersToken, note: 'no cookie' }));
    expect(web.notes).toEqual([]);
  });

  it('is refused with a forged or altered token', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const token = await browser.formToken();
    const [issued, mac] = token.split('.') as [string, string];
    const flipped = mac.slice(0, -1) + (mac.endsWith('A') ? 'B' : 'A');
    for (const bad of [`${issued}.${flipped}`, `${(parseInt(issued, 36) + 1).toString(36)}.${mac}`, `${token}.x`, mac, 'x'.repeat(60)]) {
      refused(await browser.post('/form', { _csrf: bad, note: bad }));
    }
    expect(web.notes).toEqual([]);
  });

  it('is refused with a token from before the session changed (sign-in rotates it)', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const before = await browser.formToken();
    const signIn = await browser.post('/sign-in', { _csrf: await browser.formToken('/sign-in'), user: 'ana', password: DEMO_PASSWORD });
    expect(signIn.statusCode).toBe(303);
    refused(await browser.post('/form', { _csrf: before, note: 'stale' }));
    const after = await browser.formToken();
    expect((await browser.post('/form', { _csrf: after, note: 'fresh' })).statusCode).toBe(200);
    expect(web.notes).toEqual(['fresh']);
  });

  it(`is refused once the token is older than ${TOKEN_MAX_AGE_MS / 3_600_000} hours`, async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const token = await browser.formToken();
    web.clock.advance(TOKEN_MAX_AGE_MS - 1000);
    expect((await browser.post('/form', { _csrf: token, note: 'in time' })).statusCode).toBe(200);
    web.clock.advance(2000);
    refused(await browser.post('/form', { _csrf: token, note: 'too late' }));
    expect(web.notes).toEqual(['in time']);
  });

  it('from another origin is refused even with a valid token (Origin, then Sec-Fetch-Site)', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const token = await browser.formToken();
    const crossSite: Record<string, string>[] = [
      { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
      { origin: 'null', 'sec-fetch-site': 'cross-site' },
      { origin: `http://127.0.0.1:${web.port}` },
      { origin: web.origin, 'sec-fetch-site': 'cross-site' },
      { origin: web.origin, 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of crossSite) {
      refused(await browser.post('/form', { _csrf: token, note: JSON.stringify(headers) }, headers));
    }
    // A client that sends neither header (curl, an old browser) still needs the token, and is accepted with it.
    expect((await browser.post('/form', { _csrf: token, note: 'plain client' }, {})).statusCode).toBe(200);
    // What Chromium sends for our own forms: Referrer-Policy no-referrer makes the Origin "null".
    expect((await browser.post('/form', { _csrf: token, note: 'own form' }, { origin: 'null', 'sec-fetch-site': 'same-origin' })).statusCode).toBe(200);
    expect(web.notes).toEqual(['plain client', 'own form']);
  });

  it("with portal.public_url set, only that origin's forms are ours", async () => {
    web = await startTestWebServer({ publicUrl: 'https://secure.clinic.example/portal' });
    const browser = new InjectClient(web);
    const token = await browser.formToken();
    refused(await browser.post('/form', { _csrf: token, note: 'listener origin' }, { origin: web.origin, 'sec-fetch-site': 'same-origin' }));
    expect((await browser.post('/form', { _csrf: token, note: 'public origin' }, { origin: 'https://secure.clinic.example', 'sec-fetch-site': 'same-origin' })).statusCode).toBe(200);
    expect(web.notes).toEqual(['public origin']);
  });

  it("a bearer-token route (the API) is the one kind exempt, and says so in its route config", async () => {
    const calls: string[] = [];
    web = await startTestWebServer({
      register: (s) => {
        s.app.post('/api/v1/ping', { config: { csrf: 'bearer-token' } }, async () => (calls.push('ping'), { pong: true }));
        s.app.post('/api/v1/unmarked', async () => (calls.push('unmarked'), { pong: true }));
      },
    });
    const client = new InjectClient(web);
    expect((await client.request('POST', '/api/v1/ping', { headers: { authorization: 'Bearer x' } })).statusCode).toBe(200);
    const unmarked = await client.request('POST', '/api/v1/unmarked', { headers: { authorization: 'Bearer x' } });
    expect(unmarked.statusCode).toBe(403);
    expect(unmarked.json()).toMatchObject({ error: { status: 403 } });
    expect(calls).toEqual(['ping']);
  });
});
