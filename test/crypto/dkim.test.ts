// DKIM signing checked by an independent verifier: mailauth's dkimVerify, fetching the
// public key over real DNS from the stub. Keys come from openssl where the test needs
// them not to be ours, and from dkimKeygen where its TXT record is under test.
import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeygen, loadDkimKey, signDkim, type DkimKey } from '../../src/crypto/dkim.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';

let dnsStub: DnsStub;
let resolver: dns.promises.Resolver;
let gpgHome: string;

beforeAll(async () => {
  dnsStub = await startDnsStub();
  resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dnsStub.server]);
  gpgHome = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-dkim-gpg-'));
});

afterAll(async () => {
  await dnsStub?.close();
  execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: gpgHome } });
  fs.rmSync(gpgHome, { recursive: true, force: true });
});

const openssl = (args: string[], input?: string | Buffer) => execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });

/** A private key made by openssl, and the p= value of its DNS record. */
function opensslKey(algorithm: 'RSA' | 'ED25519', bits = 2048): { pem: string; p: string } {
  const pem = openssl(['genpkey', '-algorithm', algorithm, ...(algorithm === 'RSA' ? ['-pkeyopt', `rsa_keygen_bits:${bits}`] : [])]).toString();
  const spki = openssl(['pkey', '-pubout', '-outform', 'DER'], pem);
  // RFC 8463 §4.2: an Ed25519 record holds the bare 32-byte key, the end of the SPKI.
  return { pem, p: (algorithm === 'RSA' ? spki : spki.subarray(-32)).toString('base64') };
}

function publish(selector: string, domain: string, txt: string): void {
  dnsStub.set(`${selector}._domainkey.${domain}`, 'TXT', [txt]);
}

async function verify(message: Buffer) {
  const result = await dkimVerify(message, { resolver: (name, rrtype) => resolver.resolve(name, rrtype) as Promise<string[][]> });
  return result.results;
}

/** The tags of the first DKIM-Signature field of `message`. */
function signatureTags(message: Buffer): Record<string, string> {
  const field = /^DKIM-Signature:(.*?)\r\n(?![ \t])/is.exec(message.toString('latin1'))?.[1] ?? '';
  return Object.fromEntries(
    field
      .replace(/\r\n[ \t]+/g, '')
      .split(';')
      .map((tag) => tag.trim().split('=', 2).map((s) => s.trim().replace(/\s+/g, '')))
      .filter((kv): kv is [string, string] => kv.length === 2),
  );
}

function plainMessage(from: string, extra: string[] = []): Buffer {
  return Buffer.from(
    [
      `From: "Clinic" <${from}>`,
      'To: patient@example.invalid',
      'Subject: Your results',
      'Date: Thu, 01 Jan 2026 10:00:00 +0000',
      'Message-ID: <results-1@clinic.invalid>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'X-Mailer: sealrelay-test',
      ...extra,
      '',
      'Hello,',
      '',
      'your results are ready.',
      '',
    ].join('\r\n'),
  );
}

/** A PGP/MIME message (RFC 3156 §4) whose payload gpg really encrypted. */
function encryptedMessage(from: string): Buffer {
  const armored = execFileSync(
    'gpg',
    ['--homedir', gpgHome, '--batch', '--pinentry-mode', 'loopback', '--passphrase', 'test', '--symmetric', '--armor'],
    { input: 'Content-Type: text/plain\r\n\r\nDiagnosis: confidential\r\n', stdio: ['pipe', 'pipe', 'pipe'] },
  )
    .toString()
    .replace(/\r?\n/g, '\r\n');
  return Buffer.from(
    [
      `From: ${from}`,
      'To: patient@example.invalid',
      'Subject: ...',
      'Date: Thu, 01 Jan 2026 10:00:00 +0000',
      'Message-ID: <enc-1@clinic.invalid>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";',
      ' boundary="=_enc_1"',
      '',
      'This is an OpenPGP/MIME encrypted message (RFC 3156).',
      '--=_enc_1',
      'Content-Type: application/pgp-encrypted',
      '',
      'Version: 1',
      '',
      '--=_enc_1',
      'Content-Type: application/octet-stream; name="encrypted.asc"',
      '',
      armored.trimEnd(),
      '--=_enc_1--',
      '',
    ].join('\r\n'),
  );
}

