// PGP/MIME output judged by an independent party: the system's gpg 2.2 decrypts and
// verifies everything the relay encrypts, each recipient in a GnuPG home of its own.
// The RFC 3156 structure is read back with a small parser written here, not with
// the module's own splitting.
import crypto from 'node:crypto';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encryptPgpMime, PgpKeyError, type PgpKeyReason, type PgpMimeOptions } from '../../src/crypto/pgp-mime.ts';
import { decodeEncodedWords } from '../../src/mime/encoded-words.ts';
import { createGpgHome, type GpgHome, type GpgKey } from '../helpers/gpg.ts';

const CRLF = '\r\n';

/** Wraps base64 at 76 characters (RFC 2045 §6.8). */
function base64Lines(bytes: Buffer): string {
  return bytes.toString('base64').replace(/.{1,76}/g, `$&${CRLF}`);
}

interface Part {
  readonly headers: string;
  readonly body: string;
}

/** Header block (each line CRLF-terminated) and body of one entity. */
function splitEntity(text: string): Part {
  const blank = text.indexOf(CRLF + CRLF);
  return blank < 0 ? { headers: text, body: '' } : { headers: text.slice(0, blank + 2), body: text.slice(blank + 4) };
}

/** Header fields by lower-case name, raw (folding kept). */
function fields(headers: string, name: string): string[] {
  return headers
    .split(/(?<=\r\n)(?![ \t])/)
    .filter((f) => f.toLowerCase().startsWith(`${name.toLowerCase()}:`));
}

function boundaryOf(headers: string): string {
  const m = /boundary="?([^";\r\n]+)"?/i.exec(fields(headers, 'content-type')[0] ?? '');
  if (!m) throw new Error(`no boundary in ${headers}`);
  return m[1]!;
}

/** RFC 2046 §5.1.1: the body parts between the delimiter lines. */
function multipartParts(body: string, boundary: string): Part[] {
  const delimiter = `${CRLF}--${boundary}`;
  const text = CRLF + body;
  const start = text.indexOf(delimiter);
  const end = text.indexOf(`${delimiter}--`);
  expect(start).toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  return text
    .slice(start + delimiter.length, end)
    .split(delimiter)
    .map((chunk) => splitEntity(chunk.slice(chunk.indexOf(CRLF) + 2)));
}

interface PgpMime {
  readonly outerHeaders: string;
  readonly preamble: string;
  readonly control: Part;
  readonly encrypted: Part;
  readonly boundary: string;
}

function parsePgpMime(out: Buffer): PgpMime {
  const text = out.toString('latin1');
  const { headers, body } = splitEntity(text);
  const boundary = boundaryOf(headers);
  const parts = multipartParts(body, boundary);
  expect(parts).toHaveLength(2);
  return { outerHeaders: headers, preamble: body.slice(0, body.indexOf(`--${boundary}`)), control: parts[0]!, encrypted: parts[1]!, boundary };
}

/** A message as an application would submit it: alternative text/HTML plus two attachments. */
function richMessage(attachments: { big: Buffer; pdf: Buffer }): { message: Buffer; entity: Buffer } {
  const contentFields = ['Content-Type: multipart/mixed;', ' boundary="mixed-1"', 'Content-Language: en'].map((l) => l + CRLF).join('');
  const body = [
    'This is a multi-part message in MIME format.',
    '--mixed-1',
    'Content-Type: multipart/alternative; boundary="alt-1"',
    '',
    '--alt-1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Dear Dr. Smith, the biopsy result for patient 4711 is attached. Grüße',
    '--alt-1',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '<p>Dear Dr. Smith, the biopsy result for patient 4711 is attached. Gr=C3=BC=C3=9Fe</p>',
    '--alt-1--',
    '',
    '--mixed-1',
    'Content-Type: application/octet-stream; name="scan.bin"',
    'Content-Disposition: attachment; filename="scan.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(attachments.big) + '--mixed-1',
    'Content-Type: application/pdf; name="result.pdf"',
    'Content-Disposition: attachment; filename="result.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(attachments.pdf) + '--mixed-1--',
    '',
  ].join(CRLF);
  const routing = [
    'Received: from app.example.test (app.example.test [192.0.2.10])',
    '\tby relay.example.test with ESMTPSA id q1; Tue, 24 Nov 2026 06:00:00 +0000',
    'From: Lab <lab@example.test>',
    'To: Dr Smith <smith@clinic.test>',
    'Date: Tue, 24 Nov 2026 06:00:00 +0000',
    'Message-ID: <rich-1@example.test>',
    'Subject: Biopsy result',
    'MIME-Version: 1.0',
  ]
    .map((l) => l + CRLF)
    .join('');
  const entity = Buffer.from(contentFields + CRLF + body, 'utf8');
  return { message: Buffer.concat([Buffer.from(routing, 'latin1'), entity]), entity };
}

