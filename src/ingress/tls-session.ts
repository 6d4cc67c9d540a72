// What TLS an inbound session actually negotiated, read from the live socket
// when the handshake finishes (smtp-server's onSecure). getCipher().version is the
// cipher's minimum protocol, not the negotiated one, hence getProtocol().
import type { TLSSocket } from 'node:tls';
import { cipherBits } from '../tls/cipher-bits.ts';

export interface InboundTls {
  /** "TLSv1.3", as getProtocol() returns it. */
  readonly version: string;
  /** OpenSSL's cipher name, e.g. "TLS_AES_256_GCM_SHA384" or "ECDHE-RSA-AES256-GCM-SHA384". */
  readonly cipher: string;
  /** Symmetric key strength; null when the cipher is not one we know. */
  readonly bits: number | null;
}

export function readInboundTls(socket: TLSSocket): InboundTls {
  const cipher = socket.getCipher()?.name ?? 'unknown';
  return Object.freeze({ version: socket.getProtocol() ?? 'unknown', cipher, bits: cipherBits(cipher) });
}
