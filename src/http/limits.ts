// Rate limits as routes use them. The client's address is request.ip (the socket's
// peer: no proxy header is trusted), keyed by ipKey (an IPv6 client by its /64).
// Counting is a change of state, so it refuses a GET like any other
// (safe-requests.ts): a scanner fetching a link never uses up a person's tries.
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { TooManyRequests } from './errors.ts';
import { ipKey, type LimitRule, type RateLimiter } from './rate-limit.ts';
import { assertMayChangeState } from './safe-requests.ts';

/**
 * Limits on tries at a secret (a code, a password): one rule for the things the
 * secret belongs to (an item, an address, an account) and a looser one for the
 * client IP, which a whole office may share behind one NAT.
 */
export interface AttemptRules {
  readonly perKey: LimitRule;
  readonly perIp: LimitRule;
}

export class RequestLimits {
  readonly limiter: RateLimiter;
  readonly #now: () => number;

  constructor(limiter: RateLimiter, now: () => number = Date.now) {
    this.limiter = limiter;
    this.#now = now;
  }

  /** A preHandler that counts every request to the route per client IP and refuses (429) past `rule`. */
  perIp(rule: LimitRule): preHandlerAsyncHookHandler {
    return async (request) => {
      assertMayChangeState(request, `rate limit ${rule.name}`);
      const v = await this.limiter.consume(rule, [ipKey(request.ip)]);
      if (!v.allowed) throw new TooManyRequests(v.retryAt, this.#now());
    };
  }

  /** Before checking a secret: refuses (429) while the IP or any of `keys` is locked out; returns the tries left. */
  async beforeAttempt(request: FastifyRequest, rules: AttemptRules, keys: readonly string[]): Promise<number> {
    const [k, ip] = await Promise.all([this.limiter.check(rules.perKey, keys), this.limiter.check(rules.perIp, [ipKey(request.ip)])]);
    if (!k.allowed || !ip.allowed) throw new TooManyRequests(Math.max(k.allowed ? 0 : k.retryAt, ip.allowed ? 0 : ip.retryAt), this.#now());
    return Math.min(k.remaining, ip.remaining);
  }

  /** A wrong secret: counts against `keys` and the IP; returns the tries left (0: locked now). */
  async failedAttempt(request: FastifyRequest, rules: AttemptRules, keys: readonly string[]): Promise<number> {
    assertMayChangeState(request, `counting a failure for ${rules.perKey.name}`);
    const [k, ip] = await Promise.all([this.limiter.consume(rules.perKey, keys), this.limiter.consume(rules.perIp, [ipKey(request.ip)])]);
    return k.allowed && ip.allowed ? Math.min(k.remaining, ip.remaining) : 0;
  }

  /** The right secret: forgets the failures of `keys` (what the secret proves), never the IP's. */
  async succeededAttempt(request: FastifyRequest, rules: AttemptRules, keys: readonly string[]): Promise<void> {
    assertMayChangeState(request, `clearing failures for ${rules.perKey.name}`);
    if (keys.length) await this.limiter.clear(rules.perKey, keys);
  }
}
