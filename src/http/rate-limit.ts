// Rate limits and lockouts, per client IP and per key (an item, an address, an
// account). A rule says how many events a key may have in a window and, once over,
// how long it stays locked:
//
//   throttle:  consume() before the work; refused once a key is over.
//   lockout:   check() before verifying a secret, consume() on each failure,
//              clear() on success for the keys the secret belongs to (never the
//              IP's: one good password must not wipe an attacker's record).
//
// Counting is a fixed window per key, done by the store in one atomic step, so
// a store shared by several relays (PostgreSQL: INSERT … ON CONFLICT DO UPDATE …
// RETURNING) needs no read-modify-write. The memory store serves one node and is
// bounded: it drops expired entries first and locked ones last, so spraying keys
// cannot evict a lockout.
import { isIPv4, isIPv6 } from 'node:net';

export interface LimitRule {
  /** Namespaces the keys, e.g. "portal-code". */
  readonly name: string;
  /** Events allowed per window; the one that reaches it starts the lockout, so the next is refused. */
  readonly limit: number;
  readonly windowMs: number;
  /** How long a key stays refused once over the limit (at least to the window's end). */
  readonly lockoutMs: number;
}

export interface LimitState {
  /** Events counted in the current window. */
  readonly count: number;
  readonly windowEndsAt: number;
  /** Epoch ms until which the key is refused, or null. */
  readonly lockedUntil: number | null;
}

export interface RateLimitStore {
  /** Counts one event for `key` under `rule` at `now` (a new window once the old one ended) and returns the state after it. */
  increment(key: string, rule: LimitRule, now: number): Promise<LimitState>;
  peek(key: string, now: number): Promise<LimitState | null>;
  reset(key: string): Promise<void>;
  /** Every entry (the GET side-effect probe); a shared store may leave it out. */
  describe?(): Promise<{ key: string; state: LimitState }[]>;
}

export type Verdict =
  | { readonly allowed: true; /** Events left before the lockout (the fewest across keys). */ readonly remaining: number }
  | { readonly allowed: false; /** Epoch ms when the last of the keys unlocks. */ readonly retryAt: number };

/** Entries the memory store keeps at most. */
export const MEMORY_LIMIT_ENTRIES_MAX = 100_000;

export class MemoryRateLimitStore implements RateLimitStore {
  readonly #entries = new Map<string, LimitState>();
  readonly #max: number;

  constructor(opts: { max?: number } = {}) {
    this.#max = opts.max ?? MEMORY_LIMIT_ENTRIES_MAX;
  }

  async increment(key: string, rule: LimitRule, now: number): Promise<LimitState> {
    let state = this.#live(key, now);
    if (!state) {
      this.#makeRoom(now);
      state = { count: 0, windowEndsAt: now + rule.windowMs, lockedUntil: null };
    }
    const count = state.count + 1;
    // Locked once, when the count reaches the limit: events refused meanwhile do not extend it.
    const lockedUntil = count === rule.limit ? Math.max(now + rule.lockoutMs, state.windowEndsAt) : state.lockedUntil;
    const next = { count, windowEndsAt: state.windowEndsAt, lockedUntil };
    this.#entries.set(key, next);
    return next;
  }

  async peek(key: string, now: number): Promise<LimitState | null> {
    return this.#live(key, now);
  }

  async reset(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  async describe(): Promise<{ key: string; state: LimitState }[]> {
    return [...this.#entries].map(([key, state]) => ({ key, state })).sort((a, b) => a.key.localeCompare(b.key));
  }

  /** The entry if its window or lockout is still running (a finished one counts as absent). */
  #live(key: string, now: number): LimitState | null {
    const s = this.#entries.get(key);
    if (!s || expired(s, now)) return null;
    return s;
  }

  #makeRoom(now: number): void {
    if (this.#entries.size < this.#max) return;
    for (const [k, s] of this.#entries) if (expired(s, now)) this.#entries.delete(k);
    if (this.#entries.size < this.#max) return;
    // Oldest first (Map order is insertion order), sparing lockouts while any other entry is left.
    for (const [k, s] of this.#entries) {
      if (s.lockedUntil === null || s.lockedUntil <= now) {
        this.#entries.delete(k);
        return;
      }
    }
    const first = this.#entries.keys().next();
    if (!first.done) this.#entries.delete(first.value);
  }
}

function expired(s: LimitState, now: number): boolean {
  return s.windowEndsAt <= now && (s.lockedUntil === null || s.lockedUntil <= now);
}

export class RateLimiter {
  readonly #store: RateLimitStore;
  readonly #now: () => number;

  constructor(store: RateLimitStore, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** Whether every key may act now, counting nothing. */
  async check(rule: LimitRule, keys: readonly string[]): Promise<Verdict> {
    checkUse(rule, keys);
    const now = this.#now();
    const states = await Promise.all(keys.map((k) => this.#store.peek(storeKey(rule, k), now)));
    const locked = states.filter((s): s is LimitState => s !== null && s.lockedUntil !== null && s.lockedUntil > now);
    if (locked.length) return { allowed: false, retryAt: Math.max(...locked.map((s) => s.lockedUntil!)) };
    return { allowed: true, remaining: Math.min(rule.limit, ...states.map((s) => rule.limit - (s?.count ?? 0))) };
  }

  /** Counts one event for each key; refused when any key is (now) over its limit or locked. */
  async consume(rule: LimitRule, keys: readonly string[]): Promise<Verdict> {
    checkUse(rule, keys);
    const now = this.#now();
    const states = await Promise.all(keys.map((k) => this.#store.increment(storeKey(rule, k), rule, now)));
    const over = states.filter((s) => s.count > rule.limit);
    if (over.length) return { allowed: false, retryAt: Math.max(...over.map((s) => s.lockedUntil ?? s.windowEndsAt)) };
    return { allowed: true, remaining: Math.min(...states.map((s) => rule.limit - s.count)) };
  }

  /** Forgets the keys' counts and lockouts (after a success, for the keys the success proves). */
  async clear(rule: LimitRule, keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((k) => this.#store.reset(storeKey(rule, k))));
  }
}

function checkUse(rule: LimitRule, keys: readonly string[]): void {
  if (!keys.length) throw new RangeError(`rate limit ${rule.name}: no keys`);
  if (!(Number.isInteger(rule.limit) && rule.limit >= 1 && rule.windowMs > 0 && rule.lockoutMs >= 0)) throw new RangeError(`rate limit ${rule.name}: needs limit >= 1, windowMs > 0, lockoutMs >= 0`);
}

function storeKey(rule: LimitRule, key: string): string {
  return `${rule.name}:${key}`;
}

/**
 * The key an address is limited under: IPv4 as it is (IPv4-mapped IPv6 as IPv4),
 * IPv6 by its /64, since one subscriber commonly holds a whole /64 and would
 * otherwise have 2^64 fresh keys.
 */
export function ipKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return `ip:${mapped[1]}`;
  if (isIPv4(address)) return `ip:${address}`;
  if (!isIPv6(address)) return `ip:${address}`;
  return `ip:${expandIPv6(address).slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of an IPv6 address, lower case without leading zeros (zone id dropped). */
function expandIPv6(address: string): string[] {
  let text = address.split('%')[0]!.toLowerCase();
  // A trailing dotted quad is two hextets.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, quad.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === null ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((h) => parseInt(h, 16).toString(16));
}
