// ByteBudget: bytes in work never exceed the budget (but one job larger than it
// runs alone), jobs start first come first served, and a failing job gives its
// bytes back.
import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/crypto/byte-budget.ts';

/** A job the test finishes by hand, recording the budget's use when it starts. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('ByteBudget', () => {
  it('holds work back while its bytes do not fit, and starts it as bytes come back, in arrival order', async () => {
    const budget = new ByteBudget(100);
    const started: string[] = [];
    const gates = new Map<string, ReturnType<typeof gate>>();
    const job = (name: string, bytes: number) => {
      const g = gate();
      gates.set(name, g);
      return budget.run(bytes, async () => {
        started.push(name);
        expect(budget.usage.bytes).toBeLessThanOrEqual(100);
        await g.opened;
        return name;
      });
    };
    const a = job('a', 60);
    const b = job('b', 30);
    const c = job('c', 50); // does not fit beside a and b
    const d = job('d', 5); // would fit, but waits its turn behind c
    await Promise.resolve();
    expect(started).toEqual(['a', 'b']);
    expect(budget.usage).toEqual({ bytes: 90, running: 2, waiting: 2 });
    gates.get('a')!.open();
    expect(await a).toBe('a');
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(['a', 'b', 'c', 'd']);
    expect(budget.usage).toEqual({ bytes: 85, running: 3, waiting: 0 });
    for (const name of ['b', 'c', 'd']) gates.get(name)!.open();
    expect(await Promise.all([b, c, d])).toEqual(['b', 'c', 'd']);
    expect(budget.usage).toEqual({ bytes: 0, running: 0, waiting: 0 });
  });

  it('a job larger than the whole budget runs, alone', async () => {
    const budget = new ByteBudget(100);
    const small = gate();
    const order: string[] = [];
    const first = budget.run(10, async () => {
      order.push('small');
      await small.opened;
    });
    const huge = budget.run(500, () => {
      order.push(`huge alone=${budget.usage.running === 1}`);
    });
    const after = budget.run(10, () => {
      order.push('after');
    });
    await Promise.resolve();
    expect(order).toEqual(['small']);
    small.open();
    await Promise.all([first, huge, after]);
    expect(order).toEqual(['small', 'huge alone=true', 'after']);
  });

  it('a job that throws gives its bytes back', async () => {
    const budget = new ByteBudget(100);
    await expect(budget.run(100, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(budget.usage).toEqual({ bytes: 0, running: 0, waiting: 0 });
    expect(await budget.run(100, () => 'ok')).toBe('ok');
  });

  it('refuses a budget that is not positive', () => {
    expect(() => new ByteBudget(0)).toThrow(RangeError);
  });
});
