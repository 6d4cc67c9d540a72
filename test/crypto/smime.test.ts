// S/MIME encryption and signing, judged by an independent implementation: every
// output goes through `openssl cms` (OpenSSL 3), which must decrypt it back to the
// original MIME entity byte for byte and verify its signature against the CA.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptSmime, signSmime, SmimeCertError, SmimeMessageError, type SmimeCertReason } from '../../src/crypto/smime.ts';
import { createSmimeCa, type SmimeCa, type SmimeCert } from '../helpers/smime-certs.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Base64 body lines as a MIME composer writes them: 76 characters, CRLF. */
const base64Lines = (bytes: Buffer) => bytes.toString('base64').replace(/.{1,76}/g, '$&\r\n');

const small = crypto.randomBytes(3000);
const large = crypto.randomBytes(256 * 1024);
const ROUTING = 'From: Lab <lab@clinic.test>\r\nTo: Alice <alice@example.test>\r\nSubject: =?UTF-8?Q?Befund_f=C3=BCr_Sie?=\r\nDate: Mon, 24 Nov 2025 10:00:00 +0100\r\nMessage-ID: <smime-test@clinic.test>\r\n';
const CONTENT_HEADERS = 'Content-Type: multipart/mixed;\r\n boundary="outer"\r\n';
const BODY = Buffer.from(
  '--outer\r\n' +
    'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n' +
    '--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
    'Grüße, Ihr Befund liegt bei.\r\n' +
    '--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
    '<p>Grüße, Ihr <b>Befund</b> liegt bei.</p>\r\n' +
    '--alt--\r\n' +
    '--outer\r\nContent-Type: application/octet-stream; name="small.bin"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="small.bin"\r\n\r\n' +
    base64Lines(small) +
    '--outer\r\nContent-Type: application/pdf; name="large.pdf"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="large.pdf"\r\n\r\n' +
    base64Lines(large) +
    '--outer--\r\n',
  'utf8',
);
const MESSAGE = Buffer.concat([Buffer.from(`${ROUTING}MIME-Version: 1.0\r\n${CONTENT_HEADERS}\r\n`, 'latin1'), BODY]);
/** What the recipient must get back: the content header fields, a blank line, the body. */
const ENTITY = Buffer.concat([Buffer.from(`${CONTENT_HEADERS}\r\n`, 'latin1'), BODY]);

let dir: string;
let ca: SmimeCa;
let alice: SmimeCert;
let bob: SmimeCert;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-smime-'));
  ca = createSmimeCa();
  alice = ca.issue({ email: 'alice@example.test' });
  bob = ca.issue({ email: 'bob@example.test' });
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let fileCount = 0;
function file(content: string | Buffer): string {
  const name = path.join(dir, `f${++fileCount}`);
  fs.writeFileSync(name, content);
  return name;
}

