// The SMTP session policy, as smtp-server hooks named after the verbs: who may
// connect (per-IP connection limit), who may authenticate (auth.ts), who may
// relay, where TLS is required, and the recipient limit. Message data is handed
// to accept.ts. One IngressSessions serves every listener, so per-IP counters and
// the AUTH throttle are shared between them.
//
// Order of MAIL FROM checks: TLS requirements first (530 5.7.0: listener
// `required`, require_tls_networks, the account's require_tls), then relay
// control (554 5.7.1 unless authenticated or in relay_networks), so a client is
// told to use TLS before it is told it may not relay.
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Logger } from '../log.ts';
import { SmtpError } from '../smtp-error.ts';
import { domainOf } from '../store/store.ts';
import { releasedMessageBytes } from '../gc-hint.ts';
import { acceptMessage, type IngressStore } from './accept.ts';
import { AuthFailureThrottle, Authenticator, type ListenerTls } from './auth.ts';
import { normalizeAddress } from './networks.ts';
import { replies, replyText, toServerError } from './replies.ts';
import { ReceiveBudget } from './receive-budget.ts';
import { FreeSpace, spaceRefusal } from './free-space.ts';
import { isEightBit } from './smtp-path.ts';
import type { IngressSettings } from './settings.ts';
import { readInboundTls, type InboundTls } from './tls-session.ts';
import type { User } from './users.ts';

export interface ListenerInfo {
  readonly name: string;
  readonly tls: ListenerTls;
}

/** What we know about one connection, keyed by smtp-server's session id. */
export interface SessionState {
  readonly settings: IngressSettings;
  readonly ip: string;
  readonly listener: ListenerInfo;
  /** Facts of the live TLS session; null until (and unless) TLS is up. */
  tls: InboundTls | null;
  /** The authenticated account; cleared when STARTTLS restarts the session (RFC 3207 §4.2). */
  user: User | null;
  /** True from DATA until the reply to it: shutdown lets these finish. */
  inData: boolean;
}

type Callback = (err?: Error | null) => void;

export class IngressSessions {
  #settings: IngressSettings;
  readonly #store: IngressStore;
  readonly #logger: Logger;
  readonly #onQueued: ((queueId: string) => void) | undefined;
  readonly #throttle: AuthFailureThrottle;
  readonly #authenticator: Authenticator;
  readonly #sessions = new Map<string, SessionState>();
  readonly #connectionsPerIp = new Map<string, number>();
  readonly #budget: ReceiveBudget;
  /** Free space where the store lives, read at most once a second (free-space.ts). */
  #space: FreeSpace | null = null;

  /** A connection failed below SMTP (reset, failed TLS handshake): logged, nothing else to do. */
  connectionError(listener: string, err: Error & { code?: string; remote?: string }): void {
    this.#logger.info({ event: 'ingress.connection_error', listener, code: err.code, remote: err.remote, err: err.message }, 'inbound connection failed');
  }

  constructor(opts: { settings: IngressSettings; store: IngressStore; logger: Logger; onQueued?: (queueId: string) => void }) {
    this.#settings = opts.settings;
    this.#store = opts.store;
    this.#logger = opts.logger;
    this.#onQueued = opts.onQueued;
    this.#throttle = new AuthFailureThrottle(opts.settings.authFailureLimit, opts.settings.authFailureWindowMs);
    this.#authenticator = new Authenticator(this.#throttle, opts.logger);
    this.#budget = new ReceiveBudget(opts.settings.receiveBudgetBytes);
  }

  get settings(): IngressSettings {
    return this.#settings;
  }

  /** New connections get these; connections already open keep theirs. */
  reload(settings: IngressSettings): void {
    this.#settings = settings;
    this.#throttle.configure(settings.authFailureLimit, settings.authFailureWindowMs);
    this.#budget.limit = settings.receiveBudgetBytes;
  }

  /** Bytes held by messages in DATA (receive-budget.ts). */
  get receiveBudget(): ReceiveBudget {
    return this.#budget;
  }

