// Queue ids: a time prefix that sorts by arrival, a random suffix that keeps ids made
// in the same millisecond apart — also across the refills of the suffixes' random pool.
import { describe, expect, test } from 'vitest';
import { newQueueId } from '../../src/store/queue-id.ts';

const ALPHABET = /^[0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz]{16}$/;

describe('newQueueId', () => {
  test('ids made in the same millisecond are all different, well past one fill of the random pool', () => {
    const now = Date.UTC(2025, 2, 4, 10, 11, 12);
    const ids = Array.from({ length: 5000 }, () => newQueueId(now));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(ALPHABET);
    // Same time, same prefix: only the random suffix tells them apart.
    expect(new Set(ids.map((id) => id.slice(0, 9))).size).toBe(1);
    // Every suffix character shows up: the suffixes are not stuck on a few values.
    expect(new Set(ids.flatMap((id) => [...id.slice(9)])).size).toBe(52);
  });

  test('ids sort by the time they were made', () => {
    const times = [Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 1) + 1, Date.UTC(2025, 5, 30, 23, 59, 59, 999), Date.UTC(2031, 0, 1)];
    const ids = times.map((t) => newQueueId(t));
    expect([...ids].sort()).toEqual(ids);
  });
});