describe('signDkim', () => {
  let rsa: DkimKey;
  beforeAll(() => {
    const key = opensslKey('RSA');
    rsa = loadDkimKey('Clinic.Invalid.', 'mail2026', key.pem);
    publish('mail2026', 'clinic.invalid', `v=DKIM1; k=rsa; p=${key.p}`);
  });

  it('signs with an openssl RSA key: relaxed/relaxed, rsa-sha256, the listed headers only; the verifier passes it', async () => {
    const message = plainMessage('results@clinic.invalid');
    const signed = await signDkim(message, [rsa]);
    expect(signed.signedBy).toBe('clinic.invalid');
    expect(signed.message.subarray(signed.message.length - message.length).equals(message)).toBe(true);
    const tags = signatureTags(signed.message);
    expect(tags).toMatchObject({ v: '1', a: 'rsa-sha256', c: 'relaxed/relaxed', d: 'clinic.invalid', s: 'mail2026' });
    expect(tags.h?.toLowerCase().split(':').sort()).toEqual(['content-type', 'date', 'from', 'message-id', 'mime-version', 'subject', 'to']);
    const [result, ...more] = await verify(signed.message);
    expect(more).toEqual([]);
    expect(result).toMatchObject({ signingDomain: 'clinic.invalid', selector: 'mail2026', status: { result: 'pass', aligned: 'clinic.invalid' } });
  });

  it('signs a PGP/MIME encrypted multipart message; the verifier passes it', async () => {
    const signed = await signDkim(encryptedMessage('results@clinic.invalid'), [rsa]);
    expect(signed.signedBy).toBe('clinic.invalid');
    const [result] = await verify(signed.message);
    expect(result?.status.result).toBe('pass');
  });

  it('a body changed after signing fails the body hash', async () => {
    const signed = await signDkim(encryptedMessage('results@clinic.invalid'), [rsa]);
    const tampered = Buffer.from(signed.message.toString('latin1').replace('\r\nVersion: 1\r\n', '\r\nVersion: 2\r\n'), 'latin1');
    expect(tampered.equals(signed.message)).toBe(false);
    const [result] = await verify(tampered);
    // mailauth 4.13 reports a body hash mismatch as "neutral" with this comment.
    expect(result?.status).toMatchObject({ result: 'neutral', comment: 'body hash did not verify' });
  });

  it('a signed header changed after signing fails the signature', async () => {
    const signed = await signDkim(plainMessage('results@clinic.invalid'), [rsa]);
    const tampered = Buffer.from(signed.message.toString('latin1').replace('Subject: Your results', 'Subject: Pay now'), 'latin1');
    expect(tampered.equals(signed.message)).toBe(false);
    const [result] = await verify(tampered);
    expect(result?.status.result).toBe('fail');
  });

  it('fails when DNS publishes another key under the selector', async () => {
    const other = opensslKey('RSA');
    const key = loadDkimKey('wrongkey.invalid', 'sel', opensslKey('RSA').pem);
    publish('sel', 'wrongkey.invalid', `v=DKIM1; k=rsa; p=${other.p}`);
    const signed = await signDkim(plainMessage('a@wrongkey.invalid'), [key]);
    const [result] = await verify(signed.message);
    expect(result?.status.result).toBe('fail');
  });

  it('uses the nearest parent domain key for a subdomain sender', async () => {
    const sub = opensslKey('ED25519');
    const subKey = loadDkimKey('lab.clinic.invalid', 'lab', sub.pem);
    publish('lab', 'lab.clinic.invalid', `v=DKIM1; k=ed25519; p=${sub.p}`);
    const fromParent = await signDkim(plainMessage('x@reports.clinic.invalid'), [rsa, subKey]);
    expect(fromParent.signedBy).toBe('clinic.invalid');
    expect((await verify(fromParent.message))[0]?.status.result).toBe('pass');
    const fromSub = await signDkim(plainMessage('x@deep.lab.clinic.invalid'), [rsa, subKey]);
    expect(fromSub.signedBy).toBe('lab.clinic.invalid');
    expect(signatureTags(fromSub.message)).toMatchObject({ a: 'ed25519-sha256', d: 'lab.clinic.invalid' });
    expect((await verify(fromSub.message))[0]?.status.result).toBe('pass');
  });

  it('signs with every key of the domain (RSA and Ed25519 side by side, RFC 8463)', async () => {
    const ed = opensslKey('ED25519');
    const edKey = loadDkimKey('clinic.invalid', 'ed2026', ed.pem);
    publish('ed2026', 'clinic.invalid', `v=DKIM1; k=ed25519; p=${ed.p}`);
    const signed = await signDkim(plainMessage('results@clinic.invalid'), [rsa, edKey]);
    const results = await verify(signed.message);
    // mailauth 4.13 leaves DKIMResult.algorithm unset; the a= tag is in status.header.
    expect(results.map((r) => [r.selector, r.status.header?.a, r.status.result]).sort()).toEqual([
      ['ed2026', 'ed25519-sha256', 'pass'],
      ['mail2026', 'rsa-sha256', 'pass'],
    ]);
  });

  it('signs List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 §4)', async () => {
    const signed = await signDkim(plainMessage('news@clinic.invalid', ['List-Unsubscribe: <https://clinic.invalid/u/1>', 'List-Unsubscribe-Post: List-Unsubscribe=One-Click']), [rsa]);
    expect(signatureTags(signed.message).h?.toLowerCase().split(':')).toEqual(expect.arrayContaining(['list-unsubscribe', 'list-unsubscribe-post']));
    expect((await verify(signed.message))[0]?.status.result).toBe('pass');
  });

  const unsigned: Array<[string, Buffer, RegExp]> = [
    ['no key for the From domain', plainMessage('someone@elsewhere.invalid'), /no DKIM key for elsewhere\.invalid/],
    ['a lookalike domain (not a subdomain)', plainMessage('someone@notclinic.invalid'), /no DKIM key for notclinic\.invalid/],
    ['two From fields', Buffer.from('From: a@clinic.invalid\r\nFrom: b@clinic.invalid\r\nSubject: x\r\n\r\nbody\r\n'), /2 From header fields/],
    ['no From field', Buffer.from('Subject: x\r\n\r\nbody\r\n'), /no From header field/],
    ['From addresses in two domains', Buffer.from('From: a@clinic.invalid, b@elsewhere.invalid\r\n\r\nbody\r\n'), /does not name one domain/],
  ];
  it.each(unsigned)('leaves the message unchanged: %s', async (_name, message, reason) => {
    const result = await signDkim(message, [rsa]);
    expect(result.signedBy).toBeNull();
    expect(result.message.equals(message)).toBe(true);
    expect(result.reason).toMatch(reason);
  });
});

