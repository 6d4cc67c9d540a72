// The development certificate: so that a fresh checkout offers STARTTLS and
// implicit TLS without any setup, a self-signed pair is generated on first start
// when BOTH files are missing. Anything else that looks wrong (one file missing,
// unparsable PEM, a key that does not match the certificate) is an error naming
// the file: silently regenerating would hide a broken production deployment.
//
// The key pair comes from node:crypto (native and fast); node-forge only builds
// and signs the X.509 structure, which node:crypto cannot do.
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIP } from 'node:net';
import forge from 'node-forge';

const RSA_BITS = 2048;
const VALIDITY_DAYS = 365;
/** notBefore is backdated so that a client with a slightly slow clock accepts the certificate. */
const BACKDATE_MS = 60 * 60 * 1000;

export interface Certificate {
  readonly cert: string;
  readonly key: string;
  /** True when this call created the pair. */
  readonly generated: boolean;
}

export function ensureDevCertificate(certFile: string, keyFile: string, hostname: string): Certificate {
  const haveCert = existsSync(certFile);
  const haveKey = existsSync(keyFile);
  if (!haveCert && !haveKey) {
    const { cert, key } = generateSelfSigned(hostname);
    writeNew(keyFile, key, 0o600);
    writeNew(certFile, cert, 0o644);
    return { cert, key, generated: true };
  }
  if (!haveCert) throw new Error(`TLS certificate file ${certFile} is missing but its key ${keyFile} exists; restore it, or remove both to generate a development pair`);
  if (!haveKey) throw new Error(`TLS key file ${keyFile} is missing but its certificate ${certFile} exists; restore it, or remove both to generate a development pair`);
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  checkPair(cert, key, certFile, keyFile);
  return { cert, key, generated: false };
}

/** Throws, naming the file, unless `cert` parses and `key` is its private key. */
export function checkPair(cert: string, key: string, certFile: string, keyFile: string): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`TLS certificate file ${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`TLS key file ${keyFile} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`TLS key file ${keyFile} does not match the certificate in ${certFile}`);
}

export function generateSelfSigned(hostname: string, now = new Date()): { cert: string; key: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: RSA_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + VALIDITY_DAYS * 24 * 60 * 60 * 1000);
  const subject = [
    { name: 'commonName', value: hostname },
    { name: 'organizationName', value: 'SealRelay development certificate' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: subjectAltNames(hostname) },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: privateKey };
}

/** SAN: our hostname plus the loopback names apps use in development. */
function subjectAltNames(hostname: string): { type: number; value?: string; ip?: string }[] {
  const names = [hostname, 'localhost', '127.0.0.1', '::1'];
  return [...new Set(names.map((n) => n.toLowerCase()))].map((name) =>
    // RFC 5280 §4.2.1.6: dNSName is type 2, iPAddress type 7.
    isIP(name) ? { type: 7, ip: name } : { type: 2, value: name },
  );
}

/** Writes a file that must not exist yet, atomically (temp + rename) and with `mode`. */
function writeNew(file: string, text: string, mode: number): void {
  mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
}
