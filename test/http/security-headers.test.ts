// Every response carries the security headers (src/http/security-headers.ts),
// whatever produced it: a page, JSON, an asset, a redirect, a 404, a refused form,
// a lockout, a server fault. Whether Chromium enforces the CSP is in browser.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { assetUrl } from '../../src/http/assets.ts';
import { InjectClient, sameOrigin, startTestWebServer, type TestWebServer } from '../helpers/web-server.ts';

let web: TestWebServer;
afterEach(async () => web?.close());

const CSP = (nonce: string, img = "img-src 'self'") =>
  `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'self'; ${img}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'`;

function expectSecurityHeaders(headers: Record<string, unknown>, cache: 'no-store' | 'immutable' = 'no-store') {
  const nonce = /'nonce-([^']+)'/.exec(String(headers['content-security-policy']))?.[1] ?? '';
  expect(Buffer.from(nonce, 'base64').length).toBe(16);
  expect(headers).toMatchObject({
    'content-security-policy': CSP(nonce),
    'strict-transport-security': 'max-age=31536000',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'x-frame-options': 'DENY',
  });
  expect(String(headers['permissions-policy'])).toMatch(/(^|, )camera=\(\)/);
  expect(String(headers['permissions-policy'])).toMatch(/(^|, )microphone=\(\)/);
  expect(String(headers['permissions-policy'])).toMatch(/(^|, )geolocation=\(\)/);
  expect(headers['cache-control']).toBe(cache === 'no-store' ? 'no-store' : 'public, max-age=31536000, immutable');
  expect(headers['server']).toBeUndefined();
  expect(headers['x-powered-by']).toBeUndefined();
  return nonce;
}

describe('security headers', () => {
  it('on every kind of response', async () => {
    web = await startTestWebServer({
      register: (s) => s.app.get('/logo', { config: { csp: { imgData: true } } }, async (_r, reply) => reply.type('text/html').send('<img alt="" src="data:image/png;base64,AA==">')),
    });
    const browser = new InjectClient(web);
    const page = await browser.get('/form');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const responses = {
      page,
      json: await browser.get('/no/such/resource', { accept: 'application/json' }),
      redirect: await browser.get('/me'),
      notFound: await browser.get('/no/such/page'),
      head: await browser.request('HEAD', '/form'),
      csrfRefused: await browser.post('/form', { note: 'x' }),
      fault: await browser.get('/fault'),
      badBody: await browser.request('POST', '/form', { headers: { ...sameOrigin(web), 'content-type': 'application/json' }, form: undefined }),
    };
    for (const [what, res] of Object.entries(responses)) {
      try {
        expectSecurityHeaders(res.headers);
      } catch (err) {
        throw new Error(`${what} (${res.statusCode}): ${(err as Error).message}`, { cause: err });
      }
    }
    expect(responses.redirect.statusCode).toBe(303);
    expect(responses.notFound.statusCode).toBe(404);
    expect(responses.csrfRefused.statusCode).toBe(403);
    expect(responses.fault.statusCode).toBe(500);
    expect(responses.json.statusCode).toBe(404);
    expect(responses.json.json()).toEqual({ error: { status: 404, title: 'Page not found', detail: expect.any(String) } });
    expect(responses.badBody.statusCode).toBe(400);
    expect(responses.badBody.body).toContain('We could not read that request');
    const asset = await browser.get(assetUrl('base.css'));
    expect(asset.headers['content-type']).toBe('text/css; charset=utf-8');
    expectSecurityHeaders(asset.headers, 'immutable');
    // A route that asks for data: images gets exactly that added, nothing else.
    const logo = await browser.get('/logo');
    const nonce = /'nonce-([^']+)'/.exec(String(logo.headers['content-security-policy']))![1]!;
    expect(logo.headers['content-security-policy']).toBe(CSP(nonce, "img-src 'self' data:"));
  });

  it('a fresh nonce for every response', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const nonces = new Set<string>();
    for (let i = 0; i < 20; i++) nonces.add(expectSecurityHeaders((await browser.get('/form')).headers));
    expect(nonces.size).toBe(20);
  });

  it('a server fault shows a reference and nothing of the error; the log has the route pattern, not the URL', async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({ write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk))), cb()) });
    web = await startTestWebServer({ options: { logger: createLogger('info', stream) } });
    const res = await new InjectClient(web).get('/fault?token=secret-link-token');
    expect(res.statusCode).toBe(500);
    expect(res.body).toContain('Something went wrong on our side');
    expect(res.body).not.toContain('abc123');
    expect(res.body).not.toContain('secret-link-token');
    const reference = /quote reference ([0-9a-f]+)/.exec(res.body)?.[1];
    expect(reference).toMatch(/^[0-9a-f]{12}$/);
    const logged = lines.find((l) => l.event === 'http.error');
    expect(logged).toMatchObject({ route: '/fault', method: 'GET', status: 500, reference, listener: 'portal' });
    expect(JSON.stringify(lines)).not.toContain('secret-link-token');
  });

  it('unknown assets are 404s, and an asset is served only by its hashed name', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    expect((await browser.get('/assets/base.css')).statusCode).toBe(404);
    expect((await browser.get('/assets/..%2F..%2Fpackage.json')).statusCode).toBe(404);
    const url = assetUrl('base.css');
    const first = await browser.get(url);
    expect(first.statusCode).toBe(200);
    expect((await browser.get(url, { 'if-none-match': String(first.headers.etag) })).statusCode).toBe(304);
  });
});
