// Tracking and unsubscribes through the whole relay, with a real MX and the public
// (portal) listener: a rule's tracking rewrites each recipient's copy before it is
// DKIM-signed (links through the signed redirector, the pixel, the List-Unsubscribe
// pair inside the signature); fetching the pixel and following a link record
// `opened` and `clicked`, marked automated for a proxy or a click too soon after
// delivery; a changed or unsigned link redirects nowhere; a GET of the unsubscribe
// link changes nothing, the RFC 8058 one-click POST unsubscribes; the next message
// from that sender domain is `suppressed` and never reaches the MX, while a
// transactional rule's message still goes. With mode pgp, the copy is tracked
// before it is encrypted: the decrypted entity holds the signed links.
import dns from 'node:dns';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeygen } from '../../src/crypto/dkim.ts';
import { parseKeyFile } from '../../src/crypto/keys.ts';
import { createGpgHome, type GpgHome } from '../helpers/gpg.ts';
import { formatMasterKey, generateMasterKey } from '../../src/portal/master-keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';
const TARGET = 'https://clinic.test/spring-news?id=7&lang=en';

let mxs: MxSet;
let relay: TestRelay;
let dnsStub: DnsStub;
let publicUrl: string;
let store: SqliteStore;
let gpg: GpgHome;

const html = (to: string, from = 'news@clinic.test') =>
  [
    `From: "Lakeside Clinic" <${from}>`,
    `To: <${to}>`,
    'Subject: Spring news',
    'Message-ID: <spring-1@clinic.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Read it at ${TARGET}`,
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    `<html><body><p>Read <a href=3D"${TARGET.replace('&', '&amp;')}">our news</a> or <a href=3D"mailto:desk@clinic.test">write</a>.</p></body></html>`,
    '--b1--',
    '',
  ].join('\r\n');

beforeAll(async () => {
  const work = mkdtempSync(join(tmpdir(), 'sealrelay-e2e-tracking-'));
  const keyFile = join(work, 'tracking.key');
  writeFileSync(keyFile, formatMasterKey(generateMasterKey()), { mode: 0o600 });
  dnsStub = await startDnsStub();
  const dkim = dkimKeygen('clinic.test', { selector: 'sealrelay', type: 'rsa' });
  dnsStub.set(dkim.dnsName, 'TXT', [dkim.dnsTxt]);
  const dkimFile = join(work, 'dkim.key');
  writeFileSync(dkimFile, dkim.privateKeyPem, { mode: 0o600 });
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.patient.test' }]);
  const config = testConfig({
    delivery: { routes: { 'patient.test': `${mxs.byName('mx.patient.test').host}:${mxs.port}` }, retry: { first_seconds: 3600 } },
    portal: { listen: '127.0.0.1:0' },
    tracking: { key: { file: keyFile }, machine_open_seconds: 0, machine_click_seconds: 3600 },
    dkim: { domains: { 'clinic.test': { selector: 'sealrelay', key_file: dkimFile } } },
    policies: {
      default: { mode: 'opportunistic' },
      rules: [
        { name: 'newsletter', match: { sender: 'news@clinic.test' }, mode: 'opportunistic', tracking: { opens: true, clicks: true, unsubscribe: true } },
        { name: 'receipts', match: { sender: 'receipts@clinic.test' }, mode: 'opportunistic', transactional: true },
        // No tracking of its own: the newsletter rule's joins in (on where any matching rule asks).
        { name: 'kim-pgp', match: { recipient: 'kim@patient.test' }, mode: 'pgp' },
      ],
    },
  });
  // Kim's key goes into the store before the relay starts, as `sealrelay keys import` would put it.
  gpg = createGpgHome();
  const kimKey = await gpg.generateKey({ uid: 'Kim <kim@patient.test>' });
  const seed = new SqliteStore(config.store.path);
  for (const key of (await parseKeyFile(Buffer.from(kimKey.publicArmored), { source: 'import', now: Date.now() })).keys) await seed.putKey(key);
  await seed.close();
  relay = await startTestRelay(config);
  publicUrl = relay.relay.web.find((l) => l.name === 'portal')!.url;
  store = new SqliteStore(config.store.path);
}, 60_000);

afterAll(async () => {
  await store?.close();
  await relay?.close();
  await mxs?.close();
  await dnsStub?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function fetchUrl(url: string, opts: { method?: string; userAgent?: string | null; form?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.userAgent !== null) headers['user-agent'] = opts.userAgent ?? BROWSER;
    if (opts.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(opts.form));
    }
    const req = request(url, { method: opts.method ?? 'GET', headers, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.form);
  });
}

async function deliver(to: string, from = 'news@clinic.test') {
  const id = queueIdOf(await submit({ port: relay.port, from, to: [to], body: html(to, from) }));
  const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome !== 'deferred'));
  return { id, record: records.find((r) => r.queueId === id)! };
}

