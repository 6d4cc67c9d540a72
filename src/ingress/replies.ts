// Every refusal ingress sends, in one table, so that codes stay consistent and
// tests can name them. smtp-server's ENHANCEDSTATUSCODES extension stays off (its
// automatic code-per-reply mapping would contradict ours, e.g. 5.6.0 for a relay
// denial), so the RFC 3463 status is written into the text, as most MTAs do.
import { SmtpError } from '../smtp-error.ts';
import { isOutOfSpace } from './store-failure.ts';

export const replies = {
  /** RFC 3207 §4: on a listener that requires TLS, before STARTTLS. */
  starttlsFirst: () => new SmtpError(530, '5.7.0', 'mail', 'Must issue a STARTTLS command first'),
  /** RFC 4954 §6: the mechanism may only be used over an encrypted connection. */
  encryptionRequired: () => new SmtpError(538, '5.7.11', 'auth', 'Encryption required for requested authentication mechanism'),
  /** RFC 4954 §6: 454 4.7.0 temporary authentication failure (here: per-IP failure throttle). */
  authThrottled: () => new SmtpError(454, '4.7.0', 'auth', 'Too many failed authentication attempts, try again later'),
  /** RFC 4954 §6. */
  authInvalid: () => new SmtpError(535, '5.7.8', 'auth', 'Authentication credentials invalid'),
  /** No open relay: neither authenticated nor in relay_networks (Postfix's wording). */
  relayDenied: () => new SmtpError(554, '5.7.1', 'mail', 'Relay access denied'),
  /** RFC 5321 §4.5.3.1.10: the client should send the rest in a later transaction. */
  tooManyRecipients: (limit: number) => new SmtpError(452, '4.5.3', 'rcpt', `Too many recipients (limit ${limit} per message)`),
  tooManyConnections: () => new SmtpError(421, '4.7.0', 'connect', 'Too many connections from your address, try again later'),
  /** RFC 1870 §6.2 / RFC 3463 X.3.4. */
  messageTooBig: (limit: number) => new SmtpError(552, '5.3.4', 'data', `Message size exceeds fixed maximum message size of ${limit} bytes`),
  /** Postfix smtpd_forbid_bare_newline=reject wording; see data-reader.ts for why. */
  bareNewline: () => new SmtpError(550, '5.5.2', 'data', 'Bare <LF> or <CR> not allowed, lines must end with <CR><LF>'),
  /** See data-reader.ts for why 552 and not 500. */
  lineTooLong: (limit: number) => new SmtpError(552, '5.6.0', 'data', `Message line too long (limit ${limit} bytes including CRLF)`),
  /** A command line that is not valid UTF-8 (Postfix's code): decoding it would change what the client sent. */
  invalidUtf8: () => new SmtpError(500, '5.5.2', 'mail', 'Invalid UTF-8 in command'),
  /** RFC 6531 §3.6.4 / RFC 6533: an 8-bit address needs SMTPUTF8 on MAIL FROM. */
  needsSmtputf8: () => new SmtpError(553, '5.6.7', 'mail', 'Must declare SMTPUTF8 to send an address with non-ASCII characters'),
  /** RFC 5321 §4.1.1.11: a MAIL/RCPT parameter we do not offer. */
  unknownParameter: (keyword: string, stage: 'mail' | 'rcpt') => new SmtpError(555, '5.5.4', stage, `Unsupported parameter ${keyword}`),
  /** RFC 5321 §4.5.1 requires accepting <postmaster>; without ingress.postmaster there is nowhere to deliver it. */
  postmasterUnset: () => new SmtpError(550, '5.1.1', 'rcpt', '<postmaster>: no postmaster address is configured here (ingress.postmaster)'),
  /** Domains that no MX lookup can serve: refused now rather than deferred for days. */
  unroutableDomain: (address: string, why: string) => new SmtpError(550, '5.1.2', 'rcpt', `<${address}>: Recipient address rejected: ${why}, and no route in delivery.routes names it`),
  /** Postfix's reply for a message over hop_count_limit. */
  tooManyHops: () => new SmtpError(554, '5.4.0', 'data', 'Too many hops'),
  /** Our own Received stamp names a message still in our queue: it came back to us. */
  mailLoop: (queueId: string) => new SmtpError(554, '5.4.6', 'data', `Mail loop detected: this message is already queued here as ${queueId}`),
  /** ingress.max_connections across all clients. */
  tooManyConnectionsTotal: () => new SmtpError(421, '4.7.0', 'connect', 'Too many connections, try again later'),
  /** A line over 998 octets that mime/conform.ts cannot repair without guessing (no whitespace to fold at, malformed MIME). */
  lineUnfixable: () => new SmtpError(552, '5.6.0', 'data', 'Message line too long and it cannot be re-encoded (a header line without spaces, or malformed MIME)'),
  queueFailed: () => new SmtpError(451, '4.3.0', 'queue', 'Temporary failure queueing the message, try again later'),
  /** RFC 3463 X.3.1 "mail system full", in Postfix's words: at MAIL FROM (ingress.queue_minfree_bytes) or when the commit found no room. */
  insufficientStorage: (stage: 'mail' | 'queue') => new SmtpError(452, '4.3.1', stage, 'Insufficient system storage'),
  /** A commit that failed: 452 4.3.1 when the store had no room (SQLITE_FULL, ENOSPC), else 451 4.3.0. */
  storeFailed: (err: unknown): SmtpError => (isOutOfSpace(err) ? replies.insufficientStorage('queue') : replies.queueFailed()),
  shuttingDown: () => new SmtpError(421, '4.3.2', 'connect', 'Service shutting down, try again later'),
} as const;

/** smtp-server reads `responseCode` and sends `message` as the reply text. */
export type ServerError = Error & { responseCode: number };

export function toServerError(err: SmtpError): ServerError {
  return Object.assign(new Error(replyText(err)), { responseCode: err.code });
}

/** "5.7.1 Relay access denied": the text after the reply code. */
export function replyText(err: SmtpError): string {
  return `${err.enhanced} ${err.message}`;
}
