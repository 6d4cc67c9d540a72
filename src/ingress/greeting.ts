// When each inbound connection hears its 220 greeting: at once (submission: apps
// that open a connection per message wait for nothing), or after the listener's
// greeting_delay_ms (a listener facing the internet that wants the early-talker
// check). And the client's reverse DNS name, looked up beside the session when the
// listener asks for it, never in front of the greeting.
//
// smtp-server (3.21.x) has no option for either, so this is the one place that
// overrides it. What it relies on, all in SMTPConnection (dist/esm/smtp-connection.js):
// - init() arms `setTimeout(() => this.connectionReady(), 100)`: the 100 ms hold. The
//   timer calls the method through `this`, so replacing it on the instance right
//   after init() (server.ts calls greetConnection then) turns the timer into a no-op;
//   we call the original ourselves, now or after the delay.
// - connectionReady() greets synchronously when disableReverseLookup is set (server.ts)
//   and onConnect/onSecure answer synchronously (sessions.ts): with no delay, the
//   connection is ready before the socket is read, so an EHLO sent before the
//   greeting is answered after it. Until ready, _onCommand answers any command with
//   "421 <name> You talk too soon" and closes: the early-talker check stays smtp-server's.
// - _resetSession() copies connection.clientHostname into session.clientHostname,
//   which accept.ts reads for the Received header.
// - handler_MAIL(command, callback): the parser reads nothing more until callback.
// test/ingress/greeting.test.ts fails when any of this changes.
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import type { Config } from '../config/schema.ts';
import { lookUpClientName } from './client-name.ts';
import { normalizeAddress } from './networks.ts';

export interface GreetingSettings {
  /** How long the greeting is held (the early-talker check); 0: greet at once. */
  readonly delayMs: number;
  /** Reverse DNS of the client (null: no lookup at all). */
  readonly reverseDns: { readonly dnsServers: readonly string[]; readonly timeoutMs: number } | null;
}

const GREET_AT_ONCE: GreetingSettings = { delayMs: 0, reverseDns: null };
/** Connections whose greeting is ours already: connectionReady must never run twice. */
const taken = new WeakSet<SMTPConnection>();

/** Per listener name, from config.ingress.listeners. */
export function greetingSettingsFrom(config: Config): ReadonlyMap<string, GreetingSettings> {
  const greetings = new Map<string, GreetingSettings>();
  for (const [name, listener] of Object.entries(config.ingress.listeners)) {
    greetings.set(name, {
      delayMs: listener.greeting_delay_ms,
      reverseDns: listener.reverse_dns ? { dnsServers: config.delivery.dns.servers, timeoutMs: listener.reverse_dns_timeout_ms } : null,
    });
  }
  return greetings;
}

/** Takes over the greeting of a connection smtp-server has just set up (after its init()). */
export function greetConnection(connection: SMTPConnection, greeting: GreetingSettings = GREET_AT_ONCE): void {
  if (taken.has(connection)) return;
  taken.add(connection);
  const socket = connection._socket;
  const connectionReady = connection.connectionReady;
  // The 100 ms timer of init() now does nothing.
  connection.connectionReady = () => undefined;

  const nameFound = greeting.reverseDns ? lookUpName(connection, greeting.reverseDns) : null;
  const ready = () => {
    connectionReady.call(connection);
    nameFound?.greeted();
  };
  if (greeting.delayMs === 0) return ready();
  const timer = setTimeout(ready, greeting.delayMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Starts the lookup. The name is set once the greeting has gone out (connectionReady
 * sets clientHostname to the bare address literal), and MAIL FROM waits for the
 * lookup to end, so the Received header of every message has the name when there is one.
 */
function lookUpName(connection: SMTPConnection, opts: NonNullable<GreetingSettings['reverseDns']>): { greeted(): void } {
  const ip = normalizeAddress(connection.remoteAddress) ?? connection.remoteAddress;
  const lookup = lookUpClientName(ip, opts);
  connection._socket.once('close', () => lookup.cancel());
  let greeted = false;
  let found: string | null = null;
  const useName = () => {
    if (!greeted || found === null) return;
    connection.clientHostname = found;
    connection.session.clientHostname = found;
  };
  const settled = lookup.name.then((name) => {
    found = name;
    useName();
  });
  const mail = connection.handler_MAIL;
  connection.handler_MAIL = function (this: SMTPConnection, command: Buffer, callback: () => void) {
    void settled.then(() => (this._closing || this._closed ? callback() : mail.call(this, command, callback)));
  };
  return {
    greeted() {
      greeted = true;
      useName();
    },
  };
}