describe('dkimKeygen', () => {
  it.each(['rsa', 'ed25519'] as const)('%s: the TXT record it prints verifies its signatures', async (type) => {
    const made = dkimKeygen('Keygen.Invalid', { selector: `gen-${type}`, type });
    expect(made.dnsName).toBe(`gen-${type}._domainkey.keygen.invalid`);
    expect(made.dnsTxt).toMatch(new RegExp(`^v=DKIM1; k=${type}; p=[A-Za-z0-9+/]+=*$`));
    // openssl reads the private key, and derives the same public key as the record.
    const spki = openssl(['pkey', '-pubout', '-outform', 'DER'], made.privateKeyPem);
    expect(made.dnsTxt.split('p=')[1]).toBe((type === 'rsa' ? spki : spki.subarray(-32)).toString('base64'));
    publish(`gen-${type}`, 'keygen.invalid', made.dnsTxt);
    const signed = await signDkim(plainMessage('a@keygen.invalid'), [loadDkimKey('keygen.invalid', `gen-${type}`, made.privateKeyPem)]);
    expect((await verify(signed.message))[0]?.status.result).toBe('pass');
  });

  it('makes RSA keys of the size asked, 2048 bits by default', () => {
    const bitsOf = (pem: string) => Number(/(\d+) bit/.exec(openssl(['pkey', '-noout', '-text'], pem).toString())?.[1]);
    expect(bitsOf(dkimKeygen('a.invalid', { selector: 's', type: 'rsa' }).privateKeyPem)).toBe(2048);
    expect(bitsOf(dkimKeygen('a.invalid', { selector: 's', type: 'rsa', bits: 1024 }).privateKeyPem)).toBe(1024);
  });

  it.each([
    ['bits under 1024', 'a.invalid', { selector: 's', type: 'rsa', bits: 512 }, /between 1024 and 8192/],
    ['bits for ed25519', 'a.invalid', { selector: 's', type: 'ed25519', bits: 2048 }, /fixed size/],
    ['a bad selector', 'a.invalid', { selector: 'bad selector', type: 'rsa' }, /selector "bad selector" is not a DNS name/],
    ['a bad domain', 'not a domain', { selector: 's', type: 'rsa' }, /domain "not a domain" is not a domain name/],
  ] as const)('refuses %s', (_name, domain, opts, error) => {
    expect(() => dkimKeygen(domain, opts)).toThrow(error);
  });
});

describe('loadDkimKey', () => {
  it('normalises the domain and keeps the selector and PEM', () => {
    const { pem } = opensslKey('ED25519');
    expect(loadDkimKey('Bücher.Invalid.', 'a.b_c', pem)).toEqual({ domain: 'xn--bcher-kva.invalid', selector: 'a.b_c', privateKeyPem: pem });
  });

  const bad: Array<[string, () => string, RegExp]> = [
    ['text that is not PEM', () => 'hello', /not an unencrypted PEM private key/],
    ['an encrypted PEM', () => openssl(['genpkey', '-algorithm', 'ED25519', '-aes256', '-pass', 'pass:secret']).toString(), /not an unencrypted PEM private key/],
    ['an EC (P-256) key', () => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']).toString(), /ec keys cannot sign DKIM/],
    ['a 512-bit RSA key', () => opensslKey('RSA', 512).pem, /512 bits is under 1024/],
    ['a public key', () => openssl(['pkey', '-pubout'], opensslKey('ED25519').pem).toString(), /not an unencrypted PEM private key/],
  ];
  it.each(bad)('refuses %s with a clear error', (_name, pem, error) => {
    expect(() => loadDkimKey('clinic.invalid', 's', pem())).toThrow(error);
  });

  it('refuses a bad selector or domain', () => {
    const { pem } = opensslKey('ED25519');
    expect(() => loadDkimKey('clinic.invalid', '-bad', pem)).toThrow(/selector/);
    expect(() => loadDkimKey('clinic', 's', pem)).toThrow(/not a domain name/);
  });
});
