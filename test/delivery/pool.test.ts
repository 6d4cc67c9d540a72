// The delivery session pool: reuse per key, the per-host limit, idle expiry,
// and new limits taking effect on a reload without dropping work.
import { describe, expect, it, vi } from 'vitest';
import { SessionPool, type PooledSession } from '../../src/delivery/pool.ts';

/** A session stand-in that counts what the pool does with it (the pool is what is tested). */
class FakeSession implements PooledSession {
  usable = true;
  transactions = 0;
  closed = false;
  resets = 0;
  constructor(readonly id: number) {}
  async reset() {
    this.resets++;
  }
  close() {
    this.closed = true;
  }
}

function opener() {
  const made: FakeSession[] = [];
  return { made, open: async () => { const s = new FakeSession(made.length + 1); made.push(s); return s; } };
}

const use = (s: FakeSession) => {
  s.transactions++;
  return Promise.resolve(s.id);
};

describe('SessionPool', () => {
  it('reuses an idle session for the same key, never for another', async () => {
    const pool = new SessionPool<FakeSession>({ perHost: 2, idleMs: 1000, maxTransactions: 10 });
    const { made, open } = opener();
    expect(await pool.with('a', open, use)).toBe(1);
    expect(await pool.with('a', open, use)).toBe(1);
    expect(await pool.with('b', open, use)).toBe(2);
    expect(made[0]!.resets).toBe(1);
    pool.close();
    expect(made.every((s) => s.closed)).toBe(true);
  });

  it('holds callers beyond perHost until a session is free; a reload raising perHost lets them in', async () => {
    const pool = new SessionPool<FakeSession>({ perHost: 1, idleMs: 0, maxTransactions: 10 });
    const { made, open } = opener();
    let finishFirst!: () => void;
    const first = pool.with('a', open, (s) => new Promise<number>((resolve) => (finishFirst = () => resolve(s.id))));
    await new Promise((r) => setImmediate(r));
    let secondDone = false;
    const second = pool.with('a', open, async (s) => s.id).then((id) => ((secondDone = true), id));
    await new Promise((r) => setTimeout(r, 20));
    expect(secondDone).toBe(false);
    expect(made).toHaveLength(1);
    pool.configure({ perHost: 2, idleMs: 0, maxTransactions: 10 });
    expect(await second).toBe(2);
    finishFirst();
    expect(await first).toBe(1);
    pool.close();
  });

  it('a reload lowering maxTransactions retires sessions at their next release', async () => {
    const pool = new SessionPool<FakeSession>({ perHost: 1, idleMs: 1000, maxTransactions: 100 });
    const { made, open } = opener();
    await pool.with('a', open, use);
    await pool.with('a', open, use);
    expect(made).toHaveLength(1);
    pool.configure({ perHost: 1, idleMs: 1000, maxTransactions: 2 });
    await pool.with('a', open, use); // third transaction on session 1: it is closed after
    expect(made[0]!.closed).toBe(true);
    expect(await pool.with('a', open, use)).toBe(2);
    pool.close();
  });

  it('closes idle sessions after idleMs', async () => {
    const pool = new SessionPool<FakeSession>({ perHost: 1, idleMs: 30, maxTransactions: 10 });
    const { made, open } = opener();
    await pool.with('a', open, use);
    expect(made[0]!.closed).toBe(false);
    await vi.waitFor(() => expect(made[0]!.closed).toBe(true), { timeout: 5000, interval: 10 });
    expect(await pool.with('a', open, use)).toBe(2);
    pool.close();
  });
});
