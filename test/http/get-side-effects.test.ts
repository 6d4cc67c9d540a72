// GET never changes state (src/http/safe-requests.ts): mail scanners fetch every
// link before the person does. Every GET route of the registered set below is
// requested (GET and HEAD), by a browser that has a session, a CSRF cookie and
// failed attempts on record, and every state probe (sessions, rate limits, the
// demo's notes) must read the same before and after. A GET route without a
// sample here fails the test: a new route cannot slip past it.
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.ts';
import { assetUrl } from '../../src/http/assets.ts';
import { buildWebServer } from '../../src/http/listeners.ts';
import type { HttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { InjectClient, startTestWebServer, testWebCertificate, type TestWebServer } from '../helpers/web-server.ts';

/** Sample requests for every GET route pattern any listener registers. */
const SAMPLES: Record<string, readonly string[]> = {
  '/': ['/'],
  '/healthz': ['/healthz'],
  '/assets/:file': [assetUrl('base.css'), assetUrl('icon.svg'), '/assets/missing.css'],
  // The demo feature of test/helpers/web-server.ts, including its deliberately broken routes.
  '/form': ['/form'],
  '/sign-in': ['/sign-in'],
  '/me': ['/me'],
  '/unescaped': ['/unescaped?markup=<b>x</b>'],
  '/escaped': ['/escaped?text=x'],
  '/session-on-get': ['/session-on-get'],
  '/throttled-get': ['/throttled-get'],
  '/fault': ['/fault'],
  // The REST API (src/http/api/), asked without a token: refused, and the failure not counted on a GET.
  '/api/v1/messages': ['/api/v1/messages?recipient=a@b.test'],
  '/api/v1/messages/:id': ['/api/v1/messages/0000000000000000'],
  '/api/v1/messages/:id/evidence': ['/api/v1/messages/0000000000000000/evidence'],
  '/api/v1/queue': ['/api/v1/queue'],
  '/api/v1/domains/:domain': ['/api/v1/domains/b.test'],
  '/api/v1/openapi.json': ['/api/v1/openapi.json'],
  '/api/v1/reports': ['/api/v1/reports?since=7d', '/api/v1/reports?since=30d&split=subject&bucket=hour&format=csv'],
  // This test's own.
  '/test-token': ['/test-token'],
};
/** Not a route, but a GET all the same: the 404 handler. */
const ALSO = ['/no/such/page', '/p/unknown-token'];

/** Wraps a production listener's server (not listening: inject needs no socket) as the helpers expect. */
async function production(name: 'portal' | 'api'): Promise<TestWebServer> {
  const pair = testWebCertificate();
  // The api listener with the REST API's deps, so that its routes are requested too (test/http/api/queue.test.ts requests them with a token).
  const api = name === 'api' ? { store: new SqliteStore(':memory:'), kick: () => undefined } : undefined;
  const server = await buildWebServer(name, { config: configSchema.parse({ ingress: { listeners: {} } }), logger: createLogger('silent'), tls: { cert: pair.certPem, key: pair.keyPem }, api });
  addTestSignIn(server);
  return { server, origin: 'https://127.0.0.1:1', port: 1, cert: pair, clock: { now: Date.now, advance: () => {} }, notes: [], close: async () => {
    await server.close();
    await api?.store.close();
  } };
}

/** A token and a POST that starts a session and records a failure, so the GETs below run with state to change. */
function addTestSignIn(server: HttpServer): void {
  server.app.get('/test-token', async (request, reply) => ({ token: server.csrf.token(request, reply) }));
  server.app.post('/test-sign-in', async (request, reply) => {
    await server.sessions.establish(request, reply, { user: 'tester', level: 'signed-in' });
    await server.limits.failedAttempt(request, { perKey: { name: 'test', limit: 5, windowMs: 60_000, lockoutMs: 60_000 }, perIp: { name: 'test-ip', limit: 50, windowMs: 60_000, lockoutMs: 60_000 } }, ['account:tester']);
    return { ok: true };
  });
}

async function withState(web: TestWebServer, demo: boolean): Promise<InjectClient> {
  const browser = new InjectClient(web);
  const token = async () => (await browser.get('/test-token')).json().token as string;
  expect((await browser.post('/test-sign-in', { _csrf: await token() })).statusCode).toBe(200);
  if (demo) {
    expect((await browser.post('/sign-in', { _csrf: await token(), user: 'ana', password: 'wrong' })).statusCode).toBe(401);
    expect((await browser.post('/form', { _csrf: await token(), note: 'before' })).statusCode).toBe(200);
  }
  return browser;
}

describe('GET changes nothing', () => {
  for (const kind of ['demo', 'portal', 'api'] as const) {
    it(`on every GET route of the ${kind} listener`, async () => {
      const web = kind === 'demo' ? await startTestWebServer({ register: addTestSignIn }) : await production(kind);
      try {
        await web.server.app.ready();
        const getRoutes = [...new Set(web.server.routes.filter((r) => r.method === 'GET').map((r) => r.url))];
        const unsampled = getRoutes.filter((url) => !SAMPLES[url]);
        expect(unsampled, 'GET routes without a sample in SAMPLES').toEqual([]);

        const browser = await withState(web, kind === 'demo');
        const before = await web.server.stateProbes.snapshot();
        expect((before.sessions as unknown[]).length).toBe(1);
        expect((before['rate-limits'] as unknown[]).length).toBeGreaterThan(0);

        const statuses: Record<string, number> = {};
        for (const url of [...getRoutes.flatMap((r) => SAMPLES[r]!), ...ALSO]) {
          for (const method of ['GET', 'HEAD'] as const) {
            const res = await browser.request(method, url);
            statuses[`${method} ${url}`] = res.statusCode;
            expect(await web.server.stateProbes.snapshot(), `${method} ${url} changed state`).toEqual(before);
          }
        }
        // The broken demo routes were stopped by the guard, not by luck.
        if (kind === 'demo') expect(statuses).toMatchObject({ 'GET /session-on-get': 500, 'GET /throttled-get': 500, 'GET /me': 200, 'GET /form': 200 });
        else expect(statuses).toMatchObject({ 'GET /': 200, 'GET /healthz': 200 });
      } finally {
        await web.close();
      }
    });
  }
});
