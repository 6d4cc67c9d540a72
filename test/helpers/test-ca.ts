/**
 * test-ca: a throwaway certificate authority for TLS tests.
 *
 * The receiving MXs present certificates issued here, so a test can make the relay
 * trust exactly this CA (verification `ca` passes) or not (it fails), and can issue
 * certificates with the wrong name, expired ones, or self-signed ones to exercise each
 * certificate verdict. Keys come from Node's crypto (native RSA keygen, ~0.2 s for 2048
 * bits; forge's pure-JS keygen takes seconds) and node-forge builds and signs the X.509.
 * Leaf certificates share one key per size within a process, which keeps a suite that
 * starts dozens of MXs fast; each CA gets its own key, or two CAs would vouch for each
 * other's certificates.
 * Nothing here is secret or persistent: every process makes its own CA.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

export interface IssueOptions {
  commonName: string;
  /** DNS names and IP addresses for subjectAltName (IPs are recognised as such). */
  altNames?: string[];
  /** Validity from one hour ago (clock skew) to `days` from now. Default 30. */
  days?: number;
  /** Override the validity window, e.g. in the past for an expired certificate. */
  notBefore?: Date;
  notAfter?: Date;
  /** RSA modulus size. Default 2048. */
  keyBits?: number;
  /** A key of its own instead of the process-wide leaf key (e.g. to test key pinning). */
  freshKey?: boolean;
}

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export interface TestCa extends CertAndKey {
  /** A leaf (server) certificate signed by this CA. */
  issue(opts: IssueOptions): CertAndKey;
  /** A self-signed leaf certificate, not chained to any CA. */
  selfSigned(opts: IssueOptions): CertAndKey;
}

const DEFAULT_DAYS = 30;
const DEFAULT_KEY_BITS = 2048;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Backdating covers clock skew between the test process and the peer. */
const BACKDATE_MS = 60 * 60 * 1000;

interface KeyPair {
  forgeKey: forge.pki.rsa.PrivateKey;
  forgePublic: forge.pki.rsa.PublicKey;
  keyPem: string;
}

function generateKeyPair(bits: number): KeyPair {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  // PKCS#1 PEM is what forge's privateKeyFromPem reads.
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { forgeKey, forgePublic: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), keyPem };
}

const leafKeys = new Map<number, KeyPair>();
function leafKey(bits: number, fresh: boolean): KeyPair {
  if (fresh) return generateKeyPair(bits);
  let keys = leafKeys.get(bits);
  if (!keys) leafKeys.set(bits, (keys = generateKeyPair(bits)));
  return keys;
}

/** A positive random serial; RFC 5280 section 4.1.2.2 allows up to 20 octets. */
function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function validity(cert: forge.pki.Certificate, opts: { days?: number; notBefore?: Date; notAfter?: Date }): void {
  const now = Date.now();
  cert.validity.notBefore = opts.notBefore ?? new Date(now - BACKDATE_MS);
  cert.validity.notAfter = opts.notAfter ?? new Date(now + (opts.days ?? DEFAULT_DAYS) * DAY_MS);
}

function subjectAltNames(names: string[]): Array<{ type: number; value?: string; ip?: string }> {
  // GeneralName tags (RFC 5280 section 4.2.1.6): 2 = dNSName, 7 = iPAddress.
  return names.map((name) => (net.isIP(name) ? { type: 7, ip: name } : { type: 2, value: name }));
}

/** Builds and signs a leaf; `issuer` absent means self-signed. */
function makeLeaf(opts: IssueOptions, issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }): CertAndKey {
  const keys = leafKey(opts.keyBits ?? DEFAULT_KEY_BITS, opts.freshKey ?? false);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.forgePublic;
  cert.serialNumber = randomSerial();
  validity(cert, opts);
  const subject = [{ name: 'commonName', value: opts.commonName }];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: subjectAltNames(opts.altNames ?? [opts.commonName]) },
    { name: 'subjectKeyIdentifier' },
    ...(issuer ? [{ name: 'authorityKeyIdentifier', keyIdentifier: issuer.cert.generateSubjectKeyIdentifier().getBytes() }] : []),
  ]);
  cert.sign(issuer?.key ?? keys.forgeKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.keyPem };
}

export function selfSigned(opts: IssueOptions): CertAndKey {
  return makeLeaf(opts);
}

export function createTestCa(opts: { commonName?: string; days?: number; keyBits?: number } = {}): TestCa {
  const keys = generateKeyPair(opts.keyBits ?? DEFAULT_KEY_BITS);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.forgePublic;
  cert.serialNumber = randomSerial();
  validity(cert, { days: opts.days ?? 365 });
  const subject = [
    { name: 'commonName', value: opts.commonName ?? 'SealRelay Test CA' },
    { name: 'organizationName', value: 'SealRelay tests' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.forgeKey, forge.md.sha256.create());
  const issuer = { cert, key: keys.forgeKey };
  return {
    certPem: forge.pki.certificateToPem(cert),
    keyPem: keys.keyPem,
    issue: (leaf) => makeLeaf(leaf, issuer),
    selfSigned,
  };
}

let sharedCa: TestCa | undefined;
/** One CA per process for fixtures whose caller did not bring its own. */
export function sharedTestCa(): TestCa {
  sharedCa ??= createTestCa();
  return sharedCa;
}

let tempDir: string | undefined;
/**
 * Writes `content` to a file in this process's temp directory (made once with mkdtemp,
 * removed at exit) and returns its path, e.g. for a `ca_file:` in a test config.
 */
export function writeTemp(name: string, content: string | Buffer): string {
  if (!tempDir) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-test-'));
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    tempDir = dir;
  }
  const file = path.join(tempDir, path.basename(name));
  fs.writeFileSync(file, content);
  return file;
}