const receivedBy = (rcpt: string) => mxs.byName('mx.patient.test').received.filter((m) => m.envelope.to.includes(rcpt));
const eventsOf = (type: 'opened' | 'clicked' | 'unsubscribed' | 'suppressed') => store.listEvents({ limit: 100, types: [type] });

describe('tracking through the relay', () => {
  let id: string;
  let raw: string;
  let clickUrl: string;
  let pixelUrl: string;
  let unsubscribeUrl: string;

  it('sends a copy with signed links, the pixel and a DKIM-signed List-Unsubscribe pair', async () => {
    ({ id } = await deliver('ann@patient.test'));
    const [got] = receivedBy('ann@patient.test');
    raw = got!.raw.toString('latin1');
    const parsed = await simpleParser(got!.raw);
    const body = parsed.html as string;
    clickUrl = /href="([^"]+\/t\/c\/[^"]+)"/.exec(body)![1]!.replace(/&amp;/g, '&');
    pixelUrl = /<img src="([^"]+\/t\/o\/[^"]+)"/.exec(body)![1]!;
    expect(clickUrl.startsWith(`${publicUrl}/t/c/`)).toBe(true);
    expect(pixelUrl.startsWith(`${publicUrl}/t/o/`)).toBe(true);
    expect(body).not.toContain(`href="${TARGET}`);
    expect(body).toContain('mailto:desk@clinic.test');
    expect(parsed.text).toContain(TARGET);
    unsubscribeUrl = /^List-Unsubscribe: <([^>]+)>\r$/m.exec(raw)![1]!;
    expect(unsubscribeUrl.startsWith(`${publicUrl}/u/`)).toBe(true);
    expect(raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
    // Nothing in the links names the recipient.
    for (const link of [clickUrl, pixelUrl, unsubscribeUrl]) expect(link).not.toMatch(/ann|patient/i);

    const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([dnsStub.server]);
    const dkim = await dkimVerify(got!.raw, { resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]> });
    expect(dkim.results.map((r: { status: { result: string } }) => r.status.result)).toEqual(['pass']);
    const signed = /DKIM-Signature:[^]*?\bh=([^;]+);/i.exec(raw)![1]!.replace(/\s+/g, '').toLowerCase().split(':');
    expect(signed).toEqual(expect.arrayContaining(['list-unsubscribe', 'list-unsubscribe-post']));
  });

  it('records opens, marking a proxy fetch automated', async () => {
    const person = await fetchUrl(pixelUrl);
    expect(person.status).toBe(200);
    expect(person.headers['content-type']).toBe('image/gif');
    expect(person.headers['cache-control']).toContain('no-store');
    expect((await fetchUrl(pixelUrl, { userAgent: 'Mozilla/5.0' })).status).toBe(200);
    expect((await eventsOf('opened')).map((e) => [e.queueId, e.recipient, e.automated])).toEqual([
      [id, 'ann@patient.test', false],
      [id, 'ann@patient.test', true],
    ]);
  });

  it('redirects a signed click to its URL only, marking a click this soon after delivery automated', async () => {
    const res = await fetchUrl(clickUrl);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(TARGET);
    expect((await eventsOf('clicked')).map((e) => [e.queueId, e.recipient, e.automated])).toEqual([[id, 'ann@patient.test', true]]);

    const token = clickUrl.slice(`${publicUrl}/t/c/`.length);
    const parts = token.split('.');
    const evil = [parts[0], parts[1], parts[2], Buffer.from('https://evil.test/').toString('base64url'), parts[4]].join('.');
    for (const bad of [
      `${publicUrl}/t/c/${evil}`,
      `${publicUrl}/t/c/${token.slice(0, -2)}`,
      `${publicUrl}/t/c/${parts.slice(0, 4).join('.')}`,
      `${publicUrl}/t/c/${token}/extra`,
      `${publicUrl}/t/c/https://evil.test/`,
      `${publicUrl}/t/c/?url=https://evil.test/`,
      `${publicUrl}/t/c/${'A'.repeat(5000)}`,
      `${publicUrl}/t/o/${token}`,
      `${publicUrl}/u/${token}`,
    ]) {
      const r = await fetchUrl(bad);
      expect(r.status, bad.slice(0, 120)).toBeGreaterThanOrEqual(400);
      expect(r.status, bad.slice(0, 120)).toBeLessThan(500);
      expect(r.headers.location).toBeUndefined();
      expect(r.body).not.toContain('evil.test');
    }
    expect(await eventsOf('clicked')).toHaveLength(1);
  });

  it('a GET of the unsubscribe link (and a HEAD, and a POST without the one-click body) unsubscribes nobody', async () => {
    const page = await fetchUrl(unsubscribeUrl);
    expect(page.status).toBe(200);
    expect(page.body).toContain('clinic.test');
    expect(page.body).toContain('name="List-Unsubscribe" value="One-Click"');
    expect((await fetchUrl(unsubscribeUrl, { method: 'HEAD' })).status).toBe(200);
    for (const form of ['', 'List-Unsubscribe=Yes', 'other=One-Click']) {
      expect((await fetchUrl(unsubscribeUrl, { method: 'POST', form })).status, form).toBe(400);
    }
    expect(await store.listSuppressions()).toEqual([]);
    expect(await eventsOf('unsubscribed')).toEqual([]);
  });

  it('the one-click POST (as a mail provider sends it: no cookie, no CSRF token) unsubscribes', async () => {
    const res = await fetchUrl(unsubscribeUrl, { method: 'POST', form: 'List-Unsubscribe=One-Click', userAgent: null });
    expect(res.status).toBe(200);
    expect(res.body).toContain('You are unsubscribed');
    expect(await store.listSuppressions()).toEqual([expect.objectContaining({ senderDomain: 'clinic.test', recipient: 'ann@patient.test', source: 'unsubscribe', queueId: id, seq: 0 })]);
    expect((await eventsOf('unsubscribed')).map((e) => [e.queueId, e.recipient])).toEqual([[id, 'ann@patient.test']]);
    // The page now says so, and a second POST changes nothing.
    expect((await fetchUrl(unsubscribeUrl)).body).toContain('You are unsubscribed');
    expect((await fetchUrl(unsubscribeUrl, { method: 'POST', form: 'List-Unsubscribe=One-Click' })).status).toBe(200);
    expect(await eventsOf('unsubscribed')).toHaveLength(1);
  });

  it('suppresses later mail from that sender domain to that address, but sends transactional mail', async () => {
    const before = receivedBy('ann@patient.test').length;
    const { id: next, record } = await deliver('ann@patient.test', 'news@clinic.test');
    expect(record).toMatchObject({ outcome: 'suppressed', method: 'none', mx: null, tls: null });
    expect(record.smtp.response).toContain('suppressed');
    expect((await eventsOf('suppressed')).map((e) => e.queueId)).toEqual([next]);
    expect((await store.listQueue()).map((q) => q.queueId)).not.toContain(next);

    const { record: receipt } = await deliver('ann@patient.test', 'receipts@clinic.test');
    expect(receipt).toMatchObject({ outcome: 'delivered' });
    expect(receipt.decision.reasons.join(' ')).toContain('rule receipts');
    // Only the receipt reached the MX.
    const after = receivedBy('ann@patient.test');
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)!.envelope.from).toBe('receipts@clinic.test');
  });

  it('gives each recipient of one message a copy whose links name that recipient', async () => {
    const to = ['bea@patient.test', 'cy@patient.test'];
    const multi = queueIdOf(await submit({ port: relay.port, from: 'news@clinic.test', to, body: html(to.join('>, <')) }));
    const records = await relay.waitForRecords((r) => r.filter((x) => x.queueId === multi && x.outcome === 'delivered').length === 2);
    expect(records.filter((r) => r.queueId === multi).map((r) => r.recipient).sort()).toEqual(to);
    for (const [seq, rcpt] of to.entries()) {
      const [got] = receivedBy(rcpt);
      expect(got!.envelope.to).toEqual([rcpt]);
      expect(got!.raw.toString('latin1')).toContain(`/u/u.${multi}.${seq}.`);
    }
  });

  it('with mode pgp, tracks the copy before it is encrypted', async () => {
    const { id: kimId, record } = await deliver('kim@patient.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'pgp+tls', decision: { mode: 'pgp' } });
    const [got] = receivedBy('kim@patient.test');
    const raw = got!.raw.toString('latin1');
    expect(raw).toMatch(/^Content-Type: multipart\/encrypted;/m);
    expect(raw).not.toContain('/t/c/');
    // The unsubscribe pair is a header of the message, outside the encrypted entity (and DKIM-signed with it).
    expect(raw).toMatch(/^List-Unsubscribe: <[^>]+\/u\/u\.[A-Za-z0-9]+\.0\.[A-Za-z0-9_-]{22}>\r$/m);
    const armored = /-----BEGIN PGP MESSAGE-----[^]*?-----END PGP MESSAGE-----/.exec(raw)![0];
    const entity = (await gpg.decrypt(armored)).output;
    const inner = await simpleParser(entity);
    const body = inner.html as string;
    const link = /href="([^"]+\/t\/c\/[^"]+)"/.exec(body)![1]!.replace(/&amp;/g, '&');
    expect(body).toContain(`/t/o/o.${kimId}.0.`);
    const res = await fetchUrl(link);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(TARGET);
    expect((await eventsOf('clicked')).filter((e) => e.queueId === kimId).map((e) => e.recipient)).toEqual(['kim@patient.test']);
  });
});
