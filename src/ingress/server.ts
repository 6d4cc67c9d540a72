// One smtp-server per configured listener:
//   starttls  STARTTLS offered; plaintext allowed where policy permits
//   required  STARTTLS offered and required before AUTH or MAIL (530 5.7.0, RFC 3207 §4)
//   implicit  TLS from the first byte (RFC 8314)
// smtp-server does the protocol; the policy lives in sessions.ts. Enhanced status
// codes are written into our reply texts (replies.ts), so smtp-server's own
// ENHANCEDSTATUSCODES stays off. smtp-server already discards anything pipelined
// behind STARTTLS before the handshake (CVE-2011-0411 class); test/ingress checks it.
import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import type { ListenerTls } from './auth.ts';
import { greetConnection } from './greeting.ts';
import { replies, replyText } from './replies.ts';
import type { IngressSessions } from './sessions.ts';
import { parsePathCommand, type ParsedPath } from './smtp-path.ts';

export interface TlsCredentials {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface ListenerSpec {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls: ListenerTls;
}

/** TLS below 1.2 is refused for submission whatever clients ask (RFC 8996 deprecates 1.0 and 1.1). */
const MIN_TLS_VERSION = 'TLSv1.2';
/** After close() has said 421, sockets are destroyed if the client has not hung up by then. */
const CLOSE_LINGER_MS = 200;

/**
 * smtp-server with one addition: AUTH is checked against our policy (TLS, plaintext
 * networks, throttle) when the command arrives, before smtp-server starts the SASL
 * exchange. smtp-server's own check (allowInsecureAuth) is server-wide and cannot
 * exempt auth_plaintext_networks, and checking only in onAuth would let a LOGIN
 * client send its password over plaintext before being refused.
 */
class ListenerServer extends SMTPServer {
  readonly sockets = new Set<Socket>();
  readonly #sessions: IngressSessions;
  readonly #name: string;

