// S/MIME (RFC 8551) for the `smime` mode and the `smime` step of a fallback chain:
// encrypt a queued message to its recipients' certificates (enveloped-data), and
// sign it (multipart/signed, detached). Signing first and then encrypting the
// result nests the two, as RFC 8551 §3.7 describes.
//
// What moves where. The protected MIME entity is the original's Content-* header
// fields (raw, folding kept), a blank line and the body bytes unchanged; a message
// without Content-Type gets an explicit `text/plain; charset=us-ascii` (RFC 2045
// §5.2). Every other header field stays outside, so the message can still be routed
// and listed, and MIME-Version: 1.0 appears once. The entity must already be in
// canonical form (CRLF line ends, RFC 8551 §3.1.1): the queue guarantees it, and a
// bare CR or LF is refused rather than repaired, since repairing would change the
// bytes the recipient verifies.
//
// Algorithms: AES-256-CBC content encryption (RFC 3565), RSA PKCS#1 v1.5 key
// transport (RFC 8551 §2.3 MUST), SHA-256 with RSA PKCS#1 v1.5 signatures and
// signingTime + messageDigest signed attributes (RFC 5652 §11).
//
// Who does what. node-forge reads the X.509 certificates (PEM, ASN.1, validity,
// extensions) and encodes the few DER values we need; node:crypto, the platform's
// OpenSSL, does every cryptographic operation: AES-256-CBC, RSA PKCS#1 v1.5 key
// transport (publicEncrypt), SHA-256 and the RSA signature. forge's pure-JS
// primitives were the cost of S/MIME: its RSA signature alone took 27–75 ms where
// OpenSSL takes under a millisecond, and its AES works on binary strings. The
// CMS DER (RFC 5652) is laid out here, not with forge.pkcs7, for two reasons.
// forge.pkcs7 rebuilds IssuerAndSerialNumber from parsed name attributes: a
// UTF8String issuer name comes out encoded twice, no longer matches the certificate,
// and the recipient's client finds no key to decrypt with (or no signer
// certificate). And it holds the content as several binary-string copies (about
// 120 MB of RSS for a 5 MB message); here the ciphertext is written straight into
// the one buffer that becomes the DER, and only the base64 text is a second copy.
// PKI.js, the maintained CMS library, would not keep the algorithms: it encrypts
// through WebCrypto, which has RSA-OAEP but no PKCS#1 v1.5 encryption, and its
// EnvelopedData.encrypt() swallows a failed key transport, leaving a recipient with
// no key. It also encrypts one whole buffer into another and then serialises the tree
// again. test/crypto/smime-der.test.ts holds our DER to OpenSSL's own encoder instead.
//
// What is refused with an SmimeCertError: recipients and signers whose key is not
// RSA. forge reads only RSA public keys from certificates, and the EC structures
// (ECDH, KeyAgreeRecipientInfo, AES key wrap: RFC 5753) are not built here; nor are
// RSA-OAEP key transport, AuthEnvelopedData (AES-GCM, RFC 5083) or ECDSA and RSA-PSS
// signers. Certificates are checked for use (validity now, key usage, extended key
// usage, RSA size), not for trust: which certificate belongs to which address, and
// whether its chain is trusted, is the key store's business.
import crypto, { type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { algorithm, attribute, DerPrefix, forgeDer, integer, NULL, oid, time, tlv } from './der.ts';
import { headerEnd, headerFields, HeaderSyntaxError, IMPLICIT_CONTENT_TYPE, type HeaderField } from '../mime/header-block.ts';
import { withBase64Lines } from './base64-lines.ts';

export interface SmimeSigner {
  readonly certPem: string;
  /** Unencrypted RSA private key, PKCS#1 or PKCS#8 PEM. */
  readonly keyPem: string;
  /** Intermediate certificates sent along, so that receivers can build the path to their trusted root. */
  readonly chainPem?: readonly string[];
}

export type SmimeCertRole = 'recipient' | 'signer';

export type SmimeCertReason =
  | 'malformed'
  | 'unsupported-key'
  | 'weak-key'
  | 'not-yet-valid'
  | 'expired'
  | 'no-key-encipherment'
  | 'no-digital-signature'
  | 'no-email-protection'
  | 'key-mismatch';

/** A certificate (or signing key) that cannot be used; nothing was produced. */
export class SmimeCertError extends Error {
  constructor(
    readonly reason: SmimeCertReason,
    readonly role: SmimeCertRole,
    message: string,
  ) {
    super(message);
    this.name = 'SmimeCertError';
  }
}

/** The message itself cannot be protected as it is (not in canonical CRLF form, broken header block). */
export class SmimeMessageError extends Error {
  override name = 'SmimeMessageError';
}

/** Weaker RSA keys are refused here; keys-x509.ts stores them as unusable, by the same rules below. */
const MIN_RSA_BITS = 2048;

// What a certificate must allow to receive S/MIME, shared with the key store's verdict
// (keys-x509.ts), so that a key the store calls usable is one encryption accepts.

/** RFC 8551 §2.4.2: RSA key transport needs keyEncipherment when keyUsage is present. */
export function keyEnciphermentProblem(cert: forge.pki.Certificate): string | null {
  const keyUsage = cert.getExtension('keyUsage') as { keyEncipherment?: boolean } | null | undefined;
  return keyUsage && !keyUsage.keyEncipherment ? 'keyUsage does not allow keyEncipherment' : null;
}

/** RFC 8550 §4.4.4: with an extendedKeyUsage extension, the certificate is for S/MIME only if it says so. */
export function emailProtectionProblem(cert: forge.pki.Certificate): string | null {
  const extKeyUsage = cert.getExtension('extKeyUsage') as Record<string, unknown> | null | undefined;
  return extKeyUsage && !extKeyUsage.emailProtection && !extKeyUsage[OID.anyExtendedKeyUsage] ? 'extKeyUsage does not include emailProtection' : null;
}

export function weakKeyProblem(bits: number): string | null {
  return bits < MIN_RSA_BITS ? `RSA key of ${bits} bits is too weak (at least ${MIN_RSA_BITS})` : null;
}
/** 57 bytes make one 76-character base64 line (RFC 2045 §6.8 allows at most 76). */
const BASE64_LINE_BYTES = 57;
/** Plaintext bytes per cipher update: each update returns a fresh buffer, so this bounds the transient copy. */
const CIPHER_CHUNK_BYTES = 64 * 1024;
const AES_BLOCK_BYTES = 16;

const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  commonName: '2.5.4.3',
  emailAddress: '1.2.840.113549.1.9.1',
  /** RFC 5280 §4.2.1.12: allows every purpose, S/MIME included. */
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

/** Names for the public keys forge cannot use, so the refusal says what the key is. */
const KEY_ALGORITHMS: Readonly<Record<string, string>> = {
  '1.2.840.10045.2.1': 'EC',
  '1.2.840.113549.1.1.10': 'RSA-PSS',
  '1.2.840.10040.4.1': 'DSA',
  '1.3.101.110': 'X25519',
  '1.3.101.111': 'X448',
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
};

/** Takes a whole RFC 5322 message (CRLF lines, as queued) and returns the whole S/MIME enveloped message to send. */
export function encryptSmime(message: Buffer, recipientCertsPem: readonly string[]): Buffer {
  if (recipientCertsPem.length === 0) throw new RangeError('encryptSmime needs at least one recipient certificate');
  const recipients = recipientCertsPem.map((pem, i) => {
    const cert = readCertificate(pem, 'recipient', `recipient certificate ${i + 1}`);
    const noTransport = keyEnciphermentProblem(cert.forge);
    if (noTransport) throw new SmimeCertError('no-key-encipherment', 'recipient', `${cert.label}: ${noTransport}, so it cannot receive an RSA-transported key`);
    return cert;
  });
  const { outer, entity } = splitMessage(message);

  const key = crypto.randomBytes(32);
  const iv = crypto.randomBytes(AES_BLOCK_BYTES);
  // Each recipient gets the content key under its own RSA key; the SET is DER-sorted (X.690 §11.6).
  const recipientInfos = recipients
    .map((r) => {
      const encryptedKey = crypto.publicEncrypt({ key: r.publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, key);
      return tlv(0x30, integer(0), r.issuerAndSerial, algorithm(OID.rsaEncryption, NULL), tlv(0x04, encryptedKey));
    })
    .sort(Buffer.compare);

  // PKCS#7 padding always adds 1 to 16 bytes, so the ciphertext length is known before encrypting.
  const plainLength = entity.reduce((n, part) => n + part.length, 0);
  const cipherLength = (Math.floor(plainLength / AES_BLOCK_BYTES) + 1) * AES_BLOCK_BYTES;
  // ContentInfo { envelopedData, [0] EnvelopedData { 0, recipientInfos, EncryptedContentInfo } },
  // built outwards from the ciphertext so that it is never copied.
  const prefix = new DerPrefix(cipherLength)
    .wrap(0x80) // encryptedContent [0] IMPLICIT OCTET STRING
    .prepend(oid(OID.data), algorithm(OID.aes256Cbc, tlv(0x04, iv)))
    .wrap(0x30) // EncryptedContentInfo
    .prepend(integer(0), tlv(0x31, ...recipientInfos))
    .wrap(0x30) // EnvelopedData
    .wrap(0xa0)
    .prepend(oid(OID.envelopedData))
    .wrap(0x30)
    .bytes();
  const der = Buffer.allocUnsafe(prefix.length + cipherLength);
  prefix.copy(der);
  encryptAes256Cbc(entity, key, iv, der, prefix.length);

  const head =
    outer +
    'MIME-Version: 1.0\r\n' +
    'Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n name=smime.p7m\r\n' +
    'Content-Transfer-Encoding: base64\r\n' +
    'Content-Disposition: attachment; filename=smime.p7m\r\n' +
    '\r\n';
  return withBase64Lines([Buffer.from(head, 'latin1')], der, Buffer.alloc(0), BASE64_LINE_BYTES);
}

/** Returns the whole message with its MIME entity signed (multipart/signed, detached, SHA-256), to be verified by `openssl cms -verify`. */
export function signSmime(message: Buffer, signer: SmimeSigner): Buffer {
  const cert = readCertificate(signer.certPem, 'signer', 'signer certificate');
  const keyUsage = cert.forge.getExtension('keyUsage') as { digitalSignature?: boolean; nonRepudiation?: boolean } | undefined;
  if (keyUsage && !keyUsage.digitalSignature && !keyUsage.nonRepudiation) {
    throw new SmimeCertError('no-digital-signature', 'signer', `${cert.label}: keyUsage allows neither digitalSignature nor nonRepudiation`);
  }
  const key = readPrivateKey(signer.keyPem, cert);
  const chain = (signer.chainPem ?? []).map((pem, i) => certificateDer(pem, 'signer', `chain certificate ${i + 1}`));
  const { outer, entity } = splitMessage(message);

  const digest = crypto.createHash('sha256');
  for (const part of entity) digest.update(part);
  const signature = signedData(digest.digest(), key, cert, chain);

  // 128 random bits: the boundary cannot occur in the entity by accident, nor be planted in it.
  const boundary = `----=_smime_${crypto.randomBytes(16).toString('hex')}`;
  const head =
    outer +
    'MIME-Version: 1.0\r\n' +
    `Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n micalg=sha-256; boundary="${boundary}"\r\n` +
    '\r\n' +
    'This is a cryptographically signed message in MIME format.\r\n' +
    '\r\n' +
    `--${boundary}\r\n`;
  // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1): the signed part is the entity exactly.
  const signaturePart =
    `\r\n--${boundary}\r\n` +
    'Content-Type: application/pkcs7-signature; name=smime.p7s\r\n' +
    'Content-Transfer-Encoding: base64\r\n' +
    'Content-Disposition: attachment; filename=smime.p7s\r\n' +
    '\r\n';
  return withBase64Lines(
    [Buffer.from(head, 'latin1'), ...entity, Buffer.from(signaturePart, 'latin1')],
    signature,
    Buffer.from(`--${boundary}--\r\n`, 'latin1'),
    BASE64_LINE_BYTES,
  );
}

/** RFC 5652 §5: a detached SignedData whose one signer signs contentType, signingTime and messageDigest. */
function signedData(contentDigest: Buffer, key: KeyObject, cert: Certificate, chain: readonly Buffer[]): Buffer {
  // The signature covers the DER of the SET OF attributes (RFC 5652 §5.4), which must be sorted (X.690 §11.6).
  const attributes = [
    attribute(OID.contentType, oid(OID.data)),
    attribute(OID.signingTime, time(new Date())),
    attribute(OID.messageDigest, tlv(0x04, contentDigest)),
  ].sort(Buffer.compare);
  // An RSA KeyObject signs RSASSA-PKCS1-v1_5 unless told otherwise.
  const signature = crypto.sign('sha256', tlv(0x31, ...attributes), key);

  // SHA-2 algorithm identifiers carry no parameters (RFC 5754 §2); rsaEncryption carries NULL (RFC 3370 §3.2).
  const signerInfo = tlv(0x30, integer(1), cert.issuerAndSerial, algorithm(OID.sha256), tlv(0xa0, ...attributes), algorithm(OID.rsaEncryption, NULL), tlv(0x04, signature));
  // certificates is a SET OF as well: DER-sorted like the attributes (the signer is found by issuerAndSerial, not by position).
  const certificates = tlv(0xa0, ...[cert.der, ...chain].sort(Buffer.compare));
  const content = tlv(0x30, integer(1), tlv(0x31, algorithm(OID.sha256)), tlv(0x30, oid(OID.data)), certificates, tlv(0x31, signerInfo));
  return tlv(0x30, oid(OID.signedData), tlv(0xa0, content));
}

/** Splits the message into the header fields that stay outside and the MIME entity that gets protected. */
function splitMessage(message: Buffer): { outer: string; entity: Buffer[] } {
  assertCanonical(message);
  const end = headerEnd(message);
  const body = message.subarray(Math.min(end + 2, message.length));
  const outer: string[] = [];
  const content: string[] = [];
  let hasType = false;
  for (const { name, raw } of fieldsOf(message.subarray(0, end).toString('latin1'))) {
    if (name.startsWith('content-')) content.push(raw);
    else if (name !== 'mime-version') outer.push(raw);
    hasType ||= name === 'content-type';
  }
  const entityHead = (hasType ? '' : IMPLICIT_CONTENT_TYPE) + content.join('') + '\r\n';
  return { outer: outer.join(''), entity: [Buffer.from(entityHead, 'latin1'), body] };
}

/** The header block's fields; a malformed block is the message's fault. */
function fieldsOf(block: string): HeaderField[] {
  try {
    return headerFields(block);
  } catch (err) {
    if (err instanceof HeaderSyntaxError) throw new SmimeMessageError(err.message);
    throw err;
  }
}

/** Refuses a bare CR or LF anywhere: the entity is signed and encrypted as it is (RFC 8551 §3.1.1). */
function assertCanonical(message: Buffer): void {
  for (let lf = message.indexOf(0x0a); lf >= 0; lf = message.indexOf(0x0a, lf + 1)) {
    if (lf === 0 || message[lf - 1] !== 0x0d) throw new SmimeMessageError(`bare LF at byte ${lf}: the message is not in canonical CRLF form`);
  }
  for (let cr = message.indexOf(0x0d); cr >= 0; cr = message.indexOf(0x0d, cr + 1)) {
    if (message[cr + 1] !== 0x0a) throw new SmimeMessageError(`bare CR at byte ${cr}: the message is not in canonical CRLF form`);
  }
}

/** Encrypts the parts with AES-256-CBC (PKCS#7 padding) into `target` from `offset`, which must end exactly at target's end. */
function encryptAes256Cbc(parts: readonly Buffer[], key: Buffer, iv: Buffer, target: Buffer, offset: number): void {
  const cipher = crypto.createCipheriv('aes-256-cbc', key, iv);
  let at = offset;
  for (const part of parts) {
    for (let from = 0; from < part.length; from += CIPHER_CHUNK_BYTES) {
      at += cipher.update(part.subarray(from, from + CIPHER_CHUNK_BYTES)).copy(target, at);
    }
  }
  at += cipher.final().copy(target, at); // the PKCS#7 padding and the last block
  if (at !== target.length) throw new Error(`AES-256-CBC wrote ${at - offset} bytes where ${target.length - offset} were laid out`);
}

interface Certificate {
  readonly forge: forge.pki.Certificate;
  /** The same public key for node:crypto. */
  readonly publicKey: KeyObject;
  readonly der: Buffer;
  /** IssuerAndSerialNumber (RFC 5652 §10.2.4) with the issuer name exactly as the certificate encodes it. */
  readonly issuerAndSerial: Buffer;
  /** "recipient certificate 2 (CN=…)", for error messages. */
  readonly label: string;
}

/** Reads one PEM certificate and checks what every S/MIME use needs: RSA of MIN_RSA_BITS, valid now, emailProtection. */
function readCertificate(pem: string, role: SmimeCertRole, what: string): Certificate {
  const parsed = parsedCertificate(pem, role, what);
  const label = `${what} (${parsed.subject})`;
  // Judged at every use: validity depends on the clock, the messages on the role.
  checkUse(parsed.forge, parsed.publicKey, role, label);
  return { ...parsed, label };
}

interface ParsedCertificate extends Omit<Certificate, 'label'> {
  readonly subject: string;
}

/** Certificates already parsed, by PEM: the archive and signer certificates are used for every message. */
const parsedCertificates = new Map<string, ParsedCertificate>();
const PARSED_CERTIFICATES_KEPT = 128;

function parsedCertificate(pem: string, role: SmimeCertRole, what: string): ParsedCertificate {
  const id = crypto.createHash('sha256').update(pem).digest('base64');
  const cached = parsedCertificates.get(id);
  if (cached) return cached;
  const der = certificateDer(pem, role, what);
  let label = what;
  try {
    const node = forge.asn1.fromDer(der.toString('binary'));
    const tbs = children(children(node)[0]);
    // TBSCertificate: [0] version (absent in v1), serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
    const v = tbs[0]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
    const subject = describeName(tbs[v + 4]);
    label = `${what} (${subject})`;
    const keyAlgorithm = forge.asn1.derToOid(children(children(tbs[v + 5])[0])[0]!.value as string);
    if (keyAlgorithm !== OID.rsaEncryption) {
      throw new SmimeCertError('unsupported-key', role, `${label}: ${KEY_ALGORITHMS[keyAlgorithm] ?? keyAlgorithm} key; node-forge can use only RSA keys for S/MIME`);
    }
    const issuerAndSerial = tlv(0x30, forgeDer(tbs[v + 2]!), forgeDer(tbs[v]!));
    const cert = forge.pki.certificateFromAsn1(node);
    const publicKey = crypto.createPublicKey({ key: forgeDer(tbs[v + 5]!), format: 'der', type: 'spki' });
    const parsed = { forge: cert, publicKey, der, issuerAndSerial, subject };
    parsedCertificates.set(id, parsed);
    if (parsedCertificates.size > PARSED_CERTIFICATES_KEPT) parsedCertificates.delete(parsedCertificates.keys().next().value!);
    return parsed;
  } catch (e) {
    if (e instanceof SmimeCertError) throw e;
    throw new SmimeCertError('malformed', role, `${label}: not a readable X.509 certificate (${(e as Error).message})`);
  }
}

function checkUse(cert: forge.pki.Certificate, publicKey: KeyObject, role: SmimeCertRole, label: string): void {
  const now = Date.now();
  const { notBefore, notAfter } = cert.validity;
  if (now < notBefore.getTime()) throw new SmimeCertError('not-yet-valid', role, `${label}: not valid before ${notBefore.toISOString()}`);
  if (now > notAfter.getTime()) throw new SmimeCertError('expired', role, `${label}: expired at ${notAfter.toISOString()}`);
  const weak = weakKeyProblem(publicKey.asymmetricKeyDetails?.modulusLength ?? 0);
  if (weak) throw new SmimeCertError('weak-key', role, `${label}: ${weak}`);
  const notForMail = emailProtectionProblem(cert);
  if (notForMail) throw new SmimeCertError('no-email-protection', role, `${label}: ${notForMail}`);
}

/** The DER of the one CERTIFICATE block in `pem`. */
function certificateDer(pem: string, role: SmimeCertRole, what: string): Buffer {
  let blocks: forge.pem.ObjectPEM[];
  try {
    blocks = forge.pem.decode(String(pem)).filter((block) => block.type === 'CERTIFICATE');
  } catch {
    blocks = [];
  }
  if (blocks.length !== 1) throw new SmimeCertError('malformed', role, `${what}: expected one PEM CERTIFICATE block, found ${blocks.length}`);
  return Buffer.from(blocks[0]!.body, 'binary');
}

function readPrivateKey(pem: string, cert: Certificate): KeyObject {
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey({ key: String(pem), format: 'pem' });
  } catch (e) {
    throw new SmimeCertError('malformed', 'signer', `signer key: not an unencrypted RSA private key in PEM (${(e as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'rsa' || !crypto.createPublicKey(key).equals(cert.publicKey)) {
    throw new SmimeCertError('key-mismatch', 'signer', `signer key does not belong to the ${cert.label}`);
  }
  return key;
}

/** "CN=…" or "emailAddress=…" of a Name, for messages; the first of them found. */
function describeName(name: forge.asn1.Asn1 | undefined): string {
  for (const rdn of name ? children(name) : []) {
    for (const pair of children(rdn)) {
      const [type, value] = children(pair);
      const id = forge.asn1.derToOid(type!.value as string);
      const short = id === OID.commonName ? 'CN' : id === OID.emailAddress ? 'emailAddress' : null;
      if (short) return `${short}=${Buffer.from(value!.value as string, 'binary').toString('utf8')}`;
    }
  }
  return 'no CN';
}

function children(node: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  if (!node || !Array.isArray(node.value)) throw new Error('unexpected ASN.1 structure');
  return node.value;
}

