// One SMTP session with one MX address, on nodemailer's SMTPConnection.
//
// Policy:
// - connect to the address, name the MX host in SNI and in certificate checks;
// - STARTTLS whenever the host offers it (unless the mode is `none`), with our floor
//   in the handshake options; a failed handshake fails this host, whatever the mode —
//   the host offered TLS, so we never quietly continue in plaintext (nodemailer's
//   opportunisticTLS stays off). nodemailer's requireTLS is not used either: it sends
//   STARTTLS even when the host did not advertise it, so "not offered" would look
//   like "handshake failed";
// - a usable TLSA set for the host (DANE, RFC 7672) makes STARTTLS mandatory whatever
//   the mode, and the certificate is then judged by DANE alone (verify.ts verifyDane);
// - once the session is up, the TLS facts are read from this session's own socket,
//   then the floor and the certificate are judged (tls-facts.ts, verify.ts). Any
//   refusal, and plaintext where TLS is required, closes the session before MAIL FROM
//   and throws NoAcceptableTls with what was seen;
// - transaction errors keep the server's reply code and enhanced status; a lost
//   connection is 451 4.4.2 (RFC 3463 "bad connection").
// The nodemailer connection never leaves this module. What we read from its
// internals is marked "nodemailer internal" below.
import { isAscii } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPError } from 'nodemailer/lib/smtp-connection';
import type { Verification } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Floor } from '../policy/decision.ts';
import { parseReply, SmtpError, type SmtpStage } from '../smtp-error.ts';
import type { DaneRequirement } from './dane-target.ts';
import type { TlsFacts } from './record.ts';
import type { MxTarget } from './resolve-mx.ts';
import { meetsFloor, readTlsFacts, tlsClientOptions } from './tls-facts.ts';
import { NoAcceptableTls, verifyDane, verifyPeer } from './verify.ts';

export { NoAcceptableTls, type NoTlsKind } from './verify.ts';

export interface SessionTimeouts {
  /** TCP connect, in ms (delivery.connect_timeout_ms). */
  readonly connectMs: number;
  /** Connect to the 220 greeting and, after it, each of EHLO and STARTTLS, in ms. */
  readonly greetingMs: number;
  /** Inactivity on an open session, in ms (RFC 5321 §4.5.3.2 asks for minutes). */
  readonly socketMs: number;
}

export interface SessionOptions {
  /** Our EHLO name (server.hostname). */
  readonly name: string;
  readonly floor: Floor;
  readonly verification: Verification;
  /** PEM bundle for `verification: ca`; system roots when absent. */
  readonly caFile?: string | null;
  readonly timeouts: SessionTimeouts;
  /** The decision's mode needs TLS (forced, tls-exclusive, or a domain known to offer TLS). */
  readonly requireTls: boolean;
  /** False for mode `none`: STARTTLS is ignored even when offered. */
  readonly allowTls: boolean;
  /**
   * The host's usable TLSA set (dane-target.ts): TLS becomes mandatory whatever the mode,
   * and the certificate is judged by DANE instead of `verification` (RFC 7672 §2.2, §3).
   */
  readonly dane?: DaneRequirement | null;
  readonly logger: Logger;
}

export interface RecipientResult {
  readonly accepted: boolean;
  readonly code: number | null;
  readonly enhanced: string | null;
  /** The reply that decided this recipient: its RCPT reply if refused, else the reply to the message. */
  readonly response: string;
}

export interface SendResult {
  readonly perRecipient: ReadonlyMap<string, RecipientResult>;
  /** The server's reply to the message (or to the envelope when no recipient was accepted). */
  readonly response: string;
}

/** One transaction's envelope; `from: ''` is the null sender (RFC 5321 §4.5.5). */
export interface MailEnvelope {
  readonly from: string;
  readonly to: readonly string[];
  /** Pass REQUIRETLS on in MAIL FROM (RFC 8689); the session must run over TLS and the host list it. */
  readonly requireTls?: boolean;
}

export interface Session {
  readonly mx: MxTarget;
  /** Did the host advertise STARTTLS. */
  readonly starttlsOffered: boolean;
  /** Negotiated TLS, read from this session's socket; null for a plaintext session. */
  readonly tls: TlsFacts | null;
  /** The TLSA record (formatTlsa) the certificate matched, when the session was opened under DANE. */
  readonly daneMatched?: string | null;
  /** The EHLO of this session (after STARTTLS, the TLS one) listed REQUIRETLS (RFC 8689). */
  readonly requiretlsOffered?: boolean;
  /** False once the connection is gone or broken; a usable session takes another transaction. */
  readonly usable: boolean;
  /** Transactions that reached the end of DATA (or ended with every recipient refused). */
  readonly transactions: number;
  /** One mail transaction; `from: ''` is the null sender (RFC 5321 §4.5.5). */
  send(envelope: MailEnvelope, body: Buffer): Promise<SendResult>;
  /** RSET (RFC 5321 §4.1.1.5), for reuse after a transaction that did not end cleanly. */
  reset(): Promise<void>;
  /** QUIT and wait (bounded) for the server to close. */
  quit(): Promise<void>;
  /** Drop the connection at once. */
  close(): void;
}