const SIMPLE = Buffer.from(
  [
    'From: a@example.test',
    'To: b@clinic.test',
    'Subject: Lab values',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Potassium 4.1 mmol/l',
    '',
  ].join(CRLF),
);

/** The encrypted part's armor, as a recipient's mail client would hand it to gpg. */
function armorOf(out: Buffer): string {
  return parsePgpMime(out).encrypted.body;
}

async function expectKeyError(opts: PgpMimeOptions, reason: PgpKeyReason, role: PgpKeyError['role'], fingerprint: string | null): Promise<PgpKeyError> {
  const err = await encryptPgpMime(SIMPLE, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PgpKeyError);
  const keyError = err as PgpKeyError;
  expect({ reason: keyError.reason, role: keyError.role, fingerprint: keyError.fingerprint }).toEqual({ reason, role, fingerprint });
  return keyError;
}

describe('encryptPgpMime', () => {
  /** Recipient with ed25519 + cv25519 keys that expire in a year. */
  let alice: GpgHome;
  let aliceKey: GpgKey;
  /** Recipient with RSA 3072. */
  let bob: GpgHome;
  let bobKey: GpgKey;
  /** Recipient whose key openpgp.js generated, advertising SEIPDv2 (AEAD). */
  let carol: GpgHome;
  let carolPublic: string;
  /** Holder of the archive key. */
  let archive: GpgHome;
  let archiveKey: GpgKey;
  /** The relay's signing key, made by gpg. */
  let relay: GpgHome;
  let relayKey: GpgKey;
  let relaySecret: string;
  /** Unusable recipient keys. */
  let bad: GpgHome;
  const homes: GpgHome[] = [];

  beforeAll(async () => {
    const home = (): GpgHome => {
      const h = createGpgHome();
      homes.push(h);
      return h;
    };
    [alice, bob, carol, archive, relay, bad] = [home(), home(), home(), home(), home(), home()];
    [aliceKey, bobKey, archiveKey, relayKey] = await Promise.all([
      alice.generateKey({ algo: 'ed25519', expire: '1y' }),
      bob.generateKey({ algo: 'rsa3072' }),
      archive.generateKey({}),
      relay.generateKey({ signOnly: true }),
    ]);
    relaySecret = await relay.exportSecret(relayKey.fingerprint);
    await alice.importKey(relayKey.publicArmored);

    const generated = await openpgp.generateKey({
      userIDs: [{ name: 'Carol', email: 'carol@clinic.test' }],
      format: 'armored',
      config: { aeadProtect: true },
    });
    carolPublic = generated.publicKey;
    await carol.importKey(generated.privateKey);
  });

  afterAll(async () => {
    await Promise.all(homes.map((h) => h.close()));
  });

  it('encrypts the original MIME entity byte for byte, attachments intact (RFC 3156 §4)', async () => {
    const big = crypto.randomBytes(200 * 1024);
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1'), crypto.randomBytes(3000), Buffer.from('\n%%EOF\n')]);
    const { message, entity } = richMessage({ big, pdf });

    const out = await encryptPgpMime(message, { recipientKeys: [aliceKey.publicArmored] });
    const decrypted = (await alice.decrypt(armorOf(out))).output;

    expect(decrypted.equals(entity)).toBe(true);
    const inner = splitEntity(decrypted.toString('latin1'));
    const attachments = multipartParts(inner.body, boundaryOf(inner.headers))
      .filter((p) => /^Content-Disposition: attachment/im.test(p.headers))
      .map((p) => Buffer.from(p.body, 'base64'));
    expect(attachments).toHaveLength(2);
    expect(attachments[0]!.equals(big)).toBe(true);
    expect(attachments[1]!.equals(pdf)).toBe(true);
  });

  it.each([
    ['gpg ed25519/cv25519 with an expiry date', () => ({ home: alice, key: aliceKey.publicArmored })],
    ['gpg RSA 3072', () => ({ home: bob, key: bobKey.publicArmored })],
    ['an openpgp.js v4 key that advertises SEIPDv2', () => ({ home: carol, key: carolPublic })],
  ])('gpg 2.2 decrypts for %s: SEIPDv1 with MDC, AES-256', async (_name, which) => {
    const { home, key } = which();
    const out = await encryptPgpMime(SIMPLE, { recipientKeys: [key] });
    const result = await home.decrypt(armorOf(out));
    expect(result.output.toString('latin1')).toBe('Content-Type: text/plain; charset=us-ascii\r\n\r\nPotassium 4.1 mmol/l\r\n');
    // DECRYPTION_INFO <mdc_method> <sym_algo>: 2 = MDC (SEIPDv1), 9 = AES-256 (GnuPG doc/DETAILS).
    expect(result.status).toContain('DECRYPTION_INFO 2 9 0');
    expect(result.status).toContain('GOODMDC');
  });

  it('the openpgp.js key really asks for SEIPDv2, so the previous case tests the override', async () => {
    // Features subpacket (RFC 9580): 0x01 = SEIPDv1, 0x08 = SEIPDv2.
    const packets = (await carol.run(['--list-packets'], carolPublic)).output.toString('utf8');
    const features = [...packets.matchAll(/features: ([0-9a-f]{2})/g)].map((m) => parseInt(m[1]!, 16));
    expect(features.length).toBeGreaterThan(0);
    for (const f of features) expect(f & 0x08).toBe(0x08);
  });

  it('encrypts to the archive key as well, and to nobody else', async () => {
    const out = await encryptPgpMime(SIMPLE, { recipientKeys: [aliceKey.publicArmored], archiveKey: archiveKey.publicArmored });
    const armor = armorOf(out);
    const expected = 'Content-Type: text/plain; charset=us-ascii\r\n\r\nPotassium 4.1 mmol/l\r\n';
    expect((await alice.decrypt(armor)).output.toString('latin1')).toBe(expected);
    expect((await archive.decrypt(armor)).output.toString('latin1')).toBe(expected);
    const outsider = await bob.run(['--decrypt'], armor);
    expect(outsider.code).not.toBe(0);
    expect(outsider.status.some((s) => s.startsWith('NO_SECKEY'))).toBe(true);
  });

  it('signs inside the encryption; gpg reports a good signature from the relay key', async () => {
    const out = await encryptPgpMime(SIMPLE, { recipientKeys: [aliceKey.publicArmored], signingKey: { armoredKey: relaySecret } });
    const result = await alice.decrypt(armorOf(out));
    expect(result.status.some((s) => s.startsWith(`GOODSIG ${relayKey.fingerprint.slice(-16)} `))).toBe(true);
    expect(result.status.some((s) => s.startsWith(`VALIDSIG ${relayKey.fingerprint} `))).toBe(true);
    expect(result.output.toString('latin1')).toContain('Potassium 4.1 mmol/l');
  });

  it('unlocks a passphrase-protected signing key, and refuses it without the passphrase', async () => {
    const { privateKey, publicKey } = await openpgp.generateKey({ userIDs: [{ email: 'relay@example.test' }], passphrase: 'correct horse', format: 'armored' });
    const fingerprint = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint().toUpperCase();
    const base = { recipientKeys: [aliceKey.publicArmored] };
    await expectKeyError({ ...base, signingKey: { armoredKey: privateKey } }, 'locked', 'signing', fingerprint);
    await expectKeyError({ ...base, signingKey: { armoredKey: privateKey, passphrase: 'wrong' } }, 'locked', 'signing', fingerprint);

    const out = await encryptPgpMime(SIMPLE, { ...base, signingKey: { armoredKey: privateKey, passphrase: 'correct horse' } });
    await alice.importKey(publicKey);
    const result = await alice.decrypt(armorOf(out));
    expect(result.status.some((s) => s.startsWith(`VALIDSIG ${fingerprint} `))).toBe(true);
  });

  it('protected headers: the outer Subject is the placeholder, the encrypted part has the original', async () => {
    const subject = 'Subject: =?UTF-8?Q?Befund_f=C3=BCr?=\r\n Patient 4711\r\n';
    const message = Buffer.from(
      'From: Lab <lab@example.test>\r\nTo: smith@clinic.test\r\nDate: Tue, 24 Nov 2026 06:00:00 +0000\r\n' +
        'Message-ID: <ph-1@example.test>\r\n' +
        subject +
        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBiopsy benign.\r\n',
    );
    const out = await encryptPgpMime(message, { recipientKeys: [aliceKey.publicArmored], subjectPlaceholder: '[...]' });
    const { outerHeaders } = parsePgpMime(out);
    expect(fields(outerHeaders, 'subject')).toEqual(['Subject: [...]\r\n']);
    expect(out.toString('latin1')).not.toContain('Patient 4711');

    const inner = splitEntity((await alice.decrypt(armorOf(out))).output.toString('latin1'));
    expect(fields(inner.headers, 'subject')).toEqual([subject]);
    for (const name of ['From', 'To', 'Date', 'Message-ID']) expect(fields(inner.headers, name)).toEqual(fields(outerHeaders, name));
    expect(fields(inner.headers, 'content-type')).toEqual(['Content-Type: text/plain; charset=utf-8;\r\n protected-headers="v1"\r\n']);
    expect(fields(inner.headers, 'content-transfer-encoding')).toEqual(['Content-Transfer-Encoding: 8bit\r\n']);
    expect(inner.body).toBe('Biopsy benign.\r\n');
  });

  it('writes a non-ASCII placeholder as RFC 2047 encoded-words and refuses a multi-line one', async () => {
    const placeholder = 'Verschlüsselte Nachricht – bitte im Mailprogramm öffnen, das OpenPGP versteht';
    const out = await encryptPgpMime(SIMPLE, { recipientKeys: [aliceKey.publicArmored], subjectPlaceholder: placeholder });
    const [field] = fields(parsePgpMime(out).outerHeaders, 'subject');
    expect(field).toMatch(/^Subject: [\x20-\x7e\r\n\t]+$/);
    for (const word of field!.match(/=\?[^?]+\?B\?[^?]*\?=/g) ?? []) expect(word.length).toBeLessThanOrEqual(75);
    expect(decodeEncodedWords(field!.slice('Subject: '.length).replace(/\r\n/g, ''))).toBe(placeholder);
    await expect(encryptPgpMime(SIMPLE, { recipientKeys: [aliceKey.publicArmored], subjectPlaceholder: 'a\r\nBcc: x@evil.test' })).rejects.toThrow(/single line/);
  });

  it('builds the RFC 3156 structure, keeps routing fields and leaves nothing of the original content outside', async () => {
    const received = 'Received: from app.example.test (app.example.test [192.0.2.10])\r\n\tby relay.example.test with ESMTPSA id q2;\r\n\tTue, 24 Nov 2026 06:00:00 +0000\r\n';
    const routing =
      received +
      'From: Lab <lab@example.test>\r\nTo: smith@clinic.test\r\nCc: records@clinic.test\r\nDate: Tue, 24 Nov 2026 06:00:00 +0000\r\n' +
      'Message-ID: <struct-1@example.test>\r\nSubject: Lab values\r\nMIME-Version: 1.0\r\n';
    const content = 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Description: report\r\n';
    const body = 'Serum creatinine 1.9 mg/dl, eGFR 34 =E2=80=93 please review.\r\n';
    const out = await encryptPgpMime(Buffer.from(routing + content + '\r\n' + body), { recipientKeys: [aliceKey.publicArmored] });
    const text = out.toString('latin1');
    const parsed = parsePgpMime(out);

    expect(parsed.outerHeaders).toBe(
      routing.replace('MIME-Version: 1.0\r\n', '') +
        'MIME-Version: 1.0\r\n' +
        `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n boundary="${parsed.boundary}"\r\n`,
    );
    expect(text.match(/^MIME-Version:/gim)).toHaveLength(1);
    expect(text.match(/^Content-Transfer-Encoding:/gim)).toBeNull();
    expect(text).not.toContain('creatinine');
    expect(text).not.toContain('report');

    expect(parsed.control).toEqual({ headers: 'Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n', body: 'Version: 1\r\n' });
    expect(fields(parsed.encrypted.headers, 'content-type')[0]).toMatch(/^Content-Type: application\/octet-stream[;\r]/);
    expect(parsed.encrypted.body).toMatch(/^-----BEGIN PGP MESSAGE-----\r\n[\s\S]*\r\n-----END PGP MESSAGE-----\r\n$/);
    expect(parsed.encrypted.body).not.toContain(parsed.boundary);
    // Every line ends in CRLF and fits SMTP's 998-octet limit (RFC 5322 §2.1.1).
    expect(text.endsWith('--\r\n')).toBe(true);
    for (const line of text.split('\r\n')) {
      expect(line).not.toMatch(/[\r\n]/);
      expect(line.length).toBeLessThanOrEqual(998);
    }

    const decrypted = (await alice.decrypt(parsed.encrypted.body)).output.toString('latin1');
    expect(decrypted).toBe(content + '\r\n' + body);
  });

  it('makes the default Content-Type explicit when the original has none (RFC 2045 §5.2)', async () => {
    const out = await encryptPgpMime(Buffer.from('From: a@example.test\r\nSubject: hi\r\n\r\nplain words\r\n'), { recipientKeys: [bobKey.publicArmored] });
    expect((await bob.decrypt(armorOf(out))).output.toString('latin1')).toBe('Content-Type: text/plain; charset=us-ascii\r\n\r\nplain words\r\n');
  });

  it('rejects a header it cannot split into fields, without quoting it', async () => {
    const opts = { recipientKeys: [aliceKey.publicArmored] };
    await expect(encryptPgpMime(Buffer.from(' folded: first\r\nSubject: x\r\n\r\nbody\r\n'), opts)).rejects.toThrow(/starts with a continuation line/);
    const err = await encryptPgpMime(Buffer.from('Subject: x\r\nPatient 4711 no colon\r\n\r\nbody\r\n'), opts).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('PGP/MIME: header line 2 is not a header field');
  });

  it('accepts binary keys', async () => {
    const binary = (await openpgp.readKey({ armoredKey: bobKey.publicArmored })).write();
    const out = await encryptPgpMime(SIMPLE, { recipientKeys: [binary] });
    expect((await bob.decrypt(armorOf(out))).output.toString('latin1')).toContain('Potassium 4.1 mmol/l');
  });

  it('armors with a CRC-24 that gpg checks: gpg accepts ours, for every length mod 4, and refuses a changed checksum', async () => {
    for (const extra of ['', 'a', 'ab', 'abc']) {
      const armor = armorOf(await encryptPgpMime(Buffer.concat([SIMPLE, Buffer.from(`${extra}\r\n`)]), { recipientKeys: [aliceKey.publicArmored] }));
      const checksum = /\r\n=([A-Za-z0-9+/]{4})\r\n-----END PGP MESSAGE-----\r\n$/.exec(armor)?.[1];
      expect(checksum).toBeDefined();
      expect((await alice.run(['--dearmor'], armor)).code).toBe(0);
      const changed = armor.replace(`=${checksum}\r\n`, `=${checksum!.startsWith('A') ? 'B' : 'A'}${checksum!.slice(1)}\r\n`);
      const refused = await alice.run(['--dearmor'], changed);
      expect(refused.code).not.toBe(0);
      expect(refused.log).toMatch(/CRC error/);
    }
  });

  describe('reuses a parsed key only for the same bytes, and judges it against the clock on every use', () => {
    it('a key that was fine when first used is refused once it has expired', async () => {
      const { publicKey, privateKey } = await openpgp.generateKey({ userIDs: [{ email: 'soon@clinic.test' }], keyExpirationTime: 3600, format: 'armored' });
      const fingerprint = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint().toUpperCase();
      const first = await encryptPgpMime(SIMPLE, { recipientKeys: [publicKey] });
      const decrypted = await openpgp.decrypt({
        message: await openpgp.readMessage({ armoredMessage: armorOf(first) }),
        decryptionKeys: await openpgp.readPrivateKey({ armoredKey: privateKey }),
      });
      expect(decrypted.data).toContain('Potassium 4.1 mmol/l');
      // Only Date is faked: openpgp and the module read the clock through it.
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 2 * 3600 * 1000);
        const err = await expectKeyError({ recipientKeys: [publicKey] }, 'expired', 'recipient', fingerprint);
        expect(err.message).toMatch(/expired on/);
      } finally {
        vi.useRealTimers();
      }
      await expect(encryptPgpMime(SIMPLE, { recipientKeys: [publicKey] })).resolves.toBeInstanceOf(Buffer);
    });

    it('the same key with a revocation added is refused, though its unrevoked copy was used before', async () => {
      const { publicKey, privateKey } = await openpgp.generateKey({ userIDs: [{ email: 'revoke-later@clinic.test' }], format: 'armored' });
      const fingerprint = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint().toUpperCase();
      await encryptPgpMime(SIMPLE, { recipientKeys: [publicKey] });
      const { publicKey: revoked } = await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: privateKey }), format: 'armored' });
      await expectKeyError({ recipientKeys: [revoked] }, 'revoked', 'recipient', fingerprint);
    });
  });

  describe('refuses keys it cannot use, producing nothing', () => {
    it('expired', async () => {
      const key = await bad.generateKey({ expired: true });
      const err = await expectKeyError({ recipientKeys: [key.publicArmored] }, 'expired', 'recipient', key.fingerprint);
      expect(err.message).toMatch(/expired on 2020-01-02/);
    });

    it('revoked', async () => {
      const key = await bad.generateKey({ revoked: true });
      await expectKeyError({ recipientKeys: [key.publicArmored] }, 'revoked', 'recipient', key.fingerprint);
    });

    it('sign-only (no encryption subkey)', async () => {
      const key = await bad.generateKey({ signOnly: true });
      await expectKeyError({ recipientKeys: [key.publicArmored] }, 'no-encryption-key', 'recipient', key.fingerprint);
    });

    it('a bad archive key, even when the recipient key is fine', async () => {
      const key = await bad.generateKey({ revoked: true });
      await expectKeyError({ recipientKeys: [aliceKey.publicArmored], archiveKey: key.publicArmored }, 'revoked', 'archive', key.fingerprint);
    });

    it('no recipient key', async () => {
      await expectKeyError({ recipientKeys: [] }, 'missing', 'recipient', null);
    });

    it('unreadable, and more than one key in one entry', async () => {
      const err = await expectKeyError({ recipientKeys: ['-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n'] }, 'unreadable', 'recipient', null);
      expect(err.message).toMatch(/recipient key #1/);
      const two = Buffer.concat([
        (await openpgp.readKey({ armoredKey: aliceKey.publicArmored })).write(),
        (await openpgp.readKey({ armoredKey: bobKey.publicArmored })).write(),
      ]);
      await expectKeyError({ recipientKeys: [two] }, 'unreadable', 'recipient', null);
    });

    it('a v6 key (RFC 9580), which GnuPG 2.2 cannot use', async () => {
      const { publicKey } = await openpgp.generateKey({ userIDs: [{ email: 'v6@clinic.test' }], format: 'armored', config: { v6Keys: true } });
      const fingerprint = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint().toUpperCase();
      await expectKeyError({ recipientKeys: [publicKey] }, 'unsupported-version', 'recipient', fingerprint);
    });
  });
});