function openssl(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const result = spawnSync('openssl', args, { maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

function decrypt(message: Buffer, who: SmimeCert) {
  return openssl(['cms', '-decrypt', '-in', file(message), '-recip', file(who.certPem), '-inkey', file(who.keyPem)]);
}

function verify(message: Buffer, caPem: string) {
  return openssl(['cms', '-verify', '-in', file(message), '-CAfile', file(caPem)]);
}

function headerBlock(message: Buffer): string {
  const text = message.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

/** The header fields of a block, unfolded, as [name, value]. */
function fields(block: string): [string, string][] {
  return block
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .filter(Boolean)
    .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]);
}

function attachment(entity: Buffer, filename: string): Buffer {
  const match = new RegExp(`filename="${filename}"\\r\\n\\r\\n([A-Za-z0-9+/=\\r\\n]+?)\\r\\n--outer`).exec(entity.toString('latin1'));
  if (!match) throw new Error(`no attachment ${filename}`);
  return Buffer.from(match[1]!, 'base64');
}

function refusal(action: () => unknown): SmimeCertError {
  try {
    action();
  } catch (e) {
    if (e instanceof SmimeCertError) return e;
    throw e;
  }
  throw new Error('expected an SmimeCertError');
}

/** The fields of MESSAGE that stay outside the protection, in order, MIME-Version once. */
const OUTER_FIELDS = [
  ['From', 'Lab <lab@clinic.test>'],
  ['To', 'Alice <alice@example.test>'],
  ['Subject', '=?UTF-8?Q?Befund_f=C3=BCr_Sie?='],
  ['Date', 'Mon, 24 Nov 2025 10:00:00 +0100'],
  ['Message-ID', '<smime-test@clinic.test>'],
  ['MIME-Version', '1.0'],
];

describe('encryptSmime', () => {
  it('openssl decrypts the original MIME entity byte for byte; both attachments come back identical', () => {
    const result = decrypt(encryptSmime(MESSAGE, [alice.certPem]), alice);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout.equals(ENTITY)).toBe(true);
    expect(attachment(result.stdout, 'small.bin').equals(small)).toBe(true);
    expect(attachment(result.stdout, 'large.pdf').equals(large)).toBe(true);
    expect(result.stdout.toString('utf8')).toContain('<p>Grüße, Ihr <b>Befund</b> liegt bei.</p>');
  });

  it('keeps the other header fields outside, MIME-Version once, RFC 8551 content fields, 76-character base64 lines', () => {
    const out = encryptSmime(MESSAGE, [alice.certPem]);
    const head = headerBlock(out);
    expect(fields(head)).toEqual([
      ...OUTER_FIELDS,
      ['Content-Type', 'application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m'],
      ['Content-Transfer-Encoding', 'base64'],
      ['Content-Disposition', 'attachment; filename=smime.p7m'],
    ]);
    expect(head.split('\r\n').every((line) => line.length <= 78)).toBe(true);
    const lines = out.toString('latin1').slice(head.length + 2).split('\r\n');
    expect(lines.pop()).toBe('');
    expect(lines.slice(0, -1).every((line) => /^[A-Za-z0-9+/]{76}$/.test(line))).toBe(true);
    expect(lines.at(-1)).toMatch(/^[A-Za-z0-9+/]{1,75}={0,2}$|^[A-Za-z0-9+/]{72}[A-Za-z0-9+/=]{4}$/);
    expect(out.toString('latin1')).not.toContain('Befund liegt bei');
  });

  it('two recipients: each decrypts with its own key, someone else cannot', () => {
    const out = encryptSmime(MESSAGE, [alice.certPem, bob.certPem]);
    expect(decrypt(out, alice).stdout.equals(ENTITY)).toBe(true);
    expect(decrypt(out, bob).stdout.equals(ENTITY)).toBe(true);
    const carol = decrypt(out, ca.issue({ email: 'carol@example.test' }));
    expect(carol.status).not.toBe(0);
    expect(carol.stdout.length).toBe(0);
  });

  it('content encryption is AES-256-CBC, key transport RSA (rsaEncryption), one RecipientInfo per certificate', () => {
    const printed = openssl(['cms', '-cmsout', '-print', '-in', file(encryptSmime(MESSAGE, [alice.certPem, bob.certPem]))]).stdout.toString();
    expect(printed).toMatch(/contentEncryptionAlgorithm:\s*\n\s*algorithm: aes-256-cbc \(2\.16\.840\.1\.101\.3\.4\.1\.42\)/);
    expect(printed.match(/d\.ktri:/g)).toHaveLength(2);
    expect(printed.match(/keyEncryptionAlgorithm:\s*\n\s*algorithm: rsaEncryption/g)).toHaveLength(2);
  });

  it('a message without Content-Type gets an explicit text/plain; charset=us-ascii, with or without a body', () => {
    const plain = Buffer.from('From: <lab@clinic.test>\r\nTo: <alice@example.test>\r\nSubject: hi\r\n\r\nHello.\r\n', 'latin1');
    expect(decrypt(encryptSmime(plain, [alice.certPem]), alice).stdout.toString('latin1')).toBe('Content-Type: text/plain; charset=us-ascii\r\n\r\nHello.\r\n');
    const headersOnly = Buffer.from('From: <lab@clinic.test>\r\nSubject: empty\r\n', 'latin1');
    expect(decrypt(encryptSmime(headersOnly, [alice.certPem]), alice).stdout.toString('latin1')).toBe('Content-Type: text/plain; charset=us-ascii\r\n\r\n');
  });

  it('every byte value survives: an 8-bit body with all of 0x01-0xFF (CR and LF only as CRLF)', () => {
    const line = Buffer.from([...Array(255).keys()].map((i) => i + 1).filter((b) => b !== 0x0a && b !== 0x0d));
    const body = Buffer.concat([line, Buffer.from('\r\n'), line, Buffer.from('\r\n')]);
    const head = 'From: <lab@clinic.test>\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n';
    const entity = Buffer.concat([Buffer.from(head.slice(head.indexOf('Content-Type')), 'latin1'), body]);
    const message = Buffer.concat([Buffer.from(head, 'latin1'), body]);
    expect(decrypt(encryptSmime(message, [alice.certPem]), alice).stdout.equals(entity)).toBe(true);
    const verified = verify(signSmime(message, alice), ca.certPem);
    expect(verified.status).toBe(0);
    expect(verified.stdout.equals(entity)).toBe(true);
  });

  it('names the recipient with the issuer exactly as its certificate encodes it, non-ASCII included', () => {
    // forge.pkcs7 would UTF-8-encode this issuer name a second time; openssl then finds no recipient.
    const prüf = createSmimeCa({ commonName: 'Prüfstelle Gesundheit CA' }).issue({ email: 'dora@example.test' });
    const result = decrypt(encryptSmime(MESSAGE, [prüf.certPem]), prüf);
    expect(result.stderr).toBe('');
    expect(result.stdout.equals(ENTITY)).toBe(true);
  });

  it('accepts a certificate without keyUsage and extKeyUsage (RFC 5280: no restriction)', () => {
    const open = ca.issue({ email: 'open@example.test', keyUsage: null, extKeyUsage: null });
    expect(decrypt(encryptSmime(MESSAGE, [open.certPem]), open).stdout.equals(ENTITY)).toBe(true);
  });

  const refused: [string, () => string, SmimeCertReason, RegExp][] = [
    ['expired', () => ca.issue({ email: 'old@example.test', notBefore: new Date(Date.now() - 60 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) }).certPem, 'expired', /expired at/],
    ['not yet valid', () => ca.issue({ email: 'new@example.test', notBefore: new Date(Date.now() + DAY_MS) }).certPem, 'not-yet-valid', /not valid before/],
    ['keyUsage without keyEncipherment', () => ca.issue({ email: 'sig@example.test', keyUsage: { digitalSignature: true } }).certPem, 'no-key-encipherment', /keyEncipherment/],
    ['extKeyUsage without emailProtection', () => ca.issue({ email: 'tls@example.test', extKeyUsage: ['serverAuth'] }).certPem, 'no-email-protection', /emailProtection/],
    ['EC key', () => ca.issue({ email: 'ec@example.test', keyType: 'ec' }).certPem, 'unsupported-key', /EC key; node-forge can use only RSA/],
    ['1024-bit RSA key', () => ca.issue({ email: 'weak@example.test', rsaBits: 1024 }).certPem, 'weak-key', /1024 bits/],
    ['garbage', () => 'not a certificate', 'malformed', /expected one PEM CERTIFICATE block, found 0/],
    ['a private key', () => alice.keyPem, 'malformed', /found 0/],
    ['two certificates in one PEM', () => alice.certPem + bob.certPem, 'malformed', /found 2/],
    ['a CERTIFICATE block that is not DER', () => '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'malformed', /not a readable X\.509 certificate/],
  ];
  it.each(refused)('refuses a recipient certificate: %s', (_name, make, reason, message) => {
    const error = refusal(() => encryptSmime(MESSAGE, [alice.certPem, make()]));
    expect(error.reason).toBe(reason);
    expect(error.role).toBe('recipient');
    expect(error.message).toMatch(/^recipient certificate 2\b/);
    expect(error.message).toMatch(message);
  });

  it('refuses an empty recipient list and a message not in canonical CRLF form', () => {
    expect(() => encryptSmime(MESSAGE, [])).toThrow(RangeError);
    expect(() => encryptSmime(Buffer.from('Subject: x\r\n\r\nline\nline\r\n'), [alice.certPem])).toThrow(SmimeMessageError);
    expect(() => encryptSmime(Buffer.from('Subject: x\r\n\r\nline\rline\r\n'), [alice.certPem])).toThrow(/bare CR/);
    expect(() => encryptSmime(Buffer.from(' folded: x\r\n\r\nbody\r\n'), [alice.certPem])).toThrow(/continuation line/);
  });
});

describe('signSmime', () => {
  it('is multipart/signed with SHA-256, the other header fields outside and MIME-Version once', () => {
    const head = headerBlock(signSmime(MESSAGE, alice));
    const got = fields(head);
    expect(got.slice(0, 6)).toEqual(OUTER_FIELDS);
    expect(got).toHaveLength(7);
    expect(got[6]![1]).toMatch(/^multipart\/signed; protocol="application\/pkcs7-signature"; micalg=sha-256; boundary="[^"]+"$/);
  });

  it('openssl verifies it against the issuing CA and returns the entity byte for byte', () => {
    const result = verify(signSmime(MESSAGE, alice), ca.certPem);
    expect(result.stderr).toContain('Verification successful');
    expect(result.status).toBe(0);
    expect(result.stdout.equals(ENTITY)).toBe(true);
  });

  it('does not verify against a different CA', () => {
    const result = verify(signSmime(MESSAGE, alice), createSmimeCa({ commonName: 'Other CA' }).certPem);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/unable to get local issuer certificate/);
  });

  it('signs the exact bytes of the first part: they verify in binary mode, and a changed byte fails', () => {
    const signed = signSmime(MESSAGE, alice);
    const text = signed.toString('latin1');
    const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
    const partStart = text.indexOf(`--${boundary}\r\n`) + boundary.length + 4;
    const partEnd = text.indexOf(`\r\n--${boundary}\r\n`, partStart);
    const part = signed.subarray(partStart, partEnd);
    expect(part.equals(ENTITY)).toBe(true);
    const signature = Buffer.from(text.slice(text.indexOf('\r\n\r\n', partEnd) + 4, text.lastIndexOf(`--${boundary}--`)), 'base64');
    const binary = openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', file(signature), '-content', file(part), '-CAfile', file(ca.certPem), '-out', file('')]);
    expect(binary.stderr).toContain('Verification successful');

    const tampered = Buffer.from(signed);
    tampered[partStart + ENTITY.indexOf('Befund')] = 'b'.charCodeAt(0);
    const result = verify(tampered, ca.certPem);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/digest failure|Verification failure/);
  });

  it('signs contentType, signingTime (now) and messageDigest = SHA-256 of the entity', () => {
    const der = openssl(['cms', '-cmsout', '-in', file(signSmime(MESSAGE, alice)), '-outform', 'DER']).stdout;
    const parsed = openssl(['asn1parse', '-inform', 'DER', '-in', file(der)]).stdout.toString();
    expect(parsed).toMatch(/OBJECT\s+:contentType/);
    const digest = /:messageDigest\n.*\n.*\[HEX DUMP\]:([0-9A-F]+)/.exec(parsed)?.[1];
    expect(digest).toBe(crypto.createHash('sha256').update(ENTITY).digest('hex').toUpperCase());
    const time = /:signingTime\n.*\n.*UTCTIME\s+:(\d{12})Z/.exec(parsed)?.[1];
    expect(time).toBeDefined();
    const [yy, mo, dd, hh, mi, ss] = time!.match(/\d\d/g)!.map(Number) as [number, number, number, number, number, number];
    expect(Math.abs(Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss) - Date.now())).toBeLessThan(5 * 60 * 1000);
    expect(parsed).toMatch(/OBJECT\s+:sha256\n/);
  });

  it('sends the chain: a signer under an intermediate verifies against the root only when chainPem is given', () => {
    const intermediate = ca.subordinate('SealRelay Intermediate CA');
    const signer = intermediate.issue({ email: 'relay@clinic.test' });
    expect(verify(signSmime(MESSAGE, { ...signer, chainPem: [intermediate.certPem] }), ca.certPem).status).toBe(0);
    expect(verify(signSmime(MESSAGE, signer), ca.certPem).status).not.toBe(0);
  });

  it('accepts a PKCS#1 key as well as PKCS#8', () => {
    const pkcs1 = crypto.createPrivateKey(alice.keyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    expect(pkcs1).toMatch(/BEGIN RSA PRIVATE KEY/);
    expect(verify(signSmime(MESSAGE, { certPem: alice.certPem, keyPem: pkcs1 }), ca.certPem).status).toBe(0);
  });

  it('sign, then encrypt: openssl decrypts, then verifies the signed entity', () => {
    const out = encryptSmime(signSmime(MESSAGE, alice), [bob.certPem]);
    expect(fields(headerBlock(out)).find(([name]) => name === 'Content-Type')?.[1]).toMatch(/^application\/pkcs7-mime; smime-type=enveloped-data/);
    const inner = decrypt(out, bob);
    expect(inner.status).toBe(0);
    expect(inner.stdout.toString('latin1')).toMatch(/^Content-Type: multipart\/signed; protocol="application\/pkcs7-signature";\r\n micalg=sha-256; boundary=/);
    const result = verify(inner.stdout, ca.certPem);
    expect(result.stderr).toContain('Verification successful');
    expect(result.stdout.equals(ENTITY)).toBe(true);
  });

  const refusedSigners: [string, () => { certPem: string; keyPem: string }, SmimeCertReason][] = [
    ['keyUsage without digitalSignature', () => ca.issue({ email: 'enc@example.test', keyUsage: { keyEncipherment: true } }), 'no-digital-signature'],
    ['expired', () => ca.issue({ email: 'old@example.test', notBefore: new Date(Date.now() - 60 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) }), 'expired'],
    ['EC key', () => ca.issue({ email: 'ec@example.test', keyType: 'ec' }), 'unsupported-key'],
    ['a key of another certificate', () => ({ certPem: alice.certPem, keyPem: bob.keyPem }), 'key-mismatch'],
    ['a key that is not PEM', () => ({ certPem: alice.certPem, keyPem: 'secret' }), 'malformed'],
    ['an unreadable chain certificate', () => ({ ...alice, chainPem: ['junk'] }), 'malformed'],
  ];
  it.each(refusedSigners)('refuses a signer: %s', (_name, make, reason) => {
    const error = refusal(() => signSmime(MESSAGE, make()));
    expect(error.reason).toBe(reason);
    expect(error.role).toBe('signer');
  });
});
