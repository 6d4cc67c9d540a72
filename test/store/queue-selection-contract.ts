// The queue selection part of the Store contract (QueueSelection, countQueue,
// listQueue's select, actOnQueue): what `sealrelay queue ... ALL --state deferred
// --domain example.com` relies on. Every implementation must pass it; it speaks
// only the Store interface.
import { describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { isOperatorRecord, type OperatorAction, type QueueSelection, type Store } from '../../src/store/store.ts';
import { message, type ContractOptions } from './contract.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const AUDIT = { actor: { kind: 'os-user' as const, name: 'ops' }, action: 'queue.delete' as const };

/**
 * A queue with one message in each state, from several senders and domains, of several ages:
 *   NEW   queued (never tried)      app@clinic.test    a@one.test, b@two.test   received now
 *   DEF   deferred (tried once)     app@clinic.test    c@one.test, d@two.test   received 3 days ago
 *   ACT   active (a worker has it)  Bill@Billing.test  e@one.test               received 2 hours ago
 *   HLD   held                      <>                 f@two.test               received 1 day ago
 */
async function seed(s: Store, now = Date.now()): Promise<void> {
  await s.enqueue(message({ queueId: 'DEF', sender: 'app@clinic.test', recipients: ['c@one.test', 'd@two.test'], receivedAt: now - 3 * DAY }));
  await s.enqueue(message({ queueId: 'ACT', sender: 'Bill@Billing.test', recipients: ['e@one.test'], receivedAt: now - 2 * HOUR }));
  const claimed = await s.claim({ owner: 'w', limit: 10, leaseMs: HOUR });
  expect(claimed).toHaveLength(3);
  await s.finish(
    [],
    claimed.filter((i) => i.queueId === 'DEF').map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: '451 later', nextAttemptAt: now + HOUR })),
  );
  await s.enqueue(message({ queueId: 'HLD', sender: '', recipients: ['f@two.test'], receivedAt: now - DAY }));
  expect(await s.hold('HLD', 'seed')).toBe(1);
  await s.enqueue(message({ queueId: 'NEW', sender: 'app@clinic.test', recipients: ['a@one.test', 'b@two.test'], receivedAt: now }));
}

