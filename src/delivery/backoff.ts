// When to try a deferred recipient again, and when to stop trying.
//
// Policy (Postfix minimal/maximal_backoff_time, maximal_queue_lifetime): the wait
// starts at retry.first_seconds and grows by retry.factor per attempt, never above
// retry.max_seconds. ±10% jitter keeps recipients deferred together (a greylisting
// or down MX) from all coming back in the same second. The next attempt is never
// scheduled past the end of the queue lifetime: the last try happens when the
// lifetime ends, so the bounce is not late by a whole backoff interval.
// All times are ms since the epoch, as in the Store.
import type { Config } from '../config/schema.ts';

export type RetryConfig = Config['delivery']['retry'];

/** Fraction of the delay added or taken away at random. */
const JITTER = 0.1;
const MS_PER_S = 1000;

/** Base delay in seconds after the `attempt`-th failed attempt (1-based), before jitter. */
export function backoffSeconds(attempt: number, retry: Pick<RetryConfig, 'first_seconds' | 'factor' | 'max_seconds'>): number {
  const n = Math.max(1, Math.floor(attempt));
  return Math.min(retry.first_seconds * retry.factor ** (n - 1), retry.max_seconds);
}

/**
 * When to try again after the `attempt`-th attempt (1-based) failed at `now`.
 * `random` returns [0, 1) like Math.random (tests pin it).
 *
 * The three-argument form (attempt, now, retry) has no arrival time and so does not
 * clamp to the queue lifetime; prefer the full form.
 */
export function nextAttemptAt(attempt: number, receivedAt: number, now: number, retry: RetryConfig, random?: () => number): number;
export function nextAttemptAt(attempt: number, now: number, retry: RetryConfig, random?: () => number): number;
export function nextAttemptAt(
  attempt: number,
  a: number,
  b: number | RetryConfig,
  c?: RetryConfig | (() => number),
  d?: () => number,
): number {
  const [receivedAt, now, retry, random] = typeof b === 'number' ? [a, b, c as RetryConfig, d ?? Math.random] : [null, a, b, (c as (() => number) | undefined) ?? Math.random];
  const jitter = 1 + (random() * 2 - 1) * JITTER;
  // Jitter first, cap second: the wait never exceeds max_seconds.
  const delayMs = Math.min(backoffSeconds(attempt, retry) * jitter, retry.max_seconds) * MS_PER_S;
  const at = Math.round(now + delayMs);
  if (receivedAt === null) return at;
  const lifetimeEnds = receivedAt + retry.lifetime_seconds * MS_PER_S;
  return Math.max(now, Math.min(at, lifetimeEnds));
}

/**
 * Has the message been in the queue for its whole lifetime? `lifetime` in seconds,
 * or the retry config (its lifetime_seconds).
 */
export function expired(receivedAt: number, now: number, lifetime: number | Pick<RetryConfig, 'lifetime_seconds'>): boolean {
  const seconds = typeof lifetime === 'number' ? lifetime : lifetime.lifetime_seconds;
  return now - receivedAt >= seconds * MS_PER_S;
}
