/**
 * smime-certs: throwaway S/MIME certificates for tests.
 *
 * A leaf here looks like what a public S/MIME CA issues: the address in the subject
 * (CN and emailAddress) and in subjectAltName as an rfc822Name, keyUsage
 * digitalSignature + keyEncipherment, extKeyUsage emailProtection. Options make the
 * variants the relay must refuse: expired or not yet valid, a keyUsage without
 * keyEncipherment, an extKeyUsage without emailProtection, a weak RSA key, an EC key.
 *
 * Keys come from node:crypto (native keygen) and node-forge builds and signs the
 * X.509. Every leaf gets a key of its own, so a test that decrypts with the wrong one
 * fails. CA names are UTF8String (as most real CAs encode them), which lets a test use
 * a non-ASCII issuer name. forge can only put RSA keys into a certificate, so an EC
 * leaf is built with a stand-in RSA key whose SubjectPublicKeyInfo is then swapped
 * for the EC one before the CA signs the TBSCertificate.
 * Nothing here is secret or persistent: every process makes its own CAs.
 */
import crypto from 'node:crypto';
import forge from 'node-forge';

export interface SmimeCert {
  readonly certPem: string;
  /** PKCS#8 PEM, unencrypted. */
  readonly keyPem: string;
}

export interface KeyUsageBits {
  digitalSignature?: boolean;
  nonRepudiation?: boolean;
  keyEncipherment?: boolean;
  keyAgreement?: boolean;
}

export interface SmimeCertOptions {
  email: string;
  /** Default: the email address. */
  commonName?: string;
  /** Validity from one hour ago to `days` from now (default 30), unless notBefore/notAfter say otherwise. */
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** Default digitalSignature + keyEncipherment (RSA) or digitalSignature + keyAgreement (EC); null leaves the extension out. */
  keyUsage?: KeyUsageBits | null;
  /** Default ['emailProtection']; null leaves the extension out. */
  extKeyUsage?: readonly ('emailProtection' | 'serverAuth' | 'clientAuth')[] | null;
  /** Default RSA. */
  keyType?: 'rsa' | 'ec';
  /** RSA modulus size, default 2048. */
  rsaBits?: number;
}

export interface SmimeCa extends SmimeCert {
  issue(opts: SmimeCertOptions): SmimeCert;
  /** An intermediate CA signed by this one, to test that signers send their chain. */
  subordinate(commonName: string): SmimeCa;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Backdating covers clock skew between the test process and openssl. */
const BACKDATE_MS = 60 * 60 * 1000;
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
/** TBSCertificate position of subjectPublicKeyInfo when the [0] version is present (always, for v3). */
const TBS_SPKI_INDEX = 6;

interface Issuer {
  readonly cert: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
}

export function createSmimeCa(opts: { commonName?: string } = {}): SmimeCa {
  return makeCa(opts.commonName ?? 'SealRelay S/MIME Test CA', null);
}

let sharedCa: SmimeCa | undefined;
/** One CA per process for callers that need a certificate and do not care who issued it. */
export function sharedSmimeCa(): SmimeCa {
  sharedCa ??= createSmimeCa();
  return sharedCa;
}

/** A valid S/MIME certificate from the shared CA. */
export function issueSmimeCert(opts: SmimeCertOptions): SmimeCert {
  return sharedSmimeCa().issue(opts);
}

function makeCa(commonName: string, parent: Issuer | null): SmimeCa {
  const { keyPem } = rsaKey(2048);
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = new Date(Date.now() - BACKDATE_MS);
  cert.validity.notAfter = new Date(Date.now() + 365 * DAY_MS);
  const subject = [utf8Attribute('commonName', commonName), utf8Attribute('organizationName', 'SealRelay tests')];
  cert.setSubject(subject);
  cert.setIssuer(parent ? parent.cert.subject.attributes : subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    { name: 'subjectKeyIdentifier' },
    ...(parent ? [{ name: 'authorityKeyIdentifier', keyIdentifier: parent.cert.generateSubjectKeyIdentifier().getBytes() }] : []),
  ]);
  cert.sign(parent?.key ?? key, forge.md.sha256.create());
  const self: Issuer = { cert, key };
  return {
    certPem: forge.pki.certificateToPem(cert),
    keyPem,
    issue: (leaf) => issueLeaf(leaf, self),
    subordinate: (name) => makeCa(name, self),
  };
}

