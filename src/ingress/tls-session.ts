// What TLS an inbound session actually negotiated, read from the live socket
// when the handshake finishes (smtp-server's onSecure). getCipher().version is the
// cipher's minimum protocol, not the negotiated one, hence getProtocol().
//
// cipherBits duplicates the idea of delivery/tls-facts.ts on purpose: ingress
// must not import delivery (DESIGN: dependencies point downward in the flow).
import type { TLSSocket } from 'node:tls';

export interface InboundTls {
  /** "TLSv1.3", as getProtocol() returns it. */
  readonly version: string;
  /** OpenSSL's cipher name, e.g. "TLS_AES_256_GCM_SHA384" or "ECDHE-RSA-AES256-GCM-SHA384". */
  readonly cipher: string;
  /** Symmetric key strength; null when the cipher is not one we know. */
  readonly bits: number | null;
}

/** First match wins; 3DES counts its effective 112 bits (NIST SP 800-57). */
const CIPHER_BITS: readonly (readonly [RegExp, number])[] = [
  [/NULL/, 0],
  [/3DES|DES-CBC3|DES_EDE/, 112],
  [/CHACHA20|AES[_-]?256|CAMELLIA[_-]?256|ARIA[_-]?256/, 256],
  [/AES[_-]?128|CAMELLIA[_-]?128|ARIA[_-]?128|SM4/, 128],
];

export function cipherBits(name: string): number | null {
  const upper = name.toUpperCase();
  for (const [pattern, bits] of CIPHER_BITS) if (pattern.test(upper)) return bits;
  return null;
}

export function readInboundTls(socket: TLSSocket): InboundTls {
  const cipher = socket.getCipher()?.name ?? 'unknown';
  return Object.freeze({ version: socket.getProtocol() ?? 'unknown', cipher, bits: cipherBits(cipher) });
}
