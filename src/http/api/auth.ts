// Bearer-token authentication of the API (RFC 6750), checked on every request to a
// route that names a scope, before its body is read:
//
//   401  no token, not one of ours, wrong secret, expired, revoked
//        (WWW-Authenticate: Bearer …, error="invalid_token" when one was sent);
//   403  a good token without the route's scope (error="insufficient_scope");
//   429  the client's IP failed too often (api.auth_failure_limit per window).
//
// Failures are counted per IP on state-changing requests only: GET never changes
// state (safe-requests.ts), and the 256-bit secret needs no count to resist
// guessing. An IP locked out by its failures is refused on every method. Tokens
// are never logged: a failure names the reason, the IP and at most the public id.
import type { FastifyRequest } from 'fastify';
import type { Logger } from '../../log.ts';
import type { ApiScope, ApiTokenInfo, Store } from '../../store/store.ts';
import { TooManyRequests } from '../errors.ts';
import { ipKey, type LimitRule, type RateLimiter } from '../rate-limit.ts';
import { SAFE_METHODS } from '../safe-requests.ts';
import { ApiError } from './errors.ts';
import { parseApiToken, secretMatches } from './tokens.ts';

const REALM = 'Bearer realm="SealRelay API"';
/** A token's last use is written at most this often (bookkeeping, not worth a write per request). */
const TOUCH_EVERY_MS = 60_000;

type Failure = 'missing' | 'malformed' | 'unknown' | 'wrong-secret' | 'expired' | 'revoked';

export class ApiAuth {
  readonly #touched = new Map<string, number>();

  constructor(
    private readonly store: Pick<Store, 'findApiToken' | 'touchApiToken'>,
    private readonly limiter: RateLimiter,
    private readonly rule: () => LimitRule,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  /** The request's token if it may use a route of `scope`; throws the 401, 403 or 429 otherwise. */
  async authenticate(request: FastifyRequest, scope: ApiScope): Promise<ApiTokenInfo> {
    const rule = this.rule();
    const ipKeys = [ipKey(request.ip)];
    const state = await this.limiter.check(rule, ipKeys);
    if (!state.allowed) throw new TooManyRequests(state.retryAt, this.now());

    const header = request.headers.authorization;
    if (!header) return this.#fail(request, 'missing', null);
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const parsed = m ? parseApiToken(m[1]!) : null;
    if (!parsed) return this.#fail(request, 'malformed', null);
    const token = await this.store.findApiToken(parsed.id);
    if (!token) return this.#fail(request, 'unknown', parsed.id);
    if (!secretMatches(token, parsed.secret)) return this.#fail(request, 'wrong-secret', parsed.id);
    // Only the token's holder learns that it expired or was revoked.
    if (token.revokedAt !== null) return this.#fail(request, 'revoked', token.id);
    if (token.expiresAt !== null && token.expiresAt <= this.now()) return this.#fail(request, 'expired', token.id, new Date(token.expiresAt).toISOString());
    await this.#touch(token.id);
    if (!token.scopes.includes(scope)) {
      this.logger.warn({ event: 'api.forbidden', token: token.name, scope, method: request.method, route: request.routeOptions.url, ip: request.ip }, `API token ${token.name} lacks scope ${scope}`);
      throw new ApiError(403, 'forbidden', `this token does not have the ${scope} scope (it has: ${token.scopes.join(', ')})`, 'Authorization', {
        'www-authenticate': `${REALM}, error="insufficient_scope", scope="${scope}"`,
      });
    }
    const { secretHash: _hash, ...info } = token;
    return info;
  }

  async #fail(request: FastifyRequest, reason: Failure, tokenId: string | null, when?: string): Promise<never> {
    if (!SAFE_METHODS.has(request.method)) await this.limiter.consume(this.rule(), [ipKey(request.ip)]);
    this.logger.warn({ event: 'api.auth_failed', reason, tokenId, method: request.method, route: request.routeOptions.url, ip: request.ip }, `API request refused: ${reason} token`);
    const messages: Record<Failure, string> = {
      missing: 'send a token: Authorization: Bearer sr_… (sealrelay token add makes one)',
      malformed: 'the Authorization header does not carry a SealRelay API token',
      unknown: 'the token is not valid',
      'wrong-secret': 'the token is not valid',
      expired: `the token expired at ${when}`,
      revoked: 'the token was revoked',
    };
    const challenge = reason === 'missing' ? REALM : `${REALM}, error="invalid_token"`;
    throw new ApiError(401, 'unauthorized', messages[reason], 'Authorization', { 'www-authenticate': challenge });
  }

  async #touch(id: string): Promise<void> {
    const now = this.now();
    const last = this.#touched.get(id);
    if (last !== undefined && now - last < TOUCH_EVERY_MS) return;
    this.#touched.set(id, now);
    try {
      await this.store.touchApiToken(id, now);
    } catch (err) {
      this.logger.warn({ event: 'store.error', err: (err as Error).message }, "could not note an API token's last use");
    }
  }
}
