import { describe, expect, it } from 'vitest';
import { backoffSeconds, expired, nextAttemptAt, type RetryConfig } from '../../src/delivery/backoff.ts';

const retry: RetryConfig = { first_seconds: 300, max_seconds: 3600, factor: 2, lifetime_seconds: 5 * 24 * 3600 };
const NOW = Date.UTC(2025, 0, 14, 10, 0, 0);
const RECEIVED = NOW - 60_000;
const middle = () => 0.5; // no jitter
const low = () => 0; // -10%
const high = () => 0.999999; // ~+10%

describe('backoffSeconds', () => {
  it.each([
    [1, 300],
    [2, 600],
    [3, 1200],
    [4, 2400],
    [5, 3600],
    [50, 3600],
    [5000, 3600], // factor ** n overflows to Infinity: still capped
    [0, 300],
  ])('attempt %i → %i s', (attempt, seconds) => {
    expect(backoffSeconds(attempt, retry)).toBe(seconds);
  });
});

describe('nextAttemptAt', () => {
  it('grows exponentially from first_seconds by factor', () => {
    expect(nextAttemptAt(1, RECEIVED, NOW, retry, middle)).toBe(NOW + 300_000);
    expect(nextAttemptAt(2, RECEIVED, NOW, retry, middle)).toBe(NOW + 600_000);
    expect(nextAttemptAt(3, RECEIVED, NOW, retry, middle)).toBe(NOW + 1_200_000);
  });

  it('jitters by at most ±10%', () => {
    expect(nextAttemptAt(1, RECEIVED, NOW, retry, low)).toBe(NOW + 270_000);
    expect(nextAttemptAt(1, RECEIVED, NOW, retry, high)).toBeCloseTo(NOW + 330_000, -2);
    for (let i = 0; i < 200; i++) {
      const at = nextAttemptAt(2, RECEIVED, NOW, retry);
      expect(at).toBeGreaterThanOrEqual(NOW + 540_000);
      expect(at).toBeLessThanOrEqual(NOW + 660_000);
    }
  });

  it('never waits longer than max_seconds', () => {
    expect(nextAttemptAt(20, RECEIVED, NOW, retry, high)).toBe(NOW + 3_600_000);
    expect(nextAttemptAt(20, RECEIVED, NOW, retry, low)).toBe(NOW + 3_240_000);
  });

  it('does not schedule past the end of the queue lifetime', () => {
    const short = { ...retry, lifetime_seconds: 400 };
    // received 60 s ago, lifetime 400 s: ends in 340 s, before the 600 s backoff.
    expect(nextAttemptAt(2, RECEIVED, NOW, short, middle)).toBe(RECEIVED + 400_000);
    // already past the lifetime: try (and bounce) now, not in the past.
    expect(nextAttemptAt(2, NOW - 10_000_000, NOW, short, middle)).toBe(NOW);
  });

  it('has a three-argument form without the lifetime clamp', () => {
    expect(nextAttemptAt(2, NOW, retry, middle)).toBe(NOW + 600_000);
    expect(nextAttemptAt(2, NOW, { ...retry, lifetime_seconds: 1 }, middle)).toBe(NOW + 600_000);
  });
});

describe('expired', () => {
  it('is true once the lifetime has passed', () => {
    expect(expired(NOW - 4_999_999, NOW, 5000)).toBe(false);
    expect(expired(NOW - 5_000_000, NOW, 5000)).toBe(true);
    expect(expired(NOW - 5 * 24 * 3600 * 1000, NOW, retry)).toBe(true);
    expect(expired(NOW - 1000, NOW, retry)).toBe(false);
  });
});