/** How long quit() waits for the server's reply and close before dropping the connection. */
const QUIT_TIMEOUT_MS = 2000;

/** Internals of nodemailer's SMTPConnection we rely on (present in 10.x; see the module comment). */
interface ConnectionInternals {
  /** nodemailer internal: EHLO keywords of the session (after STARTTLS, of the TLS session); unset after HELO. */
  _ehloLines?: string[];
}

function responseOf(err: SMTPError): string | null {
  return typeof err.response === 'string' && err.response ? err.response : null;
}

/** Code and enhanced status of a reply; an absent enhanced code defaults to X.0.0 (421 → 4.4.2, the connection goes). */
function statusOf(response: string): { code: number; enhanced: string } | null {
  const { code, enhanced } = parseReply(response);
  if (code === null || code < 400 || code > 599) return null;
  return { code, enhanced: enhanced && enhanced[0] === String(code)[0] ? enhanced : code === 421 ? '4.4.2' : `${String(code)[0]}.0.0` };
}

function describe(err: SMTPError): string {
  const extra = err.originalCode ?? err.timeoutType;
  // OpenSSL's messages end in a newline; records and logs want one line.
  return `${err.message.replace(/\s+/g, ' ').trim()}${extra ? ` (${extra})` : ''}`;
}

/** Maps a failure before the session was ready. */
function setupError(err: SMTPError, stage: SmtpStage, mx: MxTarget): SmtpError {
  const where = `${mx.host} [${mx.ip}]:${mx.port}`;
  const response = responseOf(err);
  const status = response ? statusOf(response) : null;
  if (status) return new SmtpError(status.code, status.enhanced, stage, `${where} said: ${response}`, `${stage} at ${where}: ${response}`);
  // RFC 3463: 4.4.1 no answer from host, 4.4.2 bad connection.
  const enhanced = stage === 'connect' ? '4.4.1' : '4.4.2';
  return new SmtpError(451, enhanced, stage, `connection to ${where} failed`, `${stage} at ${where}: ${describe(err)}`);
}

/** Maps a failure during a transaction. */
function transactionError(err: SMTPError, connectionAlive: boolean): SmtpError {
  // Not sent: the REQUIRETLS demand could not be passed on (RFC 8689 §5, X.7.30).
  if (err.code === 'EREQUIRETLS') return new SmtpError(550, '5.7.30', 'mail', 'REQUIRETLS support required', `mail: ${describe(err)}`);
  const stage: SmtpStage = err.command === 'MAIL FROM' ? 'mail' : err.command === 'RCPT TO' ? 'rcpt' : 'data';
  const response = responseOf(err);
  const status = response ? statusOf(response) : null;
  if (status) return new SmtpError(status.code, status.enhanced, stage, response!, `${stage}: ${response}`);
  if (!connectionAlive || ['ECONNECTION', 'ESOCKET', 'ETIMEDOUT'].includes(err.code ?? '')) {
    return new SmtpError(451, '4.4.2', stage, 'connection lost during the transaction', `${stage}: ${describe(err)}`);
  }
  // Errors nodemailer raises before sending anything (e.g. an address it will not put on the wire).
  return new SmtpError(554, '5.6.0', stage, 'message could not be sent', `${stage}: ${describe(err)}`);
}

function recipientResult(accepted: boolean, response: string): RecipientResult {
  const { code, enhanced } = parseReply(response);
  return { accepted, code, enhanced, response };
}

class SmtpSession implements Session {
  readonly mx: MxTarget;
  readonly starttlsOffered: boolean;
  readonly tls: TlsFacts | null;
  readonly daneMatched: string | null;
  transactions = 0;
  #conn: SMTPConnection;
  #ended = false;
  #busy = false;
  /** A transaction may still be open on the server side: RSET before the next one. */
  #dirty = false;

  constructor(conn: SMTPConnection, mx: MxTarget, starttlsOffered: boolean, facts: TlsFacts | null, daneMatched: string | null = null) {
    this.#conn = conn;
    this.mx = mx;
    this.starttlsOffered = starttlsOffered;
    this.tls = facts;
    this.daneMatched = daneMatched;
    conn.on('end', () => {
      this.#ended = true;
    });
  }

