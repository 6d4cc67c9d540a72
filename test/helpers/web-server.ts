/**
 * web-server: a real HTTPS server from createHttpServer on 127.0.0.1 port 0, with
 * a certificate from the test CA and a small "demo" feature that uses each part of
 * the foundation the way portal and dashboard pages will: a form with a CSRF token
 * that saves a note, a sign-in with a lockout that rotates the session, a page
 * behind the session, a per-IP throttled POST, and two pages made to misbehave
 * (one prints markup unescaped, as an escaping bug would; one tries to start a
 * session on a GET). The clock is the test's to move.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { CSRF_FIELD } from '../../src/http/csrf.ts';
import { html, trustedHtml } from '../../src/html.ts';
import { sendPage } from '../../src/http/layout.ts';
import type { AttemptRules } from '../../src/http/limits.ts';
import type { LimitRule } from '../../src/http/rate-limit.ts';
import { createHttpServer, type HttpServer, type HttpServerOptions } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { sharedTestCa, type CertAndKey } from './test-ca.ts';

/** Three wrong passwords lock an account for 15 minutes; an IP gets ten. */
export const SIGN_IN_RULES: AttemptRules = {
  perKey: { name: 'demo-sign-in', limit: 3, windowMs: 15 * 60_000, lockoutMs: 15 * 60_000 },
  perIp: { name: 'demo-sign-in-ip', limit: 10, windowMs: 15 * 60_000, lockoutMs: 15 * 60_000 },
};
export const THROTTLE_RULE: LimitRule = { name: 'demo-throttle', limit: 4, windowMs: 60_000, lockoutMs: 0 };
export const DEMO_PASSWORD = 'correct horse battery staple';

export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

export function testClock(start = Date.parse('2026-12-03T12:00:00Z')): TestClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export interface TestWebServer {
  readonly server: HttpServer;
  /** https://127.0.0.1:<port> */
  readonly origin: string;
  readonly port: number;
  readonly cert: CertAndKey;
  readonly clock: TestClock;
  /** Notes saved by POST /form, in order. */
  readonly notes: readonly string[];
  close(): Promise<void>;
}

let cert: CertAndKey | undefined;
/** The certificate every test web server presents (127.0.0.1 and localhost), issued by the shared test CA. */
export function testWebCertificate(): CertAndKey {
  cert ??= sharedTestCa().issue({ commonName: '127.0.0.1', altNames: ['127.0.0.1', 'localhost'] });
  return cert;
}

/** SHA-256 of a certificate's public key, base64: what Chromium's --ignore-certificate-errors-spki-list takes. */
export function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

export async function startTestWebServer(
  opts: { name?: string; demo?: boolean; publicUrl?: string | null; options?: Partial<HttpServerOptions>; register?: (server: HttpServer) => void } = {},
): Promise<TestWebServer> {
  const clock = testClock();
  const pair = testWebCertificate();
  const server = await createHttpServer({
    name: opts.name ?? 'portal',
    listen: { host: '127.0.0.1', port: 0 },
    tls: { cert: pair.certPem, key: pair.keyPem },
    logger: createLogger(process.env.SEALRELAY_TEST_LOG ?? 'silent'),
    siteName: 'SealRelay test site',
    publicUrl: opts.publicUrl ?? null,
    now: clock.now,
    ...opts.options,
  });
  const notes: string[] = [];
  if (opts.demo !== false) registerDemo(server, notes);
  opts.register?.(server);
  const { port } = await server.listen();
  return { server, origin: `https://127.0.0.1:${port}`, port, cert: pair, clock, notes, close: () => server.close() };
}

