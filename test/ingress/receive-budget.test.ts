// The receive budget: message bytes held by ingress at once. Unit rows for the
// line (the first message in DATA always gets its bytes, the others wait while
// the total is over the limit), then real sessions sending interleaved large
// messages under a small budget: all of them are queued, none is lost, and no set
// of half-received messages waits on each other forever.
import { describe, expect, test } from 'vitest';
import { ReceiveBudget } from '../../src/ingress/receive-budget.ts';
import { ingressConfig, RawClient, runSteps, startTestIngress } from './harness.ts';

describe('ReceiveBudget', () => {
  test('within the limit every message gets its bytes at once', () => {
    const budget = new ReceiveBudget(100);
    const a = budget.open();
    const b = budget.open();
    expect(a.take(40)).toBeNull();
    expect(b.take(60)).toBeNull();
    expect(budget.usage).toEqual({ bytes: 100, messages: 2, waiting: 0 });
  });

  test('over the limit a later message waits; the first in line never does', async () => {
    const budget = new ReceiveBudget(100);
    const first = budget.open();
    const second = budget.open();
    expect(second.take(90)).toBeNull();
    // the first in line goes over the limit rather than wait behind a later message
    expect(first.take(50)).toBeNull();
    let resumed = false;
    const wait = second.take(20);
    expect(wait).not.toBeNull();
    void wait!.then(() => (resumed = true));
    await Promise.resolve();
    expect(resumed).toBe(false);
    expect(budget.usage).toEqual({ bytes: 140, messages: 2, waiting: 1 });
    // the first message is committed: the second is now first in line and resumes
    first.close();
    await wait;
    expect(resumed).toBe(true);
    expect(budget.usage).toEqual({ bytes: 110, messages: 1, waiting: 0 });
    second.close();
    expect(budget.usage).toEqual({ bytes: 0, messages: 0, waiting: 0 });
  });

  test('waiters resume in arrival order as bytes are given back', async () => {
    const budget = new ReceiveBudget(100);
    const head = budget.open();
    const [b, c] = [budget.open(), budget.open()];
    head.take(100);
    const order: string[] = [];
    void b.take(30)!.then(() => order.push('b'));
    void c.take(30)!.then(() => order.push('c'));
    head.close();
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['b', 'c']);
  });

  test('a message that goes away while waiting is let go and gives its bytes back', async () => {
    const budget = new ReceiveBudget(10);
    const head = budget.open();
    const other = budget.open();
    head.take(10);
    other.take(5);
    const wait = other.take(5)!;
    other.close();
    await wait;
    expect(budget.usage).toEqual({ bytes: 10, messages: 1, waiting: 0 });
    head.close();
    expect(budget.usage.bytes).toBe(0);
  });

  test('a smaller limit after a reload applies to what is asked next', () => {
    const budget = new ReceiveBudget(100);
    const head = budget.open();
    const other = budget.open();
    head.take(10);
    budget.limit = 15;
    expect(other.take(10)).not.toBeNull();
    budget.limit = 1000;
    expect(budget.usage.waiting).toBe(0);
  });
});

describe('sessions under a small receive budget', () => {
  test('four interleaved 1.5 MB messages under a 1 MiB budget: all queued, byte for byte', async () => {
    const t = await startTestIngress({ config: ingressConfig({ receive_budget_bytes: 1024 * 1024, max_message_bytes: 4 * 1024 * 1024 }) });
    try {
      const line = 'y'.repeat(998) + '\r\n';
      const body = (i: number) => `Subject: big ${i}\r\n\r\n${line.repeat(1500)}`;
      const clients = await Promise.all([0, 1, 2, 3].map(() => RawClient.open(t.port())));
      for (const c of clients) await runSteps(c, [['EHLO a.test', 250], ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<b@example.test>', 250], ['DATA', 354]]);
      // Every client sends its first half before any sends its second: without the
      // first-in-line rule, four half-received messages would each wait for the others.
      const halves = clients.map((_c, i) => {
        const text = body(i);
        return [text.slice(0, text.length / 2), text.slice(text.length / 2)];
      });
      clients.forEach((c, i) => c.write(halves[i]![0]!));
      clients.forEach((c, i) => c.write(halves[i]![1]! + '.\r\n'));
      const replies = await Promise.all(clients.map((c) => c.reply(20_000)));
      expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 250]);
      expect(t.store.messages).toHaveLength(4);
      expect(t.store.messages.map((m) => m.subject).sort()).toEqual(['big 0', 'big 1', 'big 2', 'big 3']);
      for (const m of t.store.messages) expect(m.body.toString('latin1').endsWith(`\r\n\r\n${line.repeat(1500)}`)).toBe(true);
      await Promise.all(clients.map((c) => c.quit()));
    } finally {
      await t.close();
    }
  });
});
