// The CMS DER that smime.ts lays out by hand (der.ts), checked structure by structure
// against OpenSSL's own DER encoder: `openssl cms -cmsout` parses each structure we
// produce and writes it back out, and the bytes must be the very bytes we wrote. So
// every length is in its shortest form, every SET OF sorted, every field where
// RFC 5652 puts it; decryption and verification by `openssl cms` are in smime.test.ts.
// `-cmsout -print` then names the algorithms and identifiers.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptSmime, signSmime } from '../../src/crypto/smime.ts';
import { createSmimeCa, type SmimeCa, type SmimeCert } from '../helpers/smime-certs.ts';

const base64Lines = (bytes: Buffer) => bytes.toString('base64').replace(/.{1,76}/g, '$&\r\n');
const HEAD = 'From: Lab <lab@clinic.test>\r\nTo: Alice <alice@example.test>\r\nSubject: Befund\r\nMIME-Version: 1.0\r\n';
const SMALL = Buffer.from(`${HEAD}Content-Type: text/plain; charset=us-ascii\r\n\r\nPotassium 4.1 mmol/l\r\n`, 'latin1');
/** Large enough for a length in three octets (X.690 §8.1.3.5) around the ciphertext. */
const LARGE = Buffer.from(`${HEAD}Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Lines(crypto.randomBytes(300 * 1024))}`, 'latin1');

let dir: string;
let ca: SmimeCa;
let alice: SmimeCert;
let bob: SmimeCert;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-smime-der-'));
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

function openssl(args: string[]): Buffer {
  const result = spawnSync('openssl', args, { maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr.toString()}`);
  return result.stdout;
}

/** The DER of the base64 part after the first blank line following `marker` (the whole body when no marker). */
function derAfter(message: Buffer, marker?: string): Buffer {
  const text = message.toString('latin1');
  const from = marker ? text.indexOf(marker) : 0;
  expect(from).toBeGreaterThanOrEqual(0);
  const start = text.indexOf('\r\n\r\n', from) + 4;
  const end = text.indexOf('\r\n--', start);
  return Buffer.from(text.slice(start, end < 0 ? undefined : end), 'base64');
}

/** OpenSSL reads the DER and writes its own encoding of what it read. */
function reencoded(der: Buffer): Buffer {
  return openssl(['cms', '-cmsout', '-inform', 'DER', '-in', file(der), '-outform', 'DER']);
}

function printed(der: Buffer): string {
  return openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', file(der)]).toString('latin1');
}

describe('the CMS DER we write is the DER OpenSSL writes', () => {
  it.each([
    ['one recipient, small message', () => encryptSmime(SMALL, [alice.certPem])],
    ['two recipients (a sorted SET OF RecipientInfo), 300 KB message', () => encryptSmime(LARGE, [alice.certPem, bob.certPem])],
    ['sign, then encrypt: the outer envelope', () => encryptSmime(signSmime(SMALL, alice), [bob.certPem])],
  ])('EnvelopedData: %s', (_name, make) => {
    const der = derAfter(make());
    expect(reencoded(der).equals(der)).toBe(true);
    const text = printed(der);
    expect(text).toMatch(/contentType: pkcs7-envelopedData/);
    expect(text).toMatch(/algorithm: aes-256-cbc/);
    expect(text).toMatch(/algorithm: rsaEncryption/);
  });

  it.each([
    ['signer certificate only', () => signSmime(SMALL, alice)],
    ['with the chain (a sorted SET OF certificates)', () => {
      const intermediate = ca.subordinate('SealRelay DER Intermediate CA');
      return signSmime(LARGE, { ...intermediate.issue({ email: 'relay@clinic.test' }), chainPem: [intermediate.certPem] });
    }],
  ])('SignedData: %s', (_name, make) => {
    const der = derAfter(make(), 'Content-Type: application/pkcs7-signature;');
    expect(reencoded(der).equals(der)).toBe(true);
    const text = printed(der);
    expect(text).toMatch(/contentType: pkcs7-signedData/);
    expect(text).toMatch(/digestAlgorithm:\s+algorithm: sha256/);
    expect(text).toMatch(/signatureAlgorithm:\s+algorithm: rsaEncryption/);
    expect(text).toMatch(/eContentType: pkcs7-data \([\d.]+\)\s+eContent: <ABSENT>/);
  });
});
