// What TLS an attempt actually got, read from the live socket of that attempt,
// and how we ask for it. The facts land verbatim in the DeliveryRecord, so they
// are never inferred from configuration: `cipher` is OpenSSL's name exactly as
// tls.TLSSocket#getCipher().name returns it, which is also what smtp-server puts
// in session.tlsOptions.name on the receiving side — sender and receiver compare
// equal. The floor (DESIGN.md) is checked on these facts after the handshake.
// Certificate verification is never done by OpenSSL's rejectUnauthorized: the
// handshake is allowed to finish so that the record shows what was negotiated, and
// verify.ts judges the certificate afterwards.
import fs from 'node:fs';
import net from 'node:net';
import type tls from 'node:tls';
import type { Verification } from '../config/schema.ts';
import type { Floor } from '../policy/decision.ts';
import { cipherBits } from '../tls/cipher-bits.ts';
import type { TlsFacts } from './record.ts';

export type { TlsFacts };

/** Protocol names as getProtocol() returns them, weakest first. Anything else ranks below all. */
const PROTOCOL_RANK: Readonly<Record<string, number>> = {
  SSLv2: 1,
  SSLv3: 2,
  TLSv1: 3,
  'TLSv1.1': 4,
  'TLSv1.2': 5,
  'TLSv1.3': 6,
};


/** Cipher families no floor accepts whatever their key size (RFC 7465 for RC4; NULL and export are not encryption). */
const NEVER_ACCEPTABLE = /NULL|EXP|RC4|MD5/;


/** "CN=mx1.example.test" style, attributes in certificate order; multi-valued attributes repeat. */
function formatSubject(subject: tls.Certificate | undefined): string | null {
  if (!subject) return null;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(subject)) {
    for (const v of Array.isArray(value) ? value : [value]) parts.push(`${key}=${String(v)}`);
  }
  return parts.length ? parts.join(', ') : null;
}

/** OpenSSL's "Mar  5 12:00:00 2027 GMT" as ISO 8601; null when absent or unreadable. */
function isoDate(text: string | undefined): string | null {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** The facts of a finished handshake. Call it on the socket that carries the session, after 'secureConnect'. */
export function readTlsFacts(socket: tls.TLSSocket): TlsFacts {
  const cipher = socket.getCipher();
  const cert = socket.getPeerCertificate(false);
  // An empty object means "no certificate" (e.g. an anonymous suite).
  const hasCert = cert && Object.keys(cert).length > 0;
  const authorizationError = socket.authorizationError as unknown;
  return Object.freeze({
    protocol: socket.getProtocol() ?? 'unknown',
    cipher: cipher?.name ?? 'unknown',
    // An unknown cipher counts 0 bits: never above a floor.
    bits: (cipher?.name ? cipherBits(cipher.name) : null) ?? 0,
    authorized: socket.authorized === true,
    authorizationError: authorizationError === undefined || authorizationError === null ? null : authorizationError instanceof Error ? authorizationError.message : String(authorizationError),
    peerCertSubject: hasCert ? formatSubject(cert.subject) : null,
    peerCertFingerprint256: hasCert ? (cert.fingerprint256 ?? null) : null,
    peerCertNotAfter: hasCert ? isoDate(cert.valid_to) : null,
  });
}

/** null when the negotiated TLS meets the floor, else why not (for the record and the log). */
export function meetsFloor(facts: Pick<TlsFacts, 'protocol' | 'cipher' | 'bits'>, floor: Floor): string | null {
  const rank = PROTOCOL_RANK[facts.protocol] ?? 0;
  if (rank < (PROTOCOL_RANK[floor.minVersion] ?? Infinity)) return `protocol ${facts.protocol} below floor ${floor.minVersion}`;
  if (NEVER_ACCEPTABLE.test(facts.cipher.toUpperCase())) return `cipher ${facts.cipher} is never acceptable`;
  if (facts.bits < floor.minCipherBits) return `cipher ${facts.cipher} has ${facts.bits} bits, floor ${floor.minCipherBits}`;
  return null;
}

/**
 * TLS 1.2 suites: OpenSSL's HIGH set (AES, CHACHA20, CAMELLIA, ARIA; 3DES left it in
 * OpenSSL 1.1.0) minus everything without authentication or encryption or with a
 * broken primitive. RSA key exchange stays: many MXs on the Internet still need it.
 */
const TLS12_CIPHERS_128 = 'HIGH:!aNULL:!eNULL:!EXPORT:!RC4:!3DES:!DES:!MD5:!PSK:!SRP';
/** A 256-bit floor also drops the 128-bit TLS 1.2 suites... */
const TLS12_EXCLUDE_128 = ':!AES128:!CAMELLIA128:!ARIA128:!SEED:!IDEA';
/** ...and names the TLS 1.3 suites (Node routes TLS_* names to SSL_CTX_set_ciphersuites). */
const TLS13_SUITES_256 = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/**
 * Options for the client side of STARTTLS. `rejectUnauthorized` is always false: see
 * the module comment. The CA bundle is still loaded, so `authorized` tells whether
 * the chain and name verified against it. SNI names the MX host, never an IP literal
 * (RFC 6066 §3 forbids literal addresses in server_name).
 */
export function tlsClientOptions(
  floor: Floor,
  _verification: Verification,
  opts: { caFile?: string | null; servername?: string | null } = {},
): tls.ConnectionOptions {
  const ciphers = floor.minCipherBits > 128 ? `${TLS13_SUITES_256}:${TLS12_CIPHERS_128}${TLS12_EXCLUDE_128}` : TLS12_CIPHERS_128;
  const options: tls.ConnectionOptions = {
    // TLS_VERSIONS only has 1.2 and 1.3, so SSLv2/v3, TLS 1.0 and 1.1 can never be negotiated.
    minVersion: floor.minVersion,
    ciphers,
    rejectUnauthorized: false,
  };
  if (opts.caFile) options.ca = fs.readFileSync(opts.caFile);
  if (opts.servername && !net.isIP(opts.servername)) options.servername = opts.servername;
  return options;
}
