/**
 * tls-refusals: the reasons a DeliveryRecord gives when a peer's TLS was refused, as
 * exact patterns, so a test pins *which* refusal happened instead of matching any
 * TLS word.
 *
 * A handshake the floor refused reads `TLS handshake failed: <OpenSSL's message>
 * (<Node's error code>)` (delivery/connection.ts). OpenSSL's message carries a thread
 * id and source file paths that change between builds, so only the start and the error
 * code, which names the TLS alert, are pinned.
 */

/** The peer speaks no TLS version at the floor (TLS alert 70). */
export const PROTOCOL_VERSION_ALERT = 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION';
/** The peer has no cipher suite at the floor (TLS alert 40). */
export const HANDSHAKE_FAILURE_ALERT = 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE';

/**
 * The whole reason for a handshake refused with `code`. `prefix` is what the attempt
 * puts before it (a drop says so); `suffix` matches what follows (the fallback chain's steps).
 */
export function handshakeRefused(code: string, around: { prefix?: string; suffix?: RegExp } = {}): RegExp {
  return new RegExp(`^${escape(around.prefix ?? '')}TLS handshake failed: \\S.* \\(${escape(code)}\\)${around.suffix?.source ?? ''}$`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