function registerDemo(server: HttpServer, notes: string[]): void {
  const app: FastifyInstance = server.app;
  server.stateProbes.add('demo-notes', async () => [...notes]);

  app.get('/form', async (request, reply) => {
    const token = server.csrf.token(request, reply);
    return sendPage(request, reply, {
      title: 'Leave a note',
      main: html`<h1>Leave a note</h1>
<p class="meta">${notes.length} note(s) saved.</p>
<form method="post" action="/form" class="panel">
<input type="hidden" name="${CSRF_FIELD}" value="${token}">
<div class="field"><label for="note">Note</label><span class="hint" id="note-hint">A line of text.</span>
<input type="text" id="note" name="note" aria-describedby="note-hint" autocomplete="off"></div>
<button type="submit">Save note</button>
</form>`,
    });
  });

  app.post<{ Body: { note?: string } }>('/form', async (request, reply) => {
    notes.push(String(request.body?.note ?? ''));
    return sendPage(request, reply, { title: 'Note saved', main: html`<h1>Note saved</h1><p>Your note was saved.</p>` });
  });

  const signInPage = (request: Parameters<typeof sendPage>[0], reply: Parameters<typeof sendPage>[1], error: string | null, status = 200) => {
    const token = server.csrf.token(request, reply);
    return sendPage(
      request,
      reply,
      {
        title: 'Sign in',
        main: html`<h1>Sign in</h1>
${error ? html`<div class="notice error" role="alert"><p>${error}</p></div>` : null}
<form method="post" action="/sign-in" class="panel">
<input type="hidden" name="${CSRF_FIELD}" value="${token}">
<div class="field"><label for="user">User name</label><input type="text" id="user" name="user" autocomplete="username"></div>
<div class="field${error ? ' field-error' : ''}"><label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password"></div>
<button type="submit">Sign in</button>
</form>`,
      },
      status,
    );
  };
  app.get('/sign-in', async (request, reply) => signInPage(request, reply, null));
  app.post<{ Body: { user?: string; password?: string } }>('/sign-in', async (request, reply) => {
    const user = String(request.body?.user ?? '');
    const keys = [`account:${user}`];
    await server.limits.beforeAttempt(request, SIGN_IN_RULES, keys);
    if (request.body?.password !== DEMO_PASSWORD) {
      const left = await server.limits.failedAttempt(request, SIGN_IN_RULES, keys);
      return signInPage(request, reply, left > 0 ? `That password is not right. You have ${left} ${left === 1 ? 'try' : 'tries'} left.` : 'That password is not right, and that was the last try for now.', 401);
    }
    await server.limits.succeededAttempt(request, SIGN_IN_RULES, keys);
    await server.sessions.establish(request, reply, { user, level: 'signed-in' });
    return reply.redirect('/me', 303);
  });
  app.get('/me', async (request, reply) => {
    const s = request.session;
    if (!s) return reply.redirect('/sign-in', 303);
    const token = server.csrf.token(request, reply);
    return sendPage(request, reply, {
      title: 'Your account',
      main: html`<h1>Your account</h1><p>Signed in as <strong id="who">${String(s.data.user)}</strong>.</p>
<form method="post" action="/sign-out"><input type="hidden" name="${CSRF_FIELD}" value="${token}"><button type="submit" class="secondary">Sign out</button></form>`,
    });
  });
  app.post('/sign-out', async (request, reply) => {
    await server.sessions.end(request, reply);
    return reply.redirect('/sign-in', 303);
  });

  app.post('/throttled', { preHandler: server.limits.perIp(THROTTLE_RULE) }, async () => ({ ok: true }));
  // Misbehaving on purpose: a rate limit that would count GETs (the guard must stop it).
  app.get('/throttled-get', { preHandler: server.limits.perIp(THROTTLE_RULE) }, async () => ({ ok: true }));

  // Misbehaving on purpose: markup printed unescaped, as a template bug would.
  app.get<{ Querystring: { markup?: string } }>('/unescaped', async (request, reply) =>
    sendPage(request, reply, { title: 'Unescaped', main: html`<h1>Unescaped</h1><div id="content">${trustedHtml(request.query.markup ?? '')}</div>` }),
  );
  // …and the same text escaped, as every real page does.
  app.get<{ Querystring: { text?: string } }>('/escaped', async (request, reply) =>
    sendPage(request, reply, { title: 'Escaped', main: html`<h1>Escaped</h1><div id="content">${request.query.text ?? ''}</div>` }),
  );
  // Misbehaving on purpose: starts a session on a GET (the guard must stop it).
  app.get('/session-on-get', async (request, reply) => {
    await server.sessions.establish(request, reply, { user: 'scanner', level: 'signed-in' });
    return { started: true };
  });
  app.get('/fault', async () => {
    throw new Error('a fault with a secret-looking detail: token=abc123');
  });
}

/** Browser-like headers of a same-origin form post to `web`. */
export function sameOrigin(web: TestWebServer): Record<string, string> {
  return { origin: web.origin, 'sec-fetch-site': 'same-origin' };
}

/**
 * Requests through fastify's inject (no socket), with a cookie jar: a browser's
 * view of the protocol without a browser, for the cases a browser will not send.
 */
export class InjectClient {
  readonly cookies = new Map<string, string>();
  constructor(readonly web: TestWebServer) {}

  async request(method: 'GET' | 'HEAD' | 'POST', url: string, opts: { form?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await this.web.server.app.inject({
      method,
      url,
      headers: {
        host: `127.0.0.1:${this.web.port}`,
        ...(cookie ? { cookie } : {}),
        ...(opts.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...opts.headers,
      },
      ...(opts.form ? { payload: new URLSearchParams(opts.form).toString() } : {}),
    });
    for (const c of res.cookies as { name: string; value: string; maxAge?: number; expires?: Date }[]) {
      const gone = c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now());
      if (gone) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    return res;
  }

  get(url: string, headers: Record<string, string> = {}) {
    return this.request('GET', url, { headers });
  }

  /** A form post with the browser's same-origin headers unless `headers` says otherwise. */
  post(url: string, form: Record<string, string>, headers: Record<string, string> = sameOrigin(this.web)) {
    return this.request('POST', url, { form, headers });
  }

  /** GET `url` and return the CSRF token of its form. */
  async formToken(url = '/form'): Promise<string> {
    return csrfTokenIn((await this.get(url)).body);
  }
}

export function csrfTokenIn(body: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(body);
  if (!m) throw new Error('no CSRF token in the page');
  return m[1]!;
}
