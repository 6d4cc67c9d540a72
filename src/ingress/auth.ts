// SMTP AUTH (PLAIN, LOGIN) for submission accounts.
//
// Policy:
// - AUTH only inside TLS (538 5.7.11, RFC 4954 §4), except for clients in
//   auth_plaintext_networks; on a `required` listener AUTH waits for STARTTLS
//   (530 5.7.0, RFC 3207 §4) whoever the client is. `gate` runs when the AUTH
//   command arrives, before any SASL exchange, so a LOGIN client is stopped
//   before it sends its password over plaintext.
// - Per client IP, auth_failure_limit failures within auth_failure_window_seconds
//   make further AUTH fail with 454 4.7.0 (temporary: the limit lifts by itself)
//   until the oldest failures leave the window. Memory is bounded by tracking at
//   most MAX_TRACKED_IPS addresses.
// - Failures are logged (ingress.auth_failed) with the user name and IP, never the
//   password; the client learns only "535 5.7.8".
import type { Logger } from '../log.ts';
import type { SmtpError } from '../smtp-error.ts';
import type { NetworkList } from './networks.ts';
import { replies } from './replies.ts';
import { authenticateUser, type User, type UserDirectory } from './users.ts';

/** Beyond this many throttled addresses the oldest are forgotten (bounded memory under a spray of IPs). */
const MAX_TRACKED_IPS = 10_000;

export type ListenerTls = 'starttls' | 'required' | 'implicit';

export interface AuthContext {
  readonly ip: string;
  readonly secure: boolean;
  readonly listenerTls: ListenerTls;
  readonly listener: string;
}

export interface AuthSettings {
  readonly plaintextNetworks: NetworkList;
  readonly users: UserDirectory;
}

/** Sliding-window failure counter per client IP. */
export class AuthFailureThrottle {
  readonly #failures = new Map<string, number[]>();
  #limit: number;
  #windowMs: number;

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** New limits apply to the next check; recorded failures are kept. */
  configure(limit: number, windowMs: number): void {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  isThrottled(ip: string, now = Date.now()): boolean {
    return this.#recent(ip, now).length >= this.#limit;
  }

  /** Records one failure; returns the failures now inside the window. */
  recordFailure(ip: string, now = Date.now()): number {
    const recent = this.#recent(ip, now);
    recent.push(now);
    this.#failures.delete(ip); // re-insert: Map order is then least recently failed first
    this.#failures.set(ip, recent);
    if (this.#failures.size > MAX_TRACKED_IPS) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
    return recent.length;
  }

  get trackedAddresses(): number {
    return this.#failures.size;
  }

  #recent(ip: string, now: number): number[] {
    const list = this.#failures.get(ip);
    if (!list) return [];
    const recent = list.filter((t) => now - t < this.#windowMs);
    if (recent.length === 0) this.#failures.delete(ip);
    else if (recent.length !== list.length) this.#failures.set(ip, recent);
    return recent;
  }
}

export class Authenticator {
  readonly #throttle: AuthFailureThrottle;
  readonly #logger: Logger;

  constructor(throttle: AuthFailureThrottle, logger: Logger) {
    this.#throttle = throttle;
    this.#logger = logger;
  }

  /** May this client start AUTH at all? Checked before any credentials are exchanged. */
  gate(ctx: AuthContext, settings: AuthSettings): SmtpError | null {
    if (!ctx.secure && ctx.listenerTls === 'required') return replies.starttlsFirst();
    if (!ctx.secure && !settings.plaintextNetworks.contains(ctx.ip)) return replies.encryptionRequired();
    if (this.#throttle.isThrottled(ctx.ip)) {
      this.#logger.warn({ event: 'ingress.auth_throttled', ip: ctx.ip, listener: ctx.listener }, 'AUTH refused: too many recent failures from this address');
      return replies.authThrottled();
    }
    return null;
  }

  /** Verifies the credentials; the user on success, the reply to send otherwise. */
  async authenticate(ctx: AuthContext, settings: AuthSettings, credentials: { method: string; username: string; password: string }): Promise<User | SmtpError> {
    const refused = this.gate(ctx, settings);
    if (refused) return refused;
    const user = await authenticateUser(settings.users, credentials.username, credentials.password);
    if (user) return user;
    const failures = this.#throttle.recordFailure(ctx.ip);
    this.#logger.warn(
      { event: 'ingress.auth_failed', user: credentials.username.slice(0, 128), ip: ctx.ip, method: credentials.method, listener: ctx.listener, failures },
      'authentication failed',
    );
    return replies.authInvalid();
  }
}