  state(sessionId: string): SessionState | undefined {
    return this.#sessions.get(sessionId);
  }

  /** The smtp-server hooks for one listener. */
  hooks(listener: ListenerInfo) {
    const logger = this.#logger.child({ listener: listener.name });
    return {
      onConnect: (session: SMTPServerSession, callback: Callback) => this.#onConnect(listener, logger, session, callback),
      onSecure: (socket: unknown, session: SMTPServerSession, callback: Callback) => {
        const state = this.#sessions.get(session.id);
        if (state) {
          state.tls = readInboundTls(socket as TLSSocket);
          state.user = null;
        }
        callback();
      },
      onAuth: (auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) =>
        this.#onAuth(auth, session, callback),
      onMailFrom: (address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) => this.#onMailFrom(logger, address, session, callback),
      onRcptTo: (address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) => this.#onRcptTo(address, session, callback),
      onData: (stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void) =>
        this.#onData(logger, stream, session, callback),
      onClose: (session: SMTPServerSession) => this.#onClose(session),
    };
  }

  /**
   * Checked when AUTH arrives, before any SASL exchange (server.ts wires it in
   * front of smtp-server's AUTH handler). Returns the reply text to refuse with.
   */
  authGate(sessionId: string, secure: boolean): { code: number; text: string } | null {
    const state = this.#sessions.get(sessionId);
    if (!state) return { code: 454, text: '4.7.0 Temporary authentication failure' };
    const refused = this.#authenticator.gate(this.#authContext(state, secure), { plaintextNetworks: state.settings.plaintextAuthNetworks, users: state.settings.users });
    return refused ? { code: refused.code, text: replyText(refused) } : null;
  }

  #onConnect(listener: ListenerInfo, logger: Logger, session: SMTPServerSession, callback: Callback): void {
    const settings = this.#settings;
    const ip = normalizeAddress(session.remoteAddress) ?? session.remoteAddress;
    if (this.#sessions.size >= settings.maxConnections) {
      logger.warn({ event: 'ingress.rejected', reason: 'too_many_connections_total', ip, open: this.#sessions.size }, 'connection refused: ingress.max_connections reached');
      return callback(toServerError(replies.tooManyConnectionsTotal()));
    }
    const open = this.#connectionsPerIp.get(ip) ?? 0;
    if (open >= settings.maxConnectionsPerIp) {
      logger.warn({ event: 'ingress.rejected', reason: 'too_many_connections', ip, open }, 'connection refused: too many connections from this address');
      return callback(toServerError(replies.tooManyConnections()));
    }
    this.#connectionsPerIp.set(ip, open + 1);
    this.#sessions.set(session.id, { settings, ip, listener, tls: null, user: null, inData: false });
    logger.debug({ event: 'ingress.connect', ip, session: session.id }, 'connection');
    callback();
  }

  #onClose(session: SMTPServerSession): void {
    const state = this.#sessions.get(session.id);
    if (!state) return;
    this.#sessions.delete(session.id);
    const open = (this.#connectionsPerIp.get(state.ip) ?? 1) - 1;
    if (open > 0) this.#connectionsPerIp.set(state.ip, open);
    else this.#connectionsPerIp.delete(state.ip);
  }

  #onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void {
    const state = this.#sessions.get(session.id);
    if (!state || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') || typeof auth.password !== 'string' || !auth.username) {
      return callback(toServerError(replies.authInvalid()));
    }
    const settings = { plaintextNetworks: state.settings.plaintextAuthNetworks, users: state.settings.users };
    this.#authenticator
      .authenticate(this.#authContext(state, session.secure), settings, { method: auth.method, username: auth.username, password: auth.password })
      .then(
        (result) => {
          if (result instanceof SmtpError) return callback(toServerError(result));
          state.user = result;
          callback(null, { user: result.name });
        },
        (err: unknown) => {
          this.#logger.error({ event: 'ingress.auth_failed', ip: state.ip, user: auth.username, err: (err as Error).message }, 'authentication error');
          callback(toServerError(new SmtpError(454, '4.7.0', 'auth', 'Temporary authentication failure')));
        },
      );
  }

  #onMailFrom(logger: Logger, address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void {
    const state = this.#sessions.get(session.id);
    if (!state) return callback(toServerError(replies.queueFailed()));
    const { settings } = state;
    const refused = parameterRefusal(address, MAIL_PARAMETERS, 'mail') ?? eightBitRefusal(address, session);
    if (refused) {
      logger.info({ event: 'ingress.rejected', reason: refused.reason, ip: state.ip }, `MAIL refused: ${refused.reason}`);
      return callback(toServerError(refused));
    }
    if (!session.secure) {
      const why =
        state.listener.tls === 'required' ? 'listener requires TLS'
        : settings.requireTlsNetworks.contains(state.ip) ? 'require_tls_networks'
        : state.user?.requireTls ? 'account requires TLS'
        : null;
      if (why) {
        logger.info({ event: 'ingress.rejected', reason: 'tls_required', why, ip: state.ip, user: state.user?.name ?? null }, 'MAIL refused: TLS required');
        return callback(toServerError(replies.starttlsFirst()));
      }
    }
    if (!this.#mayRelay(state)) {
      logger.warn({ event: 'ingress.relay_denied', ip: state.ip, sender: address.address }, 'relay access denied');
      return callback(toServerError(replies.relayDenied()));
    }
    this.#checkSpace(logger, state, address, callback);
  }

