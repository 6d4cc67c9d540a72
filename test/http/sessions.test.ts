// The one session mechanism (src/http/sessions.ts): what the cookie looks like,
// what the store keeps, when a session ends, and that every change of privilege
// issues a new id.
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemorySessionStore } from '../../src/http/session-store.ts';
import { DEFAULT_ABSOLUTE_MS, DEFAULT_IDLE_MS } from '../../src/http/sessions.ts';
import { DEMO_PASSWORD, InjectClient, startTestWebServer, type TestWebServer } from '../helpers/web-server.ts';

let web: TestWebServer;
afterEach(async () => web?.close());
const MINUTE = 60_000;
const SID = '__Host-portal-sid';

async function signIn(browser: InjectClient, user = 'ana') {
  const res = await browser.post('/sign-in', { _csrf: await browser.formToken('/sign-in'), user, password: DEMO_PASSWORD });
  expect(res.statusCode).toBe(303);
  return res;
}

/** Whom /me says is signed in, or null when it sends us to sign in. */
async function whoAmI(browser: InjectClient): Promise<string | null> {
  const res = await browser.get('/me');
  if (res.statusCode === 303) return null;
  return /id="who">([^<]*)</.exec(res.body)?.[1] ?? 'unreadable';
}

describe('sessions', () => {
  it('the cookie is __Host-, HttpOnly, Secure, SameSite=Strict, host-only, ends with the browser, and carries ≥ 128 random bits', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const res = await signIn(browser);
    const setCookie = [res.headers['set-cookie']].flat().find((c) => c?.startsWith(`${SID}=`))!;
    const attributes = setCookie.split(';').slice(1).map((a) => a.trim().toLowerCase());
    expect(attributes.sort()).toEqual(['httponly', 'path=/', 'samesite=strict', 'secure']);
    const id = browser.cookies.get(SID)!;
    expect(Buffer.from(id, 'base64url').length).toBeGreaterThanOrEqual(16);
    // The csrf cookie has the same attributes.
    const fresh = await new InjectClient(web).get('/form');
    const csrf = [fresh.headers['set-cookie']].flat().find((c) => c?.startsWith('__Host-portal-csrf='))!;
    expect(csrf.split(';').slice(1).map((a) => a.trim().toLowerCase()).sort()).toEqual(['httponly', 'path=/', 'samesite=strict', 'secure']);
  });

  it('the store keeps the id only as its SHA-256', async () => {
    const store = new MemorySessionStore();
    web = await startTestWebServer({ options: { sessionStore: store } });
    const browser = new InjectClient(web);
    await signIn(browser);
    const id = browser.cookies.get(SID)!;
    const held = await store.describe();
    expect(held).toEqual([{ idHash: createHash('sha256').update(id).digest('hex'), data: { user: 'ana', level: 'signed-in' } }]);
    expect(JSON.stringify(held)).not.toContain(id);
  });

  it('each sign-in issues a new id and the old one stops working; an id planted before sign-in is never adopted', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    browser.cookies.set(SID, 'planted-by-an-attacker-0123456789abcdef');
    await signIn(browser, 'ana');
    const first = browser.cookies.get(SID)!;
    expect(first).not.toBe('planted-by-an-attacker-0123456789abcdef');
    expect(await whoAmI(browser)).toBe('ana');
    await signIn(browser, 'ben');
    const second = browser.cookies.get(SID)!;
    expect(second).not.toBe(first);
    expect(await whoAmI(browser)).toBe('ben');
    const thief = new InjectClient(web);
    thief.cookies.set(SID, first);
    expect(await whoAmI(thief)).toBeNull();
  });

  it('signing out ends the session on the server, not just in the browser', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    await signIn(browser);
    const id = browser.cookies.get(SID)!;
    const out = await browser.post('/sign-out', { _csrf: await browser.formToken('/me') });
    expect(out.statusCode).toBe(303);
    expect(browser.cookies.has(SID)).toBe(false);
    const replay = new InjectClient(web);
    replay.cookies.set(SID, id);
    expect(await whoAmI(replay)).toBeNull();
  });

  it(`ends after ${DEFAULT_IDLE_MS / MINUTE} minutes without a request`, async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    await signIn(browser);
    web.clock.advance(DEFAULT_IDLE_MS - MINUTE);
    expect(await whoAmI(browser)).toBe('ana');
    // That request counted as activity: the idle time starts again.
    web.clock.advance(DEFAULT_IDLE_MS - MINUTE);
    expect(await whoAmI(browser)).toBe('ana');
    web.clock.advance(DEFAULT_IDLE_MS);
    expect(await whoAmI(browser)).toBeNull();
  });

  it(`ends ${DEFAULT_ABSOLUTE_MS / 3_600_000} hours after it began, however active`, async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    await signIn(browser);
    const step = 10 * MINUTE;
    for (let t = step; t < DEFAULT_ABSOLUTE_MS; t += step) {
      web.clock.advance(step);
      expect(await whoAmI(browser)).toBe('ana');
    }
    web.clock.advance(step);
    expect(await whoAmI(browser)).toBeNull();
  });

  it('cannot be started by a GET (scanners follow links): the request fails and no session exists', async () => {
    const store = new MemorySessionStore();
    web = await startTestWebServer({ options: { sessionStore: store } });
    const browser = new InjectClient(web);
    const res = await browser.get('/session-on-get');
    expect(res.statusCode).toBe(500);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await store.describe()).toEqual([]);
  });

  it('the portal and the API listeners on one host keep separate cookies (browsers share cookies across ports)', async () => {
    web = await startTestWebServer({ name: 'portal' });
    const api = await startTestWebServer({ name: 'api' });
    try {
      const a = new InjectClient(web);
      const b = new InjectClient(api);
      await signIn(a);
      await signIn(b);
      expect([...a.cookies.keys()].sort()).toEqual(['__Host-portal-csrf', '__Host-portal-sid']);
      expect([...b.cookies.keys()].sort()).toEqual(['__Host-api-csrf', '__Host-api-sid']);
    } finally {
      await api.close();
    }
  });
});