function issueLeaf(opts: SmimeCertOptions, issuer: Issuer): SmimeCert {
  const keyType = opts.keyType ?? 'rsa';
  const { privateKey, keyPem } = keyType === 'ec' ? ecKey() : rsaKey(opts.rsaBits ?? 2048);
  const cert = forge.pki.createCertificate();
  // An EC key cannot go into a forge certificate: the issuer's RSA key stands in until swapPublicKey.
  cert.publicKey = keyType === 'ec' ? forge.pki.setRsaPublicKey(issuer.key.n, issuer.key.e) : forge.pki.publicKeyFromPem(spkiPem(privateKey));
  cert.serialNumber = randomSerial();
  const now = Date.now();
  cert.validity.notBefore = opts.notBefore ?? new Date(now - BACKDATE_MS);
  cert.validity.notAfter = opts.notAfter ?? new Date(now + (opts.days ?? 30) * DAY_MS);
  cert.setSubject([utf8Attribute('commonName', opts.commonName ?? opts.email), { name: 'emailAddress', value: opts.email }]);
  cert.setIssuer(issuer.cert.subject.attributes);
  const keyUsage = opts.keyUsage === undefined ? (keyType === 'ec' ? { digitalSignature: true, keyAgreement: true } : { digitalSignature: true, keyEncipherment: true }) : opts.keyUsage;
  const extKeyUsage = opts.extKeyUsage === undefined ? ['emailProtection'] : opts.extKeyUsage;
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    ...(keyUsage ? [{ name: 'keyUsage', critical: true, ...keyUsage }] : []),
    ...(extKeyUsage ? [{ name: 'extKeyUsage', ...Object.fromEntries(extKeyUsage.map((purpose) => [purpose, true])) }] : []),
    // GeneralName tag 1 = rfc822Name (RFC 5280 §4.2.1.6).
    { name: 'subjectAltName', altNames: [{ type: 1, value: opts.email }] },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuer.cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(issuer.key, forge.md.sha256.create());
  const certPem = keyType === 'ec' ? swapPublicKey(cert, privateKey, issuer.key) : forge.pki.certificateToPem(cert);
  return { certPem, keyPem };
}

/** Re-signs `cert` with the real (non-RSA) public key of `privateKey` in its TBSCertificate. */
function swapPublicKey(cert: forge.pki.Certificate, privateKey: crypto.KeyObject, issuerKey: forge.pki.rsa.PrivateKey): string {
  const tbs = (cert as unknown as { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate;
  const spki = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const fields = (tbs.value as forge.asn1.Asn1[]).map((field, i) => (i === TBS_SPKI_INDEX ? spki : Buffer.from(forge.asn1.toDer(field).getBytes(), 'binary')));
  const tbsDer = tlv(0x30, ...fields);
  const md = forge.md.sha256.create();
  md.update(tbsDer.toString('binary'));
  const signature = Buffer.from(issuerKey.sign(md), 'binary');
  const algorithm = tlv(0x30, tlv(0x06, Buffer.from(forge.asn1.oidToDer(SHA256_WITH_RSA).getBytes(), 'binary')), Buffer.from([0x05, 0x00]));
  const der = tlv(0x30, tbsDer, algorithm, tlv(0x03, Buffer.from([0]), signature));
  return forge.pem.encode({ type: 'CERTIFICATE', body: der.toString('binary') });
}

function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const length: number[] = [];
  for (let n = body.length; n > 0; n = Math.floor(n / 256)) length.unshift(n % 256);
  const lengthOctets = body.length < 0x80 ? [body.length] : [0x80 | length.length, ...length];
  return Buffer.concat([Buffer.from([tag, ...lengthOctets]), body]);
}

function utf8Attribute(name: string, value: string): forge.pki.CertificateField {
  // forge encodes the value as UTF-8 itself when told the tag is UTF8String.
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

function rsaKey(bits: number): { privateKey: crypto.KeyObject; keyPem: string } {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

function ecKey(): { privateKey: crypto.KeyObject; keyPem: string } {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

function spkiPem(privateKey: crypto.KeyObject): string {
  return crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
}

/** A positive random serial; RFC 5280 §4.1.2.2 allows up to 20 octets. */
function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}