  /** Postfix's queue_minfree: a message the store's file system has no room for is refused now, 452 4.3.1 (free-space.ts). */
  #checkSpace(logger: Logger, state: SessionState, address: SMTPServerAddress, callback: Callback): void {
    const { storeDir, queueMinfreeBytes } = state.settings;
    const args = address.args as Record<string, string | true> | false;
    // smtp-server has checked SIZE's syntax (digits) and that it is under max_message_bytes.
    const size = args && typeof args.SIZE === 'string' ? Number(args.SIZE) : 0;
    if (queueMinfreeBytes + size === 0) return callback();
    if (this.#space?.dir !== storeDir) this.#space = new FreeSpace(storeDir);
    void this.#space.bytes().then((free) => {
      const refused = spaceRefusal(free, queueMinfreeBytes, size);
      if (!refused) return callback();
      logger.warn(
        { event: 'ingress.rejected', reason: 'insufficient_storage', free, needed: queueMinfreeBytes + size, ip: state.ip },
        'MAIL refused: the store has too little free space (ingress.queue_minfree_bytes)',
      );
      callback(toServerError(refused));
    });
  }

  #onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void {
    const state = this.#sessions.get(session.id);
    // MAIL FROM already refused anyone who may not relay; this is belt and braces.
    if (!state || !this.#mayRelay(state)) return callback(toServerError(replies.relayDenied()));
    const refused = parameterRefusal(address, RCPT_PARAMETERS, 'rcpt') ?? eightBitRefusal(address, session) ?? this.#recipientRefusal(address, state.settings);
    if (refused) {
      this.#logger.info({ event: 'ingress.rejected', reason: refused.reason, ip: state.ip }, `RCPT refused: ${refused.reason}`);
      return callback(toServerError(refused));
    }
    const rcptTo = session.envelope.rcptTo;
    const lower = address.address.toLowerCase();
    // A repeated recipient replaces the earlier one in smtp-server, so it does not count twice.
    if (rcptTo.length >= state.settings.maxRecipients && !rcptTo.some((r) => r.address.toLowerCase() === lower)) {
      return callback(toServerError(replies.tooManyRecipients(state.settings.maxRecipients)));
    }
    callback();
  }

  #onData(logger: Logger, stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    const state = this.#sessions.get(session.id);
    if (!state) {
      stream.resume();
      return callback(toServerError(replies.queueFailed()));
    }
    state.inData = true;
    // The message's bytes count against the receive budget until it is committed or refused.
    const ticket = this.#budget.open();
    acceptMessage({ stream, session, state, store: this.#store, ticket, logger })
      .finally(() => {
        ticket.close();
        releasedMessageBytes(stream.byteLength);
      })
      .then(
        (outcome) => {
          state.inData = false;
          if (outcome.error) return callback(toServerError(outcome.error));
          callback(null, outcome.reply);
          if (outcome.queueId && this.#onQueued) {
            try {
              this.#onQueued(outcome.queueId);
            } catch (err) {
              logger.error({ event: 'store.error', queueId: outcome.queueId, err: (err as Error).message }, 'onQueued hook failed');
            }
          }
        },
        (err: unknown) => {
          // acceptMessage turns every expected failure into an outcome; this is a bug, and the client may retry.
          state.inData = false;
          logger.error({ event: 'store.error', err: (err as Error).message }, 'message intake failed');
          callback(toServerError(replies.queueFailed()));
        },
      );
  }

  /**
   * <postmaster> becomes ingress.postmaster (the address is rewritten in place, so the
   * envelope holds where it goes); domains no MX lookup can serve are refused now.
   */
  #recipientRefusal(address: SMTPServerAddress, settings: IngressSettings): SmtpError | null {
    if (!address.address.includes('@')) {
      if (!settings.postmaster) return replies.postmasterUnset();
      address.address = settings.postmaster;
      return null;
    }
    const domain = domainOf(address.address);
    if (settings.routedDomains.has(domain)) return null;
    const why = unroutable(domain);
    return why ? replies.unroutableDomain(address.address, why) : null;
  }

  #mayRelay(state: SessionState): boolean {
    return state.user !== null || state.settings.relayNetworks.contains(state.ip);
  }

  #authContext(state: SessionState, secure: boolean) {
    return { ip: state.ip, secure, listenerTls: state.listener.tls, listener: state.listener.name };
  }
}

