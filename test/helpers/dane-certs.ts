/**
 * dane-certs: certificate chains for DANE tests, made by the openssl command line.
 *
 * test-ca.ts makes one CA and its leaves with node-forge; DANE needs more shapes:
 * intermediates, every certificate with a key of its own (an SPKI digest must tell
 * two certificates apart), leaves issued by a certificate that is not a CA, and a
 * forged CA that copies another CA's name and key identifier, so that only the
 * signature tells them apart. Certificates made here come from a different tool
 * than the code under test (node:crypto), so the two cannot share a mistake.
 * Keys are EC P-256: openssl makes them in milliseconds.
 * Nothing here is secret or persistent: files live in a temp dir removed at exit.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface DaneCert {
  readonly der: Buffer;
  readonly pem: string;
  readonly keyPem: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** subjectKeyIdentifier as openssl writes it (AA:BB:…), CAs only. */
  readonly skid: string | null;
  /** The SubjectPublicKeyInfo, DER: what a selector SPKI(1) record covers. */
  readonly spki: Buffer;
}

export interface CaOptions {
  /** Subject CN; the subject also carries O=SealRelay DANE tests. */
  commonName: string;
  /** Signed by this CA (an intermediate); absent: a self-signed root. */
  issuer?: DaneCert;
  /** Validity from now to `days` from now. Default 365. */
  days?: number;
  /** Copy this CA's subjectKeyIdentifier (a forgery that only a signature check can tell apart). */
  skidOf?: DaneCert;
}

export interface LeafOptions {
  commonName: string;
  /** subjectAltName dNSNames; an empty list leaves the extension out (CN only). Default: [commonName]. */
  dnsNames?: readonly string[];
  /** Signed by this certificate (need not be a CA); absent: self-signed. */
  issuer?: DaneCert;
  /** Validity from now to `days` from now. Default 30. */
  days?: number;
  /** keyUsage bits. Default 'digitalSignature'; e.g. 'digitalSignature, keyCertSign' for an end entity that claims it may sign certificates. */
  keyUsage?: string;
}

let workDir: string | undefined;
function dir(): string {
  if (!workDir) {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-dane-'));
    process.once('exit', () => fs.rmSync(made, { recursive: true, force: true }));
    workDir = made;
  }
  return workDir;
}

let counter = 0;
function openssl(args: readonly string[]): Buffer {
  return execFileSync('openssl', args, { cwd: dir(), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `req` needs a config with a distinguished_name section even when -subj gives the name. */
function minimalConfig(): string {
  const file = path.join(dir(), 'req.cnf');
  if (!fs.existsSync(file)) fs.writeFileSync(file, '[req]\ndistinguished_name = dn\n[dn]\n');
  return file;
}

function make(subject: string, extensions: string[], issuer: DaneCert | undefined, days: number): DaneCert {
  const base = path.join(dir(), `c${++counter}`);
  const keyFile = `${base}.key`;
  const certFile = `${base}.pem`;
  fs.writeFileSync(`${base}.ext`, `[ext]\n${extensions.join('\n')}\n`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  openssl(['req', '-new', '-key', keyFile, '-subj', subject, '-config', minimalConfig(), '-out', `${base}.csr`]);
  const signer = issuer ? ['-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial', `0x${crypto.randomBytes(12).toString('hex')}`] : ['-signkey', keyFile];
  openssl(['x509', '-req', '-in', `${base}.csr`, ...signer, '-days', String(days), '-sha256', '-extfile', `${base}.ext`, '-extensions', 'ext', '-out', certFile]);
  const skidLine = extensions.find((line) => line.startsWith('subjectKeyIdentifier='));
  return {
    // DER and SPKI from openssl too, not from node:crypto that the code under test uses.
    der: openssl(['x509', '-in', certFile, '-outform', 'DER']),
    pem: fs.readFileSync(certFile, 'utf8'),
    keyPem: fs.readFileSync(keyFile, 'utf8'),
    certFile,
    keyFile,
    skid: skidLine ? skidLine.slice('subjectKeyIdentifier='.length) : null,
    spki: openssl(['pkey', '-in', keyFile, '-pubout', '-outform', 'DER']),
  };
}

function randomSkid(): string {
  return crypto.randomBytes(20).toString('hex').toUpperCase().match(/../g)!.join(':');
}

export function makeCa(opts: CaOptions): DaneCert {
  const extensions = [
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    `subjectKeyIdentifier=${opts.skidOf?.skid ?? randomSkid()}`,
  ];
  if (opts.issuer) extensions.push('authorityKeyIdentifier = keyid');
  return make(`/O=SealRelay DANE tests/CN=${opts.commonName}`, extensions, opts.issuer, opts.days ?? 365);
}

export function makeLeaf(opts: LeafOptions): DaneCert {
  const dnsNames = opts.dnsNames ?? [opts.commonName];
  const extensions = ['basicConstraints = CA:FALSE', `keyUsage = critical, ${opts.keyUsage ?? 'digitalSignature'}`, 'extendedKeyUsage = serverAuth'];
  if (dnsNames.length) extensions.push(`subjectAltName = ${dnsNames.map((name) => `DNS:${name}`).join(', ')}`);
  if (opts.issuer?.skid) extensions.push('authorityKeyIdentifier = keyid');
  return make(`/CN=${opts.commonName}`, extensions, opts.issuer, opts.days ?? 30);
}

/** TLSA certificate association data, computed independently of src/tls/dane.ts. */
export function association(cert: DaneCert, selector: 0 | 1, matchingType: 0 | 1 | 2): Buffer {
  const data = selector === 0 ? cert.der : cert.spki;
  if (matchingType === 0) return data;
  return crypto.createHash(matchingType === 1 ? 'sha256' : 'sha512').update(data).digest();
}