  constructor(options: SMTPServerOptions, sessions: IngressSessions, name: string) {
    super(options);
    this.#sessions = sessions;
    this.#name = name;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  override connect(...args: Parameters<SMTPServer['connect']>): void {
    super.connect(...args);
    // connect() has just added the new connection last.
    let connection: SMTPConnection | undefined;
    for (const c of this.connections) connection = c;
    if (!connection) return;
    guard(connection, this.#sessions);
    // The greeting is ours, not smtp-server's 100 ms timer (greeting.ts).
    greetConnection(connection, this.#sessions.settings.greetings.get(this.#name));
  }
}

const guarded = new WeakSet<SMTPConnection>();

/** The parts of smtp-server's connection that guard() replaces (not in its public types). */
interface ConnectionInternals {
  _upgrading?: boolean;
  _onCommand(command: Buffer, callback?: () => void): void;
  _parseAddressCommand(name: string, command: Buffer | string): ParsedPath | false;
  send(code: number, text: string): void;
}

function guard(connection: SMTPConnection, sessions: IngressSessions): void {
  if (guarded.has(connection)) return;
  guarded.add(connection);
  guardAuth(connection, sessions);
  const internals = connection as unknown as ConnectionInternals;
  // smtp-server decodes each command line as UTF-8, turning invalid bytes into U+FFFD:
  // "j\xfcrgen@" would become another mailbox. Such a line is refused before it is
  // read (Postfix's reply). Lines buffered during a TLS upgrade go to smtp-server,
  // which discards them unanswered.
  const onCommand = internals._onCommand;
  internals._onCommand = function (this: ConnectionInternals, command: Buffer, callback?: () => void) {
    if (!this._upgrading && Buffer.isBuffer(command) && !isUtf8(command)) {
      const refused = replies.invalidUtf8();
      this.send(refused.code, replyText(refused));
      setImmediate(() => callback?.());
      return;
    }
    onCommand.call(this, command, callback);
  };
  internals._parseAddressCommand = (name, command) => {
    const which = String(name).trim().toLowerCase();
    if (which !== 'mail from' && which !== 'rcpt to') return false;
    return parsePathCommand(which, command.toString());
  };
}

function guardAuth(connection: SMTPConnection, sessions: IngressSessions): void {
  const original = connection.handler_AUTH;
  connection.handler_AUTH = function (this: SMTPConnection, command: Buffer, callback: () => void) {
    const refused = sessions.authGate(this.session.id, this.secure);
    if (refused) {
      this.send(refused.code, refused.text);
      return callback();
    }
    original.call(this, command, callback);
  };
}

export interface Listener {
  readonly spec: ListenerSpec;
  readonly port: number;
  readonly server: ListenerServer;
}

export async function openListener(spec: ListenerSpec, sessions: IngressSessions, credentials: TlsCredentials): Promise<Listener> {
  const settings = sessions.settings;
  const options: SMTPServerOptions = {
    ...sessions.hooks({ name: spec.name, tls: spec.tls }),
    name: settings.hostname,
    banner: 'SealRelay',
    secure: spec.tls === 'implicit',
    key: credentials.key,
    cert: credentials.cert,
    minVersion: MIN_TLS_VERSION,
    // SIZE is advertised (RFC 1870); accept.ts enforces the limit of each session.
    size: settings.maxMessageBytes,
    // DSN (RFC 3461) is offered: NOTIFY, ORCPT and ENVID are honoured in the bounces we make (delivery/bounce.ts).
    hideDSN: false,
    // REQUIRETLS (RFC 8689) is offered; smtp-server lists it only once the session runs over
    // TLS and refuses the parameter on a plaintext one (530). Delivery honours it (delivery/require-tls.ts).
    hideREQUIRETLS: false,
    authMethods: ['PLAIN', 'LOGIN'],
    // relay_networks may send without AUTH; sessions.ts refuses everyone else at MAIL FROM.
    authOptional: true,
    // Whether AUTH may run without TLS is decided per client by ListenerServer's guard.
    allowInsecureAuth: true,
    disabledCommands: spec.tls === 'implicit' ? ['STARTTLS'] : [],
    socketTimeout: settings.socketTimeoutMs,
    logger: false,
    // smtp-server would look the client up before greeting it; greeting.ts does it beside the session when the listener asks.
    disableReverseLookup: true,
  };
  const server = new ListenerServer(options, sessions, spec.name);
  // smtp-server re-emits the listening socket's errors as its own: until the port is
  // bound, an error is the bind failing, which the caller reports once with its reason.
  const bindFailed = new Promise<never>((_resolve, reject) => server.once('error', reject));
  await Promise.race([new Promise<void>((resolve) => server.listen(spec.port, spec.host, () => resolve())), bindFailed]);
  bindFailed.catch(() => undefined);
  server.removeAllListeners('error');
  // From now on: per-connection socket and TLS handshake errors; the connection is gone; say so for operators.
  server.on('error', (err: Error) => sessions.connectionError(spec.name, err));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : spec.port;
  return { spec, port, server };
}

/** New TLS credentials and limits for connections from now on. */
export function updateListener(listener: Listener, sessions: IngressSessions, credentials: TlsCredentials): void {
  const settings = sessions.settings;
  listener.server.updateSecureContext({ key: credentials.key, cert: credentials.cert, minVersion: MIN_TLS_VERSION });
  Object.assign(listener.server.options, { name: settings.hostname, size: settings.maxMessageBytes, socketTimeout: settings.socketTimeoutMs });
}

/**
 * Stops accepting connections. Sessions in the middle of DATA may finish it (their
 * next command gets smtp-server's 421); every other session is told 421 now.
 * Resolves once all sessions are gone, or after `drainMs`, when smtp-server closes
 * whatever is left.
 */
export function stopListener(listener: Listener, sessions: IngressSessions, drainMs: number): Promise<void> {
  const { server } = listener;
  // smtp-server reads 0 as "use the 30 s default".
  server.options.closeTimeout = Math.max(1, drainMs);
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const text = replyText(replies.shuttingDown());
  for (const connection of [...server.connections]) {
    if (sessions.state(connection.session.id)?.inData) continue;
    connection.send(421, text);
    connection.close();
  }
  return closed;
}

/** Ends every session now (421) and destroys sockets whose clients do not hang up. */
export function closeListener(listener: Listener): void {
  const { server } = listener;
  const text = replyText(replies.shuttingDown());
  for (const connection of [...server.connections]) {
    connection.send(421, text);
    connection.close();
  }
  const timer = setTimeout(() => {
    for (const socket of server.sockets) socket.destroy();
  }, CLOSE_LINGER_MS);
  timer.unref();
}
