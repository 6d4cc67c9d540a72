// The portal from the sender's side, through the whole relay: a rule's `mode: portal`,
// forced's default chain ending at the portal, and a clinic's chain "PGP when we
// hold the key, else TLS at the floor, else the portal" (pgp → smime → forced →
// portal). Each recipient's record says which step carried the message and why the
// earlier ones did not; the notification goes through the normal delivery path (its
// own record, opportunistic TLS, DKIM-signed) and carries no content; the item
// holds the message as queued, minus the sender's notice header, and opens with
// the master key.
import dns from 'node:dns';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { MARKERS, markedMessage } from '../helpers/marked-message.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeygen } from '../../src/crypto/dkim.ts';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { formatMasterKey, generateMasterKey, loadKeyring, type Keyring } from '../../src/portal/master-keys.ts';
import { openPortalItem } from '../../src/portal/vault.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { startMxSet, type MxSet, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const message = (to: string, extra = '') =>
  markedMessage({ from: '"Lakeside Lab" <lab@clinic.test>', to: `<${to}>`, headers: ['Message-ID: <results-1@clinic.test>', ...(extra ? [extra] : [])], attachment: Buffer.from('%PDF-1.4 results') });

let mxs: MxSet;
let relay: TestRelay;
let dnsStub: DnsStub;
let keyring: Keyring;
let portalUrl: string;

const plainMx = () => mxs.byName('mx.plain.test');
const tlsMx = () => mxs.byName('mx.tls.test');
const receivedBy = (mx: StartedMx, rcpt: string) => mx.received.filter((m) => m.envelope.to.includes(rcpt));

beforeAll(async () => {
  const work = mkdtempSync(join(tmpdir(), 'sealrelay-e2e-portal-'));
  const keyFile = join(work, 'portal-k1.key');
  writeFileSync(keyFile, `${formatMasterKey(generateMasterKey())}\n`, { mode: 0o600 });
  dnsStub = await startDnsStub();
  const dkim = dkimKeygen('clinic.test', { selector: 'sealrelay', type: 'rsa' });
  dnsStub.set(dkim.dnsName, 'TXT', [dkim.dnsTxt]);
  const dkimFile = join(work, 'dkim.key');
  writeFileSync(dkimFile, dkim.privateKeyPem, { mode: 0o600 });
  mxs = await startMxSet([
    { kind: 'plain', name: 'mx.plain.test' },
    { kind: 'tls13', name: 'mx.tls.test' },
  ]);
  const at = (n: string) => `${mxs.byName(n).host}:${mxs.port}`;
  const config = testConfig({
    delivery: {
      routes: { 'patient.test': at('mx.plain.test'), 'plain.test': at('mx.plain.test'), 'tls.test': at('mx.tls.test'), 'clinic.test': at('mx.tls.test') },
      retry: { first_seconds: 3600 },
    },
    portal: {
      master_keys: [{ id: 'k1', file: keyFile }],
      current_key: 'k1',
      listen: '127.0.0.1:0',
      from: 'secure@clinic.test',
      organisation: { name: 'Lakeside Clinic' },
    },
    dkim: { domains: { 'clinic.test': { selector: 'sealrelay', key_file: dkimFile } } },
    policies: {
      default: { mode: 'forced' },
      rules: [
        { name: 'lab-portal', match: { recipient_domain: 'patient.test' }, mode: 'portal', portal: { expiry_days: 7 } },
        { name: 'clinic-chain', match: { recipient: ['kim@tls.test', 'kim@plain.test'] }, mode: 'pgp', fallback: ['smime', 'forced', 'portal'] },
      ],
    },
  });
  keyring = loadKeyring(config.portal, {})!;
  relay = await startTestRelay(config);
  portalUrl = relay.relay.web.find((l) => l.name === 'portal')!.url;
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await mxs?.close();
  await dnsStub?.close();
});

async function deliver(to: string, extra = '') {
  const id = queueIdOf(await submit({ port: relay.port, from: 'lab@clinic.test', to: [to], body: message(to, extra) }));
  const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.recipient === to));
  return { id, record: records.find((r) => r.queueId === id && r.recipient === to)! };
}

/** The notification queued for `record` and delivered: its own record and what the MX got. */
async function notificationOf(record: DeliveryRecord, mx: StartedMx) {
  const noticeId = record.portal!.notification;
  const [sent] = (await relay.waitForRecords((r) => r.some((x) => x.queueId === noticeId))).filter((x) => x.queueId === noticeId);
  const got = receivedBy(mx, record.recipient).find((m) => m.raw.toString('latin1').includes(`/m/`));
  return { sent: sent!, raw: got!.raw.toString('utf8') };
}

const linkIn = (raw: string) => new RegExp(`${portalUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/m/[A-Za-z0-9_-]{43}(#k=[A-Za-z0-9_-]{43})?`).exec(raw)?.[0] ?? null;

const getPage = (url: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });

describe('mode portal', () => {
  it('keeps the message as an item, notifies the recipient without any of its content, and records portal-notified', async () => {
    const { id, record } = await deliver('pat@patient.test', 'X-Portal-Notice: Your lab results are ready');
    expect(record).toMatchObject({ outcome: 'portal-notified', method: 'portal', decision: { mode: 'portal', rule: 'rule:lab-portal' }, mx: null, tls: null, fallback: null });
    expect(record.portal).toMatchObject({ keyInLink: false, passphrase: false, keyId: 'k1' });
    const days = (Date.parse(record.portal!.expiresAt) - Date.parse(record.at)) / 86_400_000;
    expect(days).toBeGreaterThan(6.99);
    expect(days).toBeLessThan(7.01);

    // The notification: its own record, delivered the normal way (opportunistic toward a plaintext MX), DKIM-signed.
    const { sent, raw } = await notificationOf(record, plainMx());
    expect(sent).toMatchObject({ outcome: 'delivered', method: 'plaintext', decision: { rule: 'portal:notice', mode: 'opportunistic' }, recipient: 'pat@patient.test', sender: 'lab@clinic.test' });
    for (const marker of Object.values(MARKERS)) expect(raw).not.toContain(marker);
    expect(raw).toContain('Your lab results are ready');
    expect(raw).toContain('Lakeside Clinic');
    const link = linkIn(raw);
    expect(link).not.toBeNull();
    expect(link).not.toMatch(/pat|patient/i);
    const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([dnsStub.server]);
    const dkim = await dkimVerify(Buffer.from(raw), { resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]> });
    expect(dkim.results.map((r: { status: { result: string } }) => r.status.result)).toContain('pass');

    // The item: the message as queued without the notice header, opened with the master key.
    const store = new SqliteStore(relay.config.store.path);
    try {
      const [info] = await store.listPortalItems({ message: id });
      expect(info).toMatchObject({ id: record.portal!.itemId, recipient: 'pat@patient.test', sender: 'lab@clinic.test', queueId: id, seq: 0 });
      const item = await store.getPortalItem(info!.id);
      const opened = openPortalItem(keyring, item!).toString('utf8');
      expect(opened).toContain(MARKERS.body);
      expect(opened).toContain(`Subject: Results ${MARKERS.subject}`);
      expect(opened).not.toMatch(/X-Portal-Notice/i);
    } finally {
      await store.close();
    }
    // The link reaches the portal: a landing page that shows nothing of the message.
    const page = await getPage(link!);
    expect(page.status).toBe(200);
    for (const marker of Object.values(MARKERS)) expect(page.body).not.toContain(marker);
  });
});

describe('fallback chains that reach the portal', () => {
  it('forced toward an MX without STARTTLS, no keys: pgp, smime, then the portal', async () => {
    const { record } = await deliver('ann@plain.test');
    expect(record).toMatchObject({ outcome: 'portal-notified', method: 'portal', decision: { mode: 'forced', fallbackChain: ['pgp', 'smime', 'portal'] } });
    expect(record.fallback?.reason).toMatch(/^forced: no acceptable TLS on any MX host \(.*STARTTLS/);
    expect(record.fallback?.tried.map((t) => t.split(':')[0])).toEqual(['pgp', 'smime', 'portal']);
    expect(record.fallback?.tried[2]).toBe(`portal: item ${record.portal!.itemId}`);
    // Nothing of the message went to the MX in any form: only the notification.
    const { raw } = await notificationOf(record, plainMx());
    expect(receivedBy(plainMx(), 'ann@plain.test')).toHaveLength(1);
    for (const marker of Object.values(MARKERS)) expect(raw).not.toContain(marker);
  });

  it('pgp → smime → forced → portal: no key, an MX with TLS → the forced step delivers over TLS', async () => {
    const { record } = await deliver('kim@tls.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'pgp', rule: 'rule:clinic-chain', fallbackChain: ['smime', 'forced', 'portal'] }, tls: { protocol: 'TLSv1.3' } });
    expect(record.fallback?.reason).toMatch(/^pgp: no OpenPGP key for kim@tls\.test/);
    expect(record.fallback?.tried).toEqual([expect.stringMatching(/^pgp: no OpenPGP key/), expect.stringMatching(/^smime: no S\/MIME certificate/), 'forced: delivered over TLSv1.3']);
    const [got] = receivedBy(tlsMx(), 'kim@tls.test');
    expect(got!.tls?.protocol).toBe('TLSv1.3');
    expect(got!.raw.toString('utf8')).toContain(MARKERS.body);
    expect(record.portal ?? null).toBeNull();
  });

  it('pgp → smime → forced → portal: no key, an MX without STARTTLS → the portal; never plaintext', async () => {
    const { record } = await deliver('kim@plain.test');
    expect(record).toMatchObject({ outcome: 'portal-notified', method: 'portal' });
    expect(record.fallback?.tried.map((t) => t.split(':')[0])).toEqual(['pgp', 'smime', 'forced', 'portal']);
    expect(record.fallback?.tried[2]).toMatch(/^forced: .*STARTTLS/);
    const { raw } = await notificationOf(record, plainMx());
    expect(receivedBy(plainMx(), 'kim@plain.test')).toHaveLength(1);
    expect(raw).not.toContain(MARKERS.body);
  });
});