  get usable(): boolean {
    const socket = this.#conn._socket;
    return !this.#ended && !this.#conn.destroyed && !!socket && !socket.destroyed && socket.writable;
  }

  /** RFC 8689: did this session's EHLO (the one after STARTTLS) list REQUIRETLS. nodemailer internal: _ehloLines. */
  get requiretlsOffered(): boolean {
    return ((this.#conn as unknown as ConnectionInternals)._ehloLines ?? []).some((line) => /^REQUIRETLS\b/i.test(line));
  }

  async send(envelope: MailEnvelope, body: Buffer): Promise<SendResult> {
    if (this.#busy) throw new Error('session is busy with another command');
    if (!envelope.to.length) throw new TypeError('send() needs at least one recipient');
    if (!this.usable) throw new SmtpError(451, '4.4.2', 'mail', 'connection lost', `session with ${this.mx.host} is closed`);
    if (this.#dirty) await this.reset();
    this.#busy = true;
    try {
      return await this.#transaction(envelope, body);
    } finally {
      this.#busy = false;
    }
  }

  #transaction(envelope: MailEnvelope, body: Buffer): Promise<SendResult> {
    const to = [...envelope.to];
    return new Promise<SendResult>((resolve, reject) => {
      this.#conn.send(
        {
          from: envelope.from,
          to,
          size: body.length,
          // RFC 6152: declare 8-bit content when there is any (when the server offers 8BITMIME).
          use8BitMime: !isAscii(body),
          // RFC 8689: MAIL FROM … REQUIRETLS; nodemailer refuses (EREQUIRETLS) on plaintext or when the host does not list it.
          ...(envelope.requireTls ? { requireTLSExtensionEnabled: true } : {}),
        },
        body,
        (err, info) => {
          if (err) {
            this.#dirty = true;
            // Every recipient refused: nodemailer fails the send, but for us these are per-recipient results.
            if (err.code === 'EENVELOPE' && err.rejectedErrors?.length) {
              this.transactions++;
              const results = new Map<string, RecipientResult>();
              for (const rcpt of to) {
                const refusal = err.rejectedErrors.find((e) => e.recipient === rcpt);
                results.set(rcpt, recipientResult(false, (refusal && responseOf(refusal)) ?? responseOf(err) ?? err.message));
              }
              resolve({ perRecipient: results, response: responseOf(err) ?? err.message });
              return;
            }
            reject(transactionError(err, this.usable));
            return;
          }
          this.transactions++;
          const results = new Map<string, RecipientResult>();
          const refusals = new Map((info.rejectedErrors ?? []).map((e) => [e.recipient, e]));
          for (const rcpt of to) {
            const refusal = refusals.get(rcpt);
            if (refusal) results.set(rcpt, recipientResult(false, responseOf(refusal) ?? refusal.message));
            else if (info.accepted.includes(rcpt)) results.set(rcpt, recipientResult(true, info.response));
            // Cannot happen with SMTP (every RCPT gets a reply); counted as a temporary failure if it does.
            else results.set(rcpt, { accepted: false, code: 451, enhanced: '4.4.2', response: 'no reply for this recipient' });
          }
          resolve({ perRecipient: results, response: info.response });
        },
      );
    });
  }

  reset(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#conn.reset((err) => {
        if (err) {
          reject(transactionError(err, this.usable));
          return;
        }
        this.#dirty = false;
        resolve();
      });
    });
  }

  quit(): Promise<void> {
    return shutdown(this.#conn);
  }

  close(): void {
    this.#conn.close();
  }
}

/** QUIT, then wait for the close (bounded: a peer that never closes is cut off). Never rejects. */
export function shutdown(conn: SMTPConnection, timeoutMs = QUIT_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve) => {
    const socket = conn._socket;
    if (conn.destroyed || !socket || socket.destroyed) {
      conn.close();
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      conn.close();
      resolve();
    }, timeoutMs);
    conn.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
    conn.quit();
  });
}

