// The tracking and unsubscribe routes (src/reporting/tracking/routes.ts) on a real
// portal server and SQLite store: no GET or HEAD of any of them changes state (the
// suppressions probe, sessions, rate limits) — the pixel and the redirector only add
// observations; bad tokens of every shape are a 404 that echoes nothing, records
// nothing and redirects nowhere; the one-click POST needs its RFC 8058 body and no
// CSRF token (the signed link is the authority), and without a key nothing is served.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.ts';
import { buildWebServer } from '../../../src/http/listeners.ts';
import type { HttpServer } from '../../../src/http/server.ts';
import { createLogger } from '../../../src/log.ts';
import { LinkSigner, linkUrl } from '../../../src/reporting/tracking/links.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { claimAll, HOUR, message, record } from '../../cli/harness.ts';
import { testWebCertificate } from '../../helpers/web-server.ts';
import { XSS_PAYLOADS } from '../../helpers/xss-payloads.ts';

const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';
let store: SqliteStore;
let server: HttpServer;
let key: Buffer | null;
const signer = () => new LinkSigner(key!);
const path = (kind: 'open' | 'click' | 'unsubscribe', queueId = 'QA', seq = 0, url?: string) => linkUrl('', signer(), { kind, queueId, seq, url });

beforeEach(async () => {
  key = randomBytes(32);
  store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'sealrelay-track-routes-')), 'store.db'));
  const now = Date.now();
  await store.enqueue(message('QA', ['ann@patient.example'], now - HOUR));
  await store.enqueue(message('QX', ['bob@patient.example'], now - HOUR, { sender: 'news@<img src=x onerror=alert(1)>.example' }));
  await claimAll(store);
  await store.finish([record({ queueId: 'QA', seq: 0, recipient: 'ann@patient.example', attempt: 1, at: now - HOUR, outcome: 'delivered' })], [{ queueId: 'QA', seq: 0, outcome: 'delivered', error: null }]);
  const pair = testWebCertificate();
  const config = configSchema.parse({ ingress: { listeners: {} }, portal: { listen: '127.0.0.1:0' }, tracking: { key: { env: 'K' } } });
  server = await buildWebServer('portal', { config, logger: createLogger('silent'), tls: { cert: pair.certPem, key: pair.keyPem }, tracking: { store, key: () => key } });
  await server.app.ready();
});
afterEach(async () => {
  await server.close();
  await store.close();
});

const inject = (method: 'GET' | 'HEAD' | 'POST', url: string, opts: { form?: string; headers?: Record<string, string> } = {}) =>
  server.app.inject({
    method,
    url,
    headers: { 'user-agent': BROWSER, ...(opts.form !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...opts.headers },
    ...(opts.form !== undefined ? { payload: opts.form } : {}),
  });
const events = async () => (await store.listEvents({ limit: 100, types: ['opened', 'clicked', 'unsubscribed'] })).map((e) => `${e.type} ${e.queueId}.${e.seq}${e.automated ? ' automated' : ''}`);

describe('tracking routes', () => {
  it('no GET or HEAD of any of them changes state; the pixel and redirector add only observations', async () => {
    const urls = [path('open'), path('click', 'QA', 0, 'https://clinic.example/'), path('unsubscribe'), path('unsubscribe', 'QX'), '/t/o/bad', '/t/c/bad', '/u/bad'];
    const before = await server.stateProbes.snapshot();
    expect(Object.keys(before)).toContain('suppressions');
    for (const url of urls) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await inject(method, url);
        expect(res.statusCode, `${method} ${url}`).toBeLessThan(500);
        expect(await server.stateProbes.snapshot(), `${method} ${url}`).toEqual(before);
      }
    }
    expect(await store.listSuppressions()).toEqual([]);
    // A HEAD is a machine's; the GETs by a browser an hour after delivery are a person's.
    expect(await events()).toEqual(['opened QA.0', 'opened QA.0 automated', 'clicked QA.0', 'clicked QA.0 automated']);
  });

  it('answers a bad token of any shape with a 404 that echoes nothing, records nothing, redirects nowhere', async () => {
    const click = path('click', 'QA', 0, 'https://clinic.example/').slice('/t/c/'.length);
    const hostile = [
      ...XSS_PAYLOADS.map(encodeURIComponent),
      '..%2F..%2Fetc%2Fpasswd',
      '%00',
      'é'.repeat(50),
      // The MAC's last character changed to another canonical one (it is one of A, Q, g, w: the same one would be the valid token).
      `${click.slice(0, -1)}${click.endsWith('A') ? 'Q' : 'A'}`,
      click.replace(/\.[^.]+\.([^.]+)$/, `.${Buffer.from('https://evil.example/').toString('base64url')}.$1`),
      'x'.repeat(4000),
    ];
    for (const token of hostile) {
      for (const prefix of ['/t/o/', '/t/c/', '/u/']) {
        const res = await inject('GET', `${prefix}${token}`);
        // A path parameter past the router's limit is refused before any route: 414.
        expect([404, 414], `${prefix}${token.slice(0, 40)}`).toContain(res.statusCode);
        expect(res.headers.location).toBeUndefined();
        expect(res.body).not.toContain('<script>window.pwned');
        expect(res.body).not.toContain('evil.example');
      }
      expect([404, 414]).toContain((await inject('POST', `/u/${token}`, { form: 'List-Unsubscribe=One-Click' })).statusCode);
    }
    // A valid token of one kind is no token of another.
    expect((await inject('GET', `/u/${path('open').slice('/t/o/'.length)}`)).statusCode).toBe(404);
    expect((await inject('GET', `/t/c/${path('unsubscribe').slice('/u/'.length)}`)).statusCode).toBe(404);
    expect(await events()).toEqual([]);
    expect(await store.listSuppressions()).toEqual([]);
  });

  it('escapes what the unsubscribe page shows, and a message without a sender domain unsubscribes nobody', async () => {
    const page = await inject('GET', path('unsubscribe', 'QX'));
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('<img src=x');
    expect(page.body).toContain('&lt;img src=x');
    expect((await inject('POST', path('unsubscribe', 'QX'), { form: 'List-Unsubscribe=One-Click' })).statusCode).toBe(404);
    expect(await store.listSuppressions()).toEqual([]);
  });

  it('the one-click POST needs its body, not a CSRF token, and works from anywhere the link went', async () => {
    const url = path('unsubscribe');
    expect((await inject('POST', url)).statusCode).toBe(400);
    const wrong = await inject('POST', url, { form: 'List-Unsubscribe=one-click' });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.body).toContain('List-Unsubscribe');
    expect(await store.listSuppressions()).toEqual([]);
    const res = await inject('POST', url, { form: 'List-Unsubscribe=One-Click', headers: { origin: 'https://mail.provider.example', 'sec-fetch-site': 'cross-site' } });
    expect(res.statusCode).toBe(200);
    expect((await store.listSuppressions()).map((s) => `${s.senderDomain} ${s.recipient} ${s.source}`)).toEqual(['clinic.example ann@patient.example unsubscribe']);
    expect(await events()).toEqual(['unsubscribed QA.0']);
  });

  it('serves nothing without a key, nor with another key', async () => {
    const urls = [path('open'), path('click', 'QA', 0, 'https://clinic.example/'), path('unsubscribe')];
    key = randomBytes(32);
    for (const url of urls) expect((await inject('GET', url)).statusCode).toBe(404);
    key = null;
    for (const url of urls) expect((await inject('GET', url)).statusCode).toBe(404);
    expect(await events()).toEqual([]);
  });
});
