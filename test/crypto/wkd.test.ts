// WKD key discovery against the loopback world: keys made by a real gpg, served by a
// test-CA HTTPS server, hosts resolved through the DNS stub. What the lookup returns
// is read back by gpg, not by the library that produced it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_MAX_BYTES, lookupWkd, wkdHash, type WkdOptions } from '../../src/crypto/wkd.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { advancedPath, directPath, startWkdServer, type WkdResponse, type WkdServer } from '../helpers/wkd-server.ts';

const WKS_CLIENT = '/usr/lib/gnupg/gpg-wks-client';

let dnsStub: DnsStub;
let server: WkdServer;
/** gpg's own key home, and the homes gpgRead imports answers into. */
let home: string;
const readers: string[] = [];
let serial = 0;

beforeAll(async () => {
  dnsStub = await startDnsStub();
  server = await startWkdServer();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-wkd-gpg-'));
});

afterAll(async () => {
  await Promise.all([dnsStub?.close(), server?.close()]);
  for (const dir of [home, ...readers]) {
    execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: dir } });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function gpg(dir: string, args: string[]): Buffer {
  return execFileSync('gpg', ['--homedir', dir, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A fresh gpg key (ed25519 + cv25519) with these user IDs; its binary export. */
function makeKey(...userIds: string[]): Uint8Array {
  gpg(home, ['--quick-gen-key', userIds[0]!, 'future-default', 'default', 'never']);
  const fpr = fingerprintOf(home, userIds[0]!);
  for (const uid of userIds.slice(1)) gpg(home, ['--quick-add-uid', fpr, uid]);
  return new Uint8Array(gpg(home, ['--export', fpr]));
}

function fingerprintOf(dir: string, query: string): string {
  const listing = gpg(dir, ['--with-colons', '--list-keys', query]).toString();
  const fpr = /^fpr:(?:[^:]*:){8}([0-9A-F]{40}):/m.exec(listing)?.[1];
  if (!fpr) throw new Error(`no key for ${query}`);
  return fpr;
}

/** What gpg makes of `keyBytes` in a home of its own: fingerprints and user IDs. */
function gpgRead(keyBytes: Uint8Array): { fingerprints: string[]; userIds: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-wkd-read-'));
  readers.push(dir);
  const file = path.join(dir, 'answer.gpg');
  fs.writeFileSync(file, keyBytes);
  gpg(dir, ['--import', file]);
  const listing = gpg(dir, ['--with-colons', '--list-keys']).toString().split('\n');
  const field = (type: string, index: number) => listing.filter((l) => l.startsWith(`${type}:`)).map((l) => l.split(':')[index]!);
  // Primary fingerprints only: an fpr line right after a pub line.
  const fingerprints = listing.flatMap((l, i) => (l.startsWith('fpr:') && listing[i - 1]?.startsWith('pub:') ? [l.split(':')[9]!] : []));
  return { fingerprints, userIds: field('uid', 9) };
}

/** A domain of its own for each test. */
const freshDomain = (label: string) => `${label}-${++serial}.wkd.invalid`;

function opts(extra: Partial<WkdOptions> = {}): WkdOptions {
  return { dnsServers: [dnsStub.server], timeoutMs: 2000, ca: server.caPem, port: server.port, ...extra };
}

/** openpgpkey.<domain> (advanced) or <domain> (direct) answers on loopback. */
function hostAt(host: string): void {
  dnsStub.set(host, 'A', ['127.0.0.1']);
}

describe('wkdHash', () => {
  it("matches the draft's example", () => {
    expect(wkdHash('Joe.Doe')).toBe('iy9q119eutrkn8s1mk4r39qejnbu3n5q');
  });

  it('agrees with gpg-wks-client, which lower-cases only A-Z', () => {
    for (const local of ['Joe.Doe', 'alice', 'ÄRZTE.Team', 'x+tag_1']) {
      const theirs = execFileSync(WKS_CLIENT, ['--print-wkd-hash', `${local}@example.org`]).toString().split(' ')[0];
      expect(wkdHash(local), local).toBe(theirs);
    }
  });
});

describe('lookupWkd', () => {
  it('advanced method: finds the key, keeps only the user ID for the address, sends l=', async () => {
    const domain = freshDomain('adv');
    const keyBytes = makeKey(`Joe Doe <Joe.Doe@${domain}>`, 'Joe at home <joe@home.invalid>');
    const fpr = fingerprintOf(home, `Joe.Doe@${domain}`);
    hostAt(`openpgpkey.${domain}`);
    server.serve(`openpgpkey.${domain}`, advancedPath(domain, wkdHash('Joe.Doe')), keyBytes);

    const result = await lookupWkd(`Joe.Doe@${domain.toUpperCase()}`, opts());
    expect(result).toMatchObject({
      kind: 'found',
      method: 'advanced',
      url: `https://openpgpkey.${domain}:${server.port}${advancedPath(domain, wkdHash('Joe.Doe'))}?l=Joe.Doe`,
    });
    if (result.kind !== 'found') return;
    expect(gpgRead(result.keyBytes)).toEqual({ fingerprints: [fpr], userIds: [`Joe Doe <Joe.Doe@${domain}>`] });
    expect(server.requests.filter((r) => r.host.endsWith(domain))).toEqual([
      { host: `openpgpkey.${domain}`, path: advancedPath(domain, wkdHash('Joe.Doe')), query: 'l=Joe.Doe' },
    ]);
  });

  it('direct method when openpgpkey.<domain> has no address', async () => {
    const domain = freshDomain('direct');
    const keyBytes = makeKey(`ann@${domain}`);
    hostAt(domain);
    server.serve(domain, directPath(wkdHash('ann')), keyBytes);

    const result = await lookupWkd(`ann@${domain}`, opts());
    expect(result).toMatchObject({ kind: 'found', method: 'direct', url: `https://${domain}:${server.port}${directPath(wkdHash('ann'))}?l=ann` });
    expect(dnsStub.queries.some((q) => q.name.toLowerCase() === `openpgpkey.${domain}` && q.type === 'A')).toBe(true);
    if (result.kind === 'found') expect(gpgRead(result.keyBytes).userIds).toEqual([`ann@${domain}`]);
  });

  it('404 on the advanced host: none, without trying the direct method', async () => {
    const domain = freshDomain('absent');
    hostAt(`openpgpkey.${domain}`);
    hostAt(domain);
    server.serve(domain, directPath(wkdHash('bob')), makeKey(`bob@${domain}`));
    const result = await lookupWkd(`bob@${domain}`, opts());
    expect(result).toMatchObject({ kind: 'none', detail: expect.stringMatching(/HTTP 404/) });
    expect(server.requests.filter((r) => r.host === domain)).toEqual([]);
  });

  it('neither host has an address: none', async () => {
    const domain = freshDomain('nohost');
    expect(await lookupWkd(`bob@${domain}`, opts())).toMatchObject({ kind: 'none', detail: expect.stringMatching(/has an address/) });
  });

  it('refuses a key whose user IDs do not carry the address', async () => {
    const domain = freshDomain('wrong');
    hostAt(`openpgpkey.${domain}`);
    server.serve(`openpgpkey.${domain}`, advancedPath(domain, wkdHash('carol')), makeKey(`mallory@${domain}`));
    const result = await lookupWkd(`carol@${domain}`, opts());
    expect(result).toMatchObject({ kind: 'error', temporary: false, reason: expect.stringMatching(/no key in the answer has a valid user ID for carol@/) });
  });

  it('refuses a user ID for the address that another key signed (grafted onto this key)', async () => {
    const domain = freshDomain('graft');
    const victim = await openpgp.readKey({ binaryKey: makeKey(`dave@${domain}`) });
    const attacker = await openpgp.readKey({ binaryKey: makeKey(`eve@${domain}`) });
    // Eve's primary key with Dave's user ID and Dave's self-signature on it.
    const packets = new openpgp.PacketList<openpgp.AnyPacket>();
    packets.push(attacker.keyPacket, ...victim.users[0]!.toPacketList(), ...attacker.subkeys.flatMap((s) => [s.keyPacket, ...s.bindingSignatures]));
    hostAt(`openpgpkey.${domain}`);
    server.serve(`openpgpkey.${domain}`, advancedPath(domain, wkdHash('dave')), packets.write());
    expect(await lookupWkd(`dave@${domain}`, opts())).toMatchObject({ kind: 'error', temporary: false, reason: expect.stringMatching(/valid user ID for dave@/) });
  });

  it('passes on a revoked key, so that the key store learns of the revocation', async () => {
    const domain = freshDomain('revoked');
    makeKey(`ida@${domain}`);
    const fpr = fingerprintOf(home, `ida@${domain}`);
    // gpg wrote a revocation certificate at key generation; its armor line is masked with ":".
    const certificate = fs.readFileSync(path.join(home, 'openpgp-revocs.d', `${fpr}.rev`), 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN');
    const certFile = path.join(home, `${fpr}.rev.asc`);
    fs.writeFileSync(certFile, certificate);
    gpg(home, ['--import', certFile]);
    hostAt(`openpgpkey.${domain}`);
    server.serve(`openpgpkey.${domain}`, advancedPath(domain, wkdHash('ida')), new Uint8Array(gpg(home, ['--export', fpr])));
    const result = await lookupWkd(`ida@${domain}`, opts());
    expect(result.kind).toBe('found');
    if (result.kind !== 'found') return;
    const key = await openpgp.readKey({ binaryKey: result.keyBytes });
    expect(await key.isRevoked()).toBe(true);
  });

  it('refuses a key whose user ID for the address is revoked', async () => {
    const domain = freshDomain('uidrev');
    // The key and its user IDs dated a minute back: gpg dates a revocation after the signature
    // it revokes, a second into the future when both fall in the same second, and openpgp
    // ignores a soft revocation from the future. Made now, it is simply later.
    const past = `${Math.floor(Date.now() / 1000) - 60}!`;
    gpg(home, ['--faked-system-time', past, '--quick-gen-key', 'jack@home.invalid', 'future-default', 'default', 'never']);
    const fpr = fingerprintOf(home, 'jack@home.invalid');
    gpg(home, ['--faked-system-time', past, '--quick-add-uid', fpr, `jack@${domain}`]);
    gpg(home, ['--quick-revoke-uid', fpr, `jack@${domain}`]);
    hostAt(`openpgpkey.${domain}`);
    server.serve(`openpgpkey.${domain}`, advancedPath(domain, wkdHash('jack')), new Uint8Array(gpg(home, ['--export', fpr])));
    expect(await lookupWkd(`jack@${domain}`, opts())).toMatchObject({ kind: 'error', reason: expect.stringMatching(/valid user ID for jack@/) });
  });

  // Every way the fetch must fail, with whether it may pass by itself.
  const failures: Array<{ name: string; response?: WkdResponse; cert?: 'wrong-name' | 'self-signed'; opts?: Partial<WkdOptions>; reason: RegExp; temporary: boolean }> = [
    { name: 'a body over 256 KB (Content-Length)', response: { body: Buffer.alloc(KEY_MAX_BYTES + 1) }, reason: /exceeds 262144/, temporary: false },
    { name: 'a body over 256 KB (chunked)', response: { body: Buffer.alloc(KEY_MAX_BYTES + 1), contentLength: false }, reason: /exceeds 262144/, temporary: false },
    { name: 'a certificate for another name', cert: 'wrong-name', reason: /altnames|does not match/i, temporary: false },
    { name: 'a self-signed certificate', cert: 'self-signed', reason: /self.signed/i, temporary: false },
    { name: 'a CA the lookup does not trust', opts: { ca: undefined }, reason: /certificate/i, temporary: false },
    { name: 'a timeout', response: { delayMs: 2000 }, opts: { timeoutMs: 300 }, reason: /within 300 ms/, temporary: true },
    { name: 'HTTP 503', response: { status: 503 }, reason: /HTTP 503/, temporary: true },
    { name: 'HTTP 403', response: { status: 403 }, reason: /HTTP 403/, temporary: false },
    { name: 'a redirect (never followed)', response: { status: 302 }, reason: /redirect 302 .* not followed/, temporary: false },
    { name: 'a body that is not OpenPGP', response: { body: '<html>hello</html>' }, reason: /not binary OpenPGP keys/, temporary: false },
  ];

  for (const row of failures) {
    it(`fetch failure: ${row.name} → error`, async () => {
      const domain = freshDomain('fail');
      const host = `openpgpkey.${domain}`;
      hostAt(host);
      // The right key, unless the row serves something else: only the failure can refuse it.
      server.serve(host, advancedPath(domain, wkdHash('frank')), { body: makeKey(`frank@${domain}`), ...row.response });
      if (row.cert) server.certificate(host, row.cert);
      const result = await lookupWkd(`frank@${domain}`, opts(row.opts));
      expect(result).toMatchObject({ kind: 'error', temporary: row.temporary });
      expect(result.kind === 'error' && result.reason).toMatch(row.reason);
    });
  }

  it('a DNS failure for openpgpkey.<domain> is temporary and does not fall back', async () => {
    const domain = freshDomain('servfail');
    dnsStub.set(`openpgpkey.${domain}`, 'failure', 'SERVFAIL');
    hostAt(domain);
    const result = await lookupWkd(`gina@${domain}`, opts());
    expect(result).toMatchObject({ kind: 'error', temporary: true, reason: expect.stringMatching(/address lookup of openpgpkey\./) });
    expect(server.requests.filter((r) => r.host === domain)).toEqual([]);
  });

  it('a connection refused is temporary', async () => {
    const domain = freshDomain('refused');
    hostAt(`openpgpkey.${domain}`);
    expect(await lookupWkd(`hal@${domain}`, opts({ port: 1 }))).toMatchObject({ kind: 'error', temporary: true });
  });

  it.each(['no-at-sign', '@example.org', 'joe@', 'joe@bad domain'])('rejects %j as not a mail address', async (address) => {
    expect(await lookupWkd(address, opts())).toMatchObject({ kind: 'error', temporary: false, reason: expect.stringMatching(/not a mail address/) });
  });
});
