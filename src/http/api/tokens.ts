// API tokens: `sr_<id>_<secret>`, made by `sealrelay token add` and shown once.
//
//   id      8 random bytes, hex: public, finds the token's row (no scan, no timing
//           signal from comparing many rows);
//   secret  32 random bytes (256 bits), base64url: stored only as SHA-256.
//
// A password needs a slow hash because people choose guessable ones; a 256-bit
// random secret cannot be guessed or brute-forced from its hash, so one SHA-256 is
// enough and keeps every request cheap. The hash is compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { API_SCOPES, type ApiScope, type ApiToken, type NewApiToken } from '../../store/store.ts';

const PREFIX = 'sr_';
const ID_BYTES = 8;
const SECRET_BYTES = 32;
const TOKEN = /^sr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Token names: what `token revoke` and the policy's auth_user name (as `token:<name>`). */
export const TOKEN_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface MadeToken {
  /** The whole token, to show once. */
  readonly token: string;
  readonly record: NewApiToken;
}

export function makeApiToken(opts: { name: string; scopes: readonly ApiScope[]; now: number; expiresAt: number | null }): MadeToken {
  if (!TOKEN_NAME.test(opts.name)) throw new RangeError(`token name "${opts.name}": use 1-64 of a-z 0-9 . _ - (starting with a letter or digit)`);
  if (!opts.scopes.length || opts.scopes.some((s) => !API_SCOPES.includes(s))) throw new RangeError(`scopes must be some of ${API_SCOPES.join(', ')}`);
  const id = randomBytes(ID_BYTES).toString('hex');
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  return {
    token: `${PREFIX}${id}_${secret}`,
    record: { id, name: opts.name, scopes: [...new Set(opts.scopes)], createdAt: opts.now, expiresAt: opts.expiresAt, secretHash: secretHash(id, secret) },
  };
}

/** The token's public id and secret, or null when it is not a token of ours at all. */
export function parseApiToken(token: string): { id: string; secret: string } | null {
  const m = TOKEN.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/** Whether `secret` is the one `stored` was made with. */
export function secretMatches(stored: Pick<ApiToken, 'id' | 'secretHash'>, secret: string): boolean {
  const given = secretHash(stored.id, secret);
  return given.length === stored.secretHash.length && timingSafeEqual(given, stored.secretHash);
}

/** The id is bound in: a row's hash cannot be moved to another id. */
function secretHash(id: string, secret: string): Buffer {
  return createHash('sha256').update(`sealrelay-api-token-v1\0${id}\0${secret}`).digest();
}

/** The auth user a token's mail carries (policy rules' auth_user names it; SMTP user names cannot contain ':'). */
export function tokenAuthUser(name: string): string {
  return `token:${name}`;
}