/** Opens a session with one MX address. Throws SmtpError (stage connect/greeting/ehlo) or NoAcceptableTls. */
export async function openSession(target: MxTarget, opts: SessionOptions): Promise<Session> {
  const mx: MxTarget = Object.freeze({ host: target.host, ip: target.ip, port: target.port, preference: target.preference });
  // RFC 7672 §2.2: a usable TLSA set makes TLS mandatory for this host, whatever the mode.
  const requireTls = opts.requireTls || !!opts.dane;
  let tlsOptions: tls.ConnectionOptions;
  try {
    tlsOptions = tlsClientOptions(opts.floor, opts.verification, { caFile: opts.caFile ?? null, servername: mx.host });
  } catch (err) {
    // An unreadable CA bundle is our problem, not the peer's: temporary, and loud in the reason.
    throw new SmtpError(451, '4.3.5', 'tls-policy', 'local TLS configuration error', `cannot read tls.ca_file: ${(err as Error).message}`);
  }
  const conn = new SMTPConnection({
    host: mx.ip,
    port: mx.port,
    secure: false,
    // Setting servername also makes nodemailer's tls.connect check the MX name (→ `authorized`).
    servername: net.isIP(mx.host) ? undefined : mx.host,
    name: opts.name,
    // Never requireTLS (see the module comment); requireTls wins over allowTls=false.
    ignoreTLS: !opts.allowTls && !requireTls,
    opportunisticTLS: false,
    // nodemailer's connectionTimeout bounds the whole setup: TCP connect, greeting and the STARTTLS handshake.
    connectionTimeout: opts.timeouts.connectMs + opts.timeouts.greetingMs,
    greetingTimeout: opts.timeouts.greetingMs,
    socketTimeout: opts.timeouts.socketMs,
    tls: tlsOptions,
    logger: false,
  });
  // An 'error' event without a listener would crash the process; failures are reported through the promises.
  let lastError: SMTPError | null = null;
  conn.on('error', (err: SMTPError) => {
    lastError = err;
  });

  const log = opts.logger.child({ mx: mx.host, ip: mx.ip, port: mx.port });
  const fail = async (error: SmtpError): Promise<never> => {
    log.debug({ event: 'delivery.connection_failed', code: error.code, enhanced: error.enhanced, stage: error.stage, reason: error.reason }, 'session refused');
    await shutdown(conn);
    throw error;
  };

  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: SMTPError) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      conn.once('error', settle);
      conn.once('end', () => settle(lastError ?? Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' })));
      conn.connect((err) => settle(err));
    });
  } catch (caught) {
    const err = caught as SMTPError;
    // nodemailer internal: `upgrading` stays true when the TLS handshake after STARTTLS failed;
    // a STARTTLS command refused by the server is an ETLS error with command STARTTLS.
    const tlsFailed = conn.upgrading === true || err.code === 'ETLS' || err.command === 'STARTTLS' || err.timeoutType === 'UPGRADE_TIMEOUT';
    if (tlsFailed) {
      return fail(new NoAcceptableTls('handshake-failed', { mx, starttlsOffered: true, tls: null, reason: `TLS handshake failed: ${describe(err)}` }));
    }
    const stage: SmtpStage = err.command === 'EHLO' || err.command === 'HELO' ? 'ehlo' : conn.stage === 'init' ? 'connect' : 'greeting';
    return fail(setupError(err, stage, mx));
  }

  const socket = conn._socket;
  const facts = conn.secure && socket instanceof tls.TLSSocket ? readTlsFacts(socket) : null;
  // After a successful STARTTLS the new EHLO does not list STARTTLS again; before it,
  // nodemailer only skips an advertised STARTTLS when ignoreTLS is set, and the EHLO lines show it.
  const ehloLines = (conn as unknown as ConnectionInternals)._ehloLines ?? [];
  const starttlsOffered = facts !== null || ehloLines.some((line) => /^STARTTLS\b/i.test(line));

  if (facts && socket instanceof tls.TLSSocket) {
    const belowFloor = meetsFloor(facts, opts.floor);
    if (belowFloor) return fail(new NoAcceptableTls('below-floor', { mx, starttlsOffered, tls: facts, reason: belowFloor }));
    if (opts.dane) {
      const match = verifyDane(opts.dane, socket.getPeerCertificate(true));
      if (!match.ok) return fail(new NoAcceptableTls('verify-failed', { mx, starttlsOffered, tls: facts, reason: `DANE: certificate of ${mx.host} matches no usable TLSA record (${match.reason})` }));
      // A verification besides DANE (an MTA-STS enforce policy) must hold as well.
      const alsoRefused = opts.verification === 'dane' ? null : verifyPeer(opts.verification, facts, socket.getPeerCertificate(true), mx.host);
      if (alsoRefused) return fail(new NoAcceptableTls('verify-failed', { mx, starttlsOffered, tls: facts, reason: alsoRefused.reason }));
      return new SmtpSession(conn, mx, starttlsOffered, facts, match.matched);
    }
    const refused = verifyPeer(opts.verification, facts, socket.getPeerCertificate(true), mx.host);
    if (refused) return fail(new NoAcceptableTls('verify-failed', { mx, starttlsOffered, tls: facts, reason: refused.reason }));
  } else if (requireTls) {
    const reason = starttlsOffered ? 'STARTTLS offered but not used' : 'STARTTLS not offered';
    return fail(new NoAcceptableTls('no-starttls', { mx, starttlsOffered, tls: null, reason }));
  }
  return new SmtpSession(conn, mx, starttlsOffered, facts);
}