export function queueSelectionContract<Place>(name: string, opts: ContractOptions<Place>): void {
  describe(`Store contract, queue selection: ${name}`, () => {
    const withStore = async (fn: (s: Store) => Promise<void>) => {
      const s = await opts.open(opts.newPlace());
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    };
    const ids = async (s: Store, select: QueueSelection) => (await s.listQueue({ select })).map((e) => e.queueId).sort();

    it('each waiting recipient is in exactly one state; list and count agree', () =>
      withStore(async (s) => {
        await seed(s);
        expect(await ids(s, { states: ['queued'] })).toEqual(['NEW']);
        expect(await ids(s, { states: ['deferred'] })).toEqual(['DEF']);
        expect(await ids(s, { states: ['active'] })).toEqual(['ACT']);
        expect(await ids(s, { states: ['held'] })).toEqual(['HLD']);
        expect(await ids(s, { states: ['deferred', 'held'] })).toEqual(['DEF', 'HLD']);
        expect(await s.countQueue({ states: ['queued'] })).toEqual({ messages: 1, recipients: 2 });
        expect(await s.countQueue({})).toEqual({ messages: 4, recipients: 6 });
        // Oldest first, as the plain list; each entry whole (every recipient).
        expect((await s.listQueue({ select: {} })).map((e) => e.queueId)).toEqual(['DEF', 'HLD', 'ACT', 'NEW']);
        expect((await s.listQueue({ select: { domain: 'one.test' }, limit: 2 })).map((e) => [e.queueId, e.recipients.length])).toEqual([['DEF', 2], ['ACT', 1]]);
      }));

    it('recipient domain (exact, any case), sender address or domain (any case) or the null sender, and age', () =>
      withStore(async (s) => {
        const now = Date.now();
        await seed(s, now);
        expect(await ids(s, { domain: 'TWO.test' })).toEqual(['DEF', 'HLD', 'NEW']);
        expect(await s.countQueue({ domain: 'two.test' })).toEqual({ messages: 3, recipients: 3 });
        expect(await ids(s, { domain: 'wo.test' })).toEqual([]);
        expect(await ids(s, { sender: { address: 'bill@billing.TEST' } })).toEqual(['ACT']);
        expect(await ids(s, { sender: { domain: 'CLINIC.test' } })).toEqual(['DEF', 'NEW']);
        expect(await ids(s, { sender: { domain: 'linic.test' } })).toEqual([]);
        expect(await ids(s, { sender: { address: '' } })).toEqual(['HLD']);
        expect(await ids(s, { receivedBefore: now - 12 * HOUR })).toEqual(['DEF', 'HLD']);
        expect(await ids(s, { receivedAfter: now - 12 * HOUR })).toEqual(['ACT', 'NEW']);
        expect(await ids(s, { receivedAfter: now - 2 * DAY, receivedBefore: now - HOUR })).toEqual(['ACT', 'HLD']);
        expect(await ids(s, { sender: { domain: 'clinic.test' }, domain: 'one.test', states: ['deferred'] })).toEqual(['DEF']);
        expect(await s.countQueue({ sender: { domain: 'clinic.test' }, domain: 'one.test' })).toEqual({ messages: 2, recipients: 2 });
      }));

    it('an id prefix is taken literally: % and _ are characters, not wildcards', () =>
      withStore(async (s) => {
        for (const queueId of ['ab_1', 'abX1', 'ab%2', 'abc', 'zz']) await s.enqueue(message({ queueId, recipients: ['x@one.test'] }));
        expect(await ids(s, { idPrefix: 'ab_' })).toEqual(['ab_1']);
        expect(await ids(s, { idPrefix: 'ab%' })).toEqual(['ab%2']);
        expect(await ids(s, { idPrefix: '%' })).toEqual([]);
        expect(await ids(s, { idPrefix: '_' })).toEqual([]);
        expect(await ids(s, { idPrefix: 'ab' })).toEqual(['ab%2', 'abX1', 'ab_1', 'abc'].sort());
        expect(await ids(s, { idPrefix: 'AB' })).toEqual([]);
        expect(await ids(s, { queueId: 'ab' })).toEqual([]);
        expect(await ids(s, { queueId: 'abc' })).toEqual(['abc']);
        await expect(s.countQueue({ idPrefix: '' })).rejects.toThrow(/prefix must not be empty/);
      }));

    it('delete of the deferred recipients leaves every other message and recipient as it was, and records each', () =>
      withStore(async (s) => {
        await seed(s);
        const before = await s.listQueue();
        const batch = await s.actOnQueue('delete', { states: ['deferred'] }, { operator: 'ops', limit: 100, audit: AUDIT });
        expect(batch).toEqual({ messages: 1, recipients: 2, acted: [{ queueId: 'DEF', recipients: 2 }], resumeAfter: null });
        expect(await s.getQueueEntry('DEF')).toBeNull();
        expect(await s.listQueue()).toEqual(before.filter((e) => e.queueId !== 'DEF'));
        const log = await s.queryLog({ outcome: 'deleted' });
        expect(log.map((r) => [r.queueId, r.recipient, isOperatorRecord(r) && r.operator, isOperatorRecord(r) && r.attemptsBefore])).toEqual([
          ['DEF', 'c@one.test', 'ops', 1],
          ['DEF', 'd@two.test', 'ops', 1],
        ]);
        expect(log[0]).toMatchObject({ kind: 'operator', action: 'delete', sender: 'app@clinic.test', domain: 'one.test' });
        const audit = await s.listAudit({ limit: 100 });
        expect(audit.map((a) => [a.actorName, a.action, a.target, a.detail])).toEqual([['ops', 'queue.delete', 'DEF', '2 recipients']]);
      }));

    it("only the selected recipients change: a domain's are deleted, the message keeps the others until none is left", () =>
      withStore(async (s) => {
        await seed(s);
        const one = await s.actOnQueue('delete', { domain: 'one.test' }, { operator: 'ops', limit: 100 });
        expect(one.acted).toEqual([{ queueId: 'ACT', recipients: 1 }, { queueId: 'DEF', recipients: 1 }, { queueId: 'NEW', recipients: 1 }]);
        expect(await s.getQueueEntry('ACT')).toBeNull();
        expect((await s.getQueueEntry('NEW'))?.recipients.map((r) => [r.recipient, r.state])).toEqual([['b@two.test', 'queued']]);
        expect((await s.getQueueEntry('DEF'))?.recipients.map((r) => r.recipient)).toEqual(['d@two.test']);
        expect(await s.countQueue({})).toEqual({ messages: 3, recipients: 3 });
        // No audit without `audit`; the records are still written.
        expect(await s.listAudit({ limit: 10 })).toEqual([]);
        expect((await s.queryLog({ outcome: 'deleted' })).map((r) => r.recipient).sort()).toEqual(['a@one.test', 'c@one.test', 'e@one.test']);
      }));

    it('hold, release and flush change only the recipients they apply to, and record only those', () =>
      withStore(async (s) => {
        await seed(s);
        const act = (action: OperatorAction, select: QueueSelection) => s.actOnQueue(action, select, { operator: 'ops', limit: 100 });
        // Only HLD is held: release changes nothing else.
        expect(await act('release', {})).toMatchObject({ messages: 1, recipients: 1, acted: [{ queueId: 'HLD', recipients: 1 }] });
        // ACT is active and is held too (as `queue hold <id>` does).
        expect(await act('hold', {})).toMatchObject({ messages: 4, recipients: 6 });
        expect(await act('hold', {})).toMatchObject({ messages: 0, recipients: 0 });
        expect(await s.countQueue({ states: ['held'] })).toEqual({ messages: 4, recipients: 6 });
        expect(await act('release', { sender: { domain: 'clinic.test' } })).toMatchObject({ messages: 2, recipients: 4 });
        expect(await ids(s, { states: ['held'] })).toEqual(['ACT', 'HLD']);
        // Flush makes due what is not due yet: DEF's two (deferred an hour) were made due by the release already.
        const due = await s.listQueue({ select: { queueId: 'DEF' } });
        expect(due[0]?.recipients.every((r) => r.nextAttemptAt <= Date.now())).toBe(true);
        expect(await act('flush', { states: ['deferred', 'queued'] })).toMatchObject({ messages: 0, recipients: 0 });
        expect((await s.queryLog({ outcome: 'flushed' })).length).toBe(0);
        expect((await s.queryLog({ outcome: 'held' })).length).toBe(1 + 6);
        expect((await s.queryLog({ outcome: 'released' })).length).toBe(1 + 4);
      }));

    it('flush by domain makes only that domain due (postqueue -s)', () =>
      withStore(async (s) => {
        const now = Date.now();
        await s.enqueue(message({ queueId: 'M1', recipients: ['a@slow.test', 'b@fast.test'] }));
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: HOUR });
        await s.finish([], items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: 'x', nextAttemptAt: now + HOUR })));
        expect(await s.actOnQueue('flush', { domain: 'slow.test' }, { operator: 'ops', limit: 10 })).toMatchObject({ recipients: 1 });
        const next = await s.claim({ owner: 'w', limit: 10, leaseMs: HOUR });
        expect(next.map((i) => i.recipient)).toEqual(['a@slow.test']);
      }));

    it('batches walk the selection in id order, visit each message once and say where to go on', () =>
      withStore(async (s) => {
        for (const queueId of ['B1', 'B2', 'B3', 'B4', 'B5']) await s.enqueue(message({ queueId, recipients: ['x@one.test'] }));
        const seen: string[] = [];
        let afterId: string | undefined;
        for (let batches = 1; ; batches++) {
          const batch = await s.actOnQueue('hold', {}, { operator: 'ops', limit: 2, ...(afterId ? { afterId } : {}) });
          seen.push(...batch.acted.map((a) => a.queueId));
          if (batch.resumeAfter === null) {
            expect(batches).toBe(3);
            break;
          }
          afterId = batch.resumeAfter;
        }
        expect(seen).toEqual(['B1', 'B2', 'B3', 'B4', 'B5']);
        // Flush walks past messages with nothing to flush rather than stopping at them.
        expect(await s.actOnQueue('flush', {}, { operator: 'ops', limit: 2 })).toMatchObject({ messages: 0, resumeAfter: null });
      }));

    it('refuses an unnamed operator or a batch of nothing, and changes nothing', () =>
      withStore(async (s) => {
        await seed(s);
        await expect(s.actOnQueue('delete', {}, { operator: ' ', limit: 10 })).rejects.toThrow(/operator who acts must be named/);
        await expect(s.actOnQueue('delete', {}, { operator: 'ops', limit: 0 })).rejects.toThrow(/batch/);
        await expect(s.actOnQueue('delete', { states: [] }, { operator: 'ops', limit: 10 })).rejects.toThrow(/at least one state/);
        expect(await s.countQueue({})).toEqual({ messages: 4, recipients: 6 });
        expect(await s.queryLog({ outcome: 'deleted' })).toEqual([]);
      }));

    it('1,000 messages: delete of the deferred ones in batches of 200, an operator record and an audit entry each', () =>
      withStore(async (s) => {
        const now = Date.now();
        const n = 1000;
        await Promise.all(Array.from({ length: n }, (_, i) => s.enqueue(message({ queueId: `L${String(i).padStart(5, '0')}`, recipients: [`r${i}@${i % 2 ? 'odd' : 'even'}.test`], receivedAt: now - i }))));
        const claimed = await s.claim({ owner: 'w', limit: n, leaseMs: HOUR });
        await s.finish([] as DeliveryRecord[], claimed.filter((i) => i.domain === 'odd.test').map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: 'x', nextAttemptAt: now + HOUR })));
        await s.unclaim(claimed.filter((i) => i.domain === 'even.test'));
        expect(await s.countQueue({ states: ['deferred'] })).toEqual({ messages: n / 2, recipients: n / 2 });
        let total = 0;
        let batches = 0;
        let afterId: string | undefined;
        do {
          const batch = await s.actOnQueue('delete', { states: ['deferred'] }, { operator: 'ops', limit: 200, audit: AUDIT, ...(afterId ? { afterId } : {}) });
          total += batch.recipients;
          batches++;
          afterId = batch.resumeAfter ?? undefined;
        } while (afterId);
        expect([total, batches]).toEqual([n / 2, 3]);
        expect(await s.countQueue({})).toEqual({ messages: n / 2, recipients: n / 2 });
        expect(await s.countQueue({ domain: 'odd.test' })).toEqual({ messages: 0, recipients: 0 });
        expect((await s.queryLog({ outcome: 'deleted' })).length).toBe(n / 2);
        expect((await s.listAudit({ limit: n, action: 'queue.delete' })).length).toBe(n / 2);
      }));
  });
}
