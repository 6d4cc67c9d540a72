// createKeyFinder against real parts: OpenPGP keys made by gpg, S/MIME certificates
// from a throwaway CA, a SQLite key store on a temp file, and for WKD a test-CA HTTPS
// server on loopback found through the DNS stub. The clock is the finder's `now`
// option, so cache lifetimes are crossed without sleeping.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyFile } from '../../src/crypto/keys.ts';
import { createKeyFinder, type KeyAnswer, type KeyFinder } from '../../src/crypto/recipient-keys.ts';
import { wkdHash } from '../../src/crypto/wkd.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { RecipientKey } from '../../src/store/store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { createGpgHome, type GpgHome, type GpgKey } from '../helpers/gpg.ts';
import { issueSmimeCert } from '../helpers/smime-certs.ts';
import { advancedPath, startWkdServer, type WkdServer } from '../helpers/wkd-server.ts';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const CACHE_MS = DAY;
const NEGATIVE_CACHE_MS = 10 * MINUTE;

let home: GpgHome;
let dnsStub: DnsStub;
let server: WkdServer;
let dir: string;
const stores: SqliteStore[] = [];
let serial = 0;

beforeAll(async () => {
  home = createGpgHome();
  dnsStub = await startDnsStub();
  server = await startWkdServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-finder-'));
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await Promise.all([home?.close(), dnsStub?.close(), server?.close()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function freshStore(): SqliteStore {
  const store = new SqliteStore(path.join(dir, `keys-${++serial}.db`));
  stores.push(store);
  return store;
}

/** A domain of its own per test, under .invalid so nothing real is ever asked. */
const freshDomain = (label: string) => `${label}-${++serial}.finder.invalid`;

/** What `sealrelay keys import` does with a file: parse it against the store, store every key. */
async function importInto(store: SqliteStore, bytes: string | Uint8Array, now = Date.now()): Promise<RecipientKey[]> {
  const parsed = await parseKeyFile(typeof bytes === 'string' ? Buffer.from(bytes) : bytes, { source: 'import', now, known: (f) => store.getKey(f) });
  expect(parsed.problems).toEqual([]);
  for (const key of parsed.keys) await store.putKey(key);
  return parsed.keys;
}

/** gpg's own revocation certificate for a key of `home`, armed (gpg defuses it with a leading colon). */
function revocationOf(key: GpgKey): string {
  const text = fs.readFileSync(path.join(home.dir, 'openpgp-revocs.d', `${key.fingerprint}.rev`), 'utf8');
  return text.replace(/^:-----BEGIN/m, '-----BEGIN');
}

/** An ed25519 + cv25519 key made under gpg's faked clock at `at` ("20220101T000000"), never expiring. */
async function keyMadeAt(uid: string, at: string): Promise<GpgKey> {
  // Frozen ("!"): a running faked clock restarts at `at` in each call, and the subkey could predate its primary.
  const clock = ['--faked-system-time', `${at}!`];
  const made = await home.run([...clock, '--quick-gen-key', uid, 'ed25519', 'cert,sign', 'never']);
  const fingerprint = /^KEY_CREATED P ([0-9A-F]{40})/m.exec(made.status.join('\n'))?.[1];
  if (made.code !== 0 || !fingerprint) throw new Error(`gpg made no key:\n${made.log}`);
  const sub = await home.run([...clock, '--quick-add-key', fingerprint, 'cv25519', 'encr', 'never']);
  if (sub.code !== 0) throw new Error(`gpg added no subkey:\n${sub.log}`);
  return { fingerprint, uid, publicArmored: await home.exportPublic(fingerprint) };
}

async function binaryExport(key: GpgKey): Promise<Uint8Array> {
  const out = await home.run(['--export', key.fingerprint]);
  expect(out.code).toBe(0);
  return new Uint8Array(out.output);
}

function refused(answer: KeyAnswer): { why: string; temporary: boolean } {
  if (answer.ok) throw new Error(`expected no key, got ${answer.key.fingerprint}`);
  return answer;
}

function found(answer: KeyAnswer): RecipientKey {
  if (!answer.ok) throw new Error(`expected a key: ${answer.why}`);
  return answer.key;
}

describe('keys held in the store', () => {
  const finder = (store: SqliteStore, now?: () => number): KeyFinder => createKeyFinder({ store, wkd: null, ...(now ? { now } : {}) });

  it('a stored usable OpenPGP key is found, whatever the case of the address', async () => {
    const store = freshStore();
    const key = await home.generateKey({ uid: `Alice <Alice@${freshDomain('held')}>` });
    await importInto(store, key.publicArmored);
    const address = key.uid.slice(key.uid.indexOf('<') + 1, -1);
    const answer = found(await finder(store).find(`  ${address.toUpperCase()} `, 'pgp'));
    expect(answer).toMatchObject({ fingerprint: key.fingerprint, kind: 'pgp', source: 'import', addresses: [address.toLowerCase()] });
  });

  it('an address with no key at all: says so, permanently', async () => {
    const answer = refused(await finder(freshStore()).find('nobody@nowhere.invalid', 'pgp'));
    expect(answer).toEqual({ ok: false, why: 'no OpenPGP key for nobody@nowhere.invalid', temporary: false });
  });

  it('something that is not an address gets a clear refusal', async () => {
    expect(refused(await finder(freshStore()).find('not an address', 'pgp')).why).toBe('"not an address" is not an address a key can carry');
  });

  it('an expired key is never returned; why names its expiry', async () => {
    const store = freshStore();
    const address = `old@${freshDomain('expired')}`;
    const key = await home.generateKey({ uid: `Old <${address}>`, expired: true });
    await importInto(store, key.publicArmored);
    expect((await store.keysFor(address)).map((k) => k.fingerprint)).toEqual([key.fingerprint]);
    const answer = refused(await finder(store).find(address, 'pgp'));
    expect(answer.temporary).toBe(false);
    expect(answer.why).toBe(`no usable OpenPGP key for ${address} (${key.fingerprint.slice(-16)} expired 2020-01-02)`);
  });

  it('a key expires on the finder’s clock: usable the day before, refused after', async () => {
    const store = freshStore();
    const address = `soon@${freshDomain('expiring')}`;
    const key = await home.generateKey({ uid: `Soon <${address}>`, expire: '30d' });
    const [stored] = await importInto(store, key.publicArmored);
    const expiresAt = stored!.expiresAt!;
    expect(found(await finder(store, () => expiresAt - DAY).find(address, 'pgp')).fingerprint).toBe(key.fingerprint);
    expect(refused(await finder(store, () => expiresAt + DAY).find(address, 'pgp')).why).toMatch(/ expired \d{4}-\d{2}-\d{2}\)$/);
  });

  it('a key revoked by a revocation imported after it is never returned again; why says revoked', async () => {
    const store = freshStore();
    const address = `rev@${freshDomain('revoked')}`;
    const key = await home.generateKey({ uid: `Rev <${address}>` });
    await importInto(store, key.publicArmored);
    expect(found(await finder(store).find(address, 'pgp')).fingerprint).toBe(key.fingerprint);

    const [revoked] = await importInto(store, revocationOf(key));
    expect(revoked).toMatchObject({ fingerprint: key.fingerprint, revoked: true });
    const answer = refused(await finder(store).find(address, 'pgp'));
    expect(answer.why).toBe(`no usable OpenPGP key for ${address} (${key.fingerprint.slice(-16)} revoked)`);
    // The old unrevoked export imported again does not bring it back.
    await importInto(store, key.publicArmored);
    expect(refused(await finder(store).find(address, 'pgp')).why).toContain('revoked');
  });

  it('a sign-only key is never returned; why says it has no encryption subkey', async () => {
    const store = freshStore();
    const address = `signer@${freshDomain('signonly')}`;
    const key = await home.generateKey({ uid: `Signer <${address}>`, signOnly: true });
    await importInto(store, key.publicArmored);
    const answer = refused(await finder(store).find(address, 'pgp'));
    expect(answer.why).toBe(`no usable OpenPGP key for ${address} (${key.fingerprint.slice(-16)} no encryption subkey (sign-only key))`);
  });

  it('expired, revoked and sign-only side by side: every reason is named; a usable key added is the one found', async () => {
    const store = freshStore();
    const address = `many@${freshDomain('mixed')}`;
    const uid = `Many <${address}>`;
    const expired = await home.generateKey({ uid, expired: true });
    const revoked = await home.generateKey({ uid, revoked: true });
    const signOnly = await home.generateKey({ uid, signOnly: true });
    for (const key of [expired, revoked, signOnly]) await importInto(store, key.publicArmored);
    const why = refused(await finder(store).find(address, 'pgp')).why;
    expect(why).toContain(`${expired.fingerprint.slice(-16)} expired 2020-01-02`);
    expect(why).toContain(`${revoked.fingerprint.slice(-16)} revoked`);
    expect(why).toContain(`${signOnly.fingerprint.slice(-16)} no encryption subkey (sign-only key)`);

    const good = await home.generateKey({ uid });
    await importInto(store, good.publicArmored);
    expect(found(await finder(store).find(address, 'pgp')).fingerprint).toBe(good.fingerprint);
  });

  it('of several usable keys the newest (by creation) wins, whatever the import order; an unusable newer one does not count', async () => {
    const store = freshStore();
    const address = `versions@${freshDomain('newest')}`;
    const uid = `Versions <${address}>`;
    const oldest = await keyMadeAt(uid, '20220101T000000');
    const middle = await keyMadeAt(uid, '20240101T000000');
    const newestButSignOnly = await home.generateKey({ uid, signOnly: true });
    const t0 = Date.now();
    // The newer key goes in first, so a choice by import time would pick the older one.
    await importInto(store, middle.publicArmored, t0);
    await importInto(store, oldest.publicArmored, t0 + 1000);
    await importInto(store, newestButSignOnly.publicArmored, t0 + 2000);
    const key = found(await finder(store).find(address, 'pgp'));
    expect(key.fingerprint).toBe(middle.fingerprint);
    expect(key.createdAt).toBe(Date.parse('2024-01-01T00:00:00Z'));
  });

  it('S/MIME: a stored certificate is found by its address, case-insensitively, and only for smime', async () => {
    const store = freshStore();
    const address = `Carol@${freshDomain('SMIME')}`;
    const cert = issueSmimeCert({ email: address });
    await importInto(store, cert.certPem);
    const key = found(await finder(store).find(address.toUpperCase(), 'smime'));
    expect(key.kind).toBe('smime');
    expect(key.fingerprint).toBe(new X509Certificate(cert.certPem).fingerprint256.replace(/:/g, ''));
    expect(key.addresses).toEqual([address.toLowerCase()]);
    // A certificate is no OpenPGP key.
    expect(refused(await finder(store).find(address, 'pgp')).why).toBe(`no OpenPGP key for ${address.toLowerCase()}`);
  });

  it('S/MIME: an expired certificate is not returned; why names its end date', async () => {
    const store = freshStore();
    const address = `dave@${freshDomain('smime-old')}`;
    const cert = issueSmimeCert({ email: address, notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
    const [stored] = await importInto(store, cert.certPem);
    const answer = refused(await finder(store).find(address, 'smime'));
    expect(answer).toEqual({ ok: false, why: `no usable S/MIME certificate for ${address} (${stored!.fingerprint.slice(-16)} expired 2021-01-01)`, temporary: false });
  });
});

describe('WKD discovery (pgp only)', () => {
  /**
   * The finder's clock. Set after gpg made the test's key: gpg stamps its signatures
   * in whole seconds, and judged at a moment before them a key binds no address.
   */
  let clock: number;
  const finder = (store: SqliteStore): KeyFinder =>
    createKeyFinder({
      store,
      wkd: { dnsServers: [dnsStub.server], timeoutMs: 3000, ca: server.caPem, port: server.port, cacheMs: CACHE_MS, negativeCacheMs: NEGATIVE_CACHE_MS },
      now: () => clock,
    });

  /** A domain whose openpgpkey host answers on the test server (advanced method). */
  function wkdDomain(label: string): { domain: string; host: string; requests: () => number } {
    const domain = freshDomain(label);
    const host = `openpgpkey.${domain}`;
    dnsStub.set(host, 'A', ['127.0.0.1']);
    return { domain, host, requests: () => server.requests.filter((r) => r.host === host).length };
  }

  const servedAt = (domain: string, local: string) => advancedPath(domain, wkdHash(local));

  it('no key held: the advanced method finds it, it is stored with source "wkd", and a second find asks nobody', async () => {
    const store = freshStore();
    const { domain, host, requests } = wkdDomain('found');
    const address = `erin@${domain}`;
    const key = await home.generateKey({ uid: `Erin <${address}>` });
    server.serve(host, servedAt(domain, 'erin'), await binaryExport(key));
    clock = Date.now();

    const keys = finder(store);
    const first = found(await keys.find(address, 'pgp'));
    expect(first).toMatchObject({ fingerprint: key.fingerprint, source: 'wkd', importedAt: clock });
    expect(server.requests.filter((r) => r.host === host)).toEqual([{ host, path: servedAt(domain, 'erin'), query: 'l=erin' }]);
    expect(await store.getKey(key.fingerprint)).toMatchObject({ source: 'wkd', addresses: [address] });
    expect(await store.getKeyLookup(address)).toEqual({ address, lookedUpAt: clock, found: true, expiresAt: clock + CACHE_MS, error: null });

    clock += MINUTE;
    expect(found(await keys.find(address, 'pgp')).fingerprint).toBe(key.fingerprint);
    // A finder made later (another worker, a restart) reads the store too.
    expect(found(await finder(store).find(address, 'pgp')).fingerprint).toBe(key.fingerprint);
    expect(requests()).toBe(1);
  });

  it('a 404 is remembered for negativeCacheMs: no request within it, a new one after it', async () => {
    clock = Date.now();
    const store = freshStore();
    const { domain, requests } = wkdDomain('absent');
    const address = `frank@${domain}`;
    const keys = finder(store);

    const first = refused(await keys.find(address, 'pgp'));
    expect(first.temporary).toBe(false);
    expect(first.why).toMatch(new RegExp(`^no OpenPGP key for ${address}; WKD: no key published at .*\\(HTTP 404\\)$`));
    expect(requests()).toBe(1);
    expect(await store.getKeyLookup(address)).toEqual({ address, lookedUpAt: clock, found: false, expiresAt: clock + NEGATIVE_CACHE_MS, error: null });

    const start = clock;
    clock = start + NEGATIVE_CACHE_MS - 1;
    expect(refused(await keys.find(address, 'pgp'))).toEqual({ ok: false, why: `no OpenPGP key for ${address}; WKD: no key published`, temporary: false });
    expect(requests()).toBe(1);

    clock = start + NEGATIVE_CACHE_MS + 1;
    expect(refused(await keys.find(address, 'pgp')).why).toMatch(/\(HTTP 404\)$/);
    expect(requests()).toBe(2);
  });

  it('a server failure (503) is temporary, and stays so while it is remembered', async () => {
    clock = Date.now();
    const store = freshStore();
    const { domain, host, requests } = wkdDomain('failing');
    const address = `grace@${domain}`;
    server.serve(host, servedAt(domain, 'grace'), { status: 503, body: 'try later' });
    const keys = finder(store);

    const first = refused(await keys.find(address, 'pgp'));
    expect(first.temporary).toBe(true);
    expect(first.why).toMatch(/WKD lookup failed: .*HTTP 503$/);
    expect((await store.getKeyLookup(address))?.error).toMatch(/HTTP 503$/);

    clock += MINUTE;
    const again = refused(await keys.find(address, 'pgp'));
    expect(again.temporary).toBe(true);
    expect(again.why).toMatch(/; WKD: .*HTTP 503$/);
    expect(requests()).toBe(1);
  });

  it('an unrevoked WKD copy of a key the store holds as revoked does not un-revoke it', async () => {
    const store = freshStore();
    const { domain, host, requests } = wkdDomain('revoked');
    const address = `heidi@${domain}`;
    const key = await home.generateKey({ uid: `Heidi <${address}>` });
    clock = Date.now();
    // gpg never sees the revocation: its export, served by WKD, is the unrevoked key.
    const unrevoked = await binaryExport(key);
    await importInto(store, key.publicArmored, clock);
    await importInto(store, revocationOf(key), clock);
    server.serve(host, servedAt(domain, 'heidi'), unrevoked);

    const answer = refused(await finder(store).find(address, 'pgp'));
    expect(requests()).toBe(1);
    expect(answer.temporary).toBe(false);
    expect(answer.why).toBe(`no usable OpenPGP key for ${address} (${key.fingerprint.slice(-16)} revoked); WKD (advanced) key not usable: revoked`);
    // Still revoked, still the operator's import.
    expect(await store.getKey(key.fingerprint)).toMatchObject({ revoked: true, source: 'import' });
    expect(refused(await finder(store).find(address, 'pgp')).why).toContain('revoked');
  });

  it('smime never asks WKD, even with a key published for the address', async () => {
    const store = freshStore();
    const { domain, host, requests } = wkdDomain('smime');
    const address = `ivan@${domain}`;
    const key = await home.generateKey({ uid: `Ivan <${address}>` });
    server.serve(host, servedAt(domain, 'ivan'), await binaryExport(key));
    clock = Date.now();

    expect(refused(await finder(store).find(address, 'smime'))).toEqual({ ok: false, why: `no S/MIME certificate for ${address}`, temporary: false });
    expect(requests()).toBe(0);
    expect(dnsStub.queries.filter((q) => q.name.endsWith(domain))).toEqual([]);
    expect(await store.getKeyLookup(address)).toBeNull();
    // The same finder does ask for pgp: the server was reachable all along.
    expect(found(await finder(store).find(address, 'pgp')).fingerprint).toBe(key.fingerprint);
    expect(requests()).toBe(1);
  });

  it('concurrent finds for one address (any case) make one request and all get the key', async () => {
    const store = freshStore();
    const { domain, host, requests } = wkdDomain('concurrent');
    const address = `judy@${domain}`;
    const key = await home.generateKey({ uid: `Judy <${address}>` });
    // The delay keeps the first lookup open while the others arrive.
    server.serve(host, servedAt(domain, 'judy'), { body: await binaryExport(key), delayMs: 300 });
    clock = Date.now();

    const keys = finder(store);
    const answers = await Promise.all([address, address.toUpperCase(), ` ${address}`, address, `Judy@${domain}`].map((a) => keys.find(a, 'pgp')));
    expect(answers.map((a) => found(a).fingerprint)).toEqual(Array(5).fill(key.fingerprint));
    expect(requests()).toBe(1);
  });
});