/** MAIL FROM parameters we offer or accept (RFC 1870 SIZE, 6152 BODY, 6531 SMTPUTF8, 3461 RET/ENVID, 4954 AUTH, 8689 REQUIRETLS). */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID', 'AUTH', 'REQUIRETLS']);
/** RCPT TO parameters (RFC 3461 DSN). */
const RCPT_PARAMETERS = new Set(['NOTIFY', 'ORCPT']);

/**
 * RFC 5321 §4.1.1.11: 555 for a parameter we do not offer, rather than ignoring it.
 * REQUIRETLS (RFC 8689) passes: smtp-server has already refused it outside TLS, and
 * accept.ts keeps it with the message for delivery (delivery/require-tls.ts).
 */
function parameterRefusal(address: SMTPServerAddress, allowed: ReadonlySet<string>, stage: 'mail' | 'rcpt'): SmtpError | null {
  const args = address.args;
  if (!args) return null;
  const unknown = Object.keys(args).find((k) => !allowed.has(k.toUpperCase()));
  return unknown ? replies.unknownParameter(unknown.toUpperCase(), stage) : null;
}

/** RFC 6531: a non-ASCII address only in a transaction that declared SMTPUTF8. */
function eightBitRefusal(address: SMTPServerAddress, session: SMTPServerSession): SmtpError | null {
  const smtputf8 = (session.envelope as { smtpUtf8?: boolean }).smtpUtf8 === true;
  return !smtputf8 && isEightBit(address.address) ? replies.needsSmtputf8() : null;
}

/** Why no MX lookup can serve a domain (an address literal, a bare IP, localhost), or null. */
export function unroutable(domain: string): string | null {
  if (domain.startsWith('[')) return 'address literals are not delivered by this relay';
  if (isIP(domain)) return 'a bare IP address is not a mail domain';
  if (domain === 'localhost' || domain.endsWith('.localhost')) return 'localhost is not a mail domain here (RFC 6761)';
  return null;
}
