// The Store contract: every implementation (SQLite now, PostgreSQL later) must
// pass this same suite. It speaks only the Store interface.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeRecord, type DeliveryRecord } from '../../src/delivery/record.ts';
import type { EventType, RelayEvent } from '../../src/events/event.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import {
  isOperatorRecord,
  isPortalRecord,
  portalItemState,
  type LogRecord,
  type NewMessage,
  type NewPortalItem,
  type PortalRecord,
  type QueueItem,
  type RecipientKey,
  type PruneKind,
  type Store,
} from '../../src/store/store.ts';
import { deferredMessage, finishedMessage, heldMessage, portalMessage } from './retention-seed.ts';

export function message(over: Partial<NewMessage> = {}): NewMessage {
  return {
    queueId: newQueueId(),
    sender: 'app@sender.test',
    recipients: ['a@one.test', 'b@one.test', 'c@two.test'],
    body: Buffer.from('Subject: hi\r\n\r\nbody\r\n'),
    messageId: `<${Math.random().toString(36).slice(2)}@sender.test>`,
    subject: 'hi',
    clientIp: '127.0.0.1',
    authUser: null,
    receivedAt: Date.now(),
    ...over,
  };
}

/** What the record of a recipient sent to the portal says of its item (delivery's PortalFacts). */
export function portalFacts(itemId: string, notification: string): NonNullable<DeliveryRecord['portal']> {
  return { itemId, expiresAt: new Date(Date.now() + 86_400_000).toISOString(), keyInLink: false, passphrase: false, keyId: 'k1', notification };
}

export function record(item: QueueItem, over: Partial<DeliveryRecord> = {}): DeliveryRecord {
  return makeRecord({
    queueId: item.queueId,
    seq: item.seq,
    messageId: item.messageId,
    attempt: item.attempt,
    at: new Date().toISOString(),
    sender: item.sender,
    recipient: item.recipient,
    domain: item.domain,
    decision: { rule: 'default', mode: 'opportunistic', verification: 'none', fallbackChain: [], reasons: ['test'] },
    method: 'plaintext',
    outcome: 'delivered',
    mx: { host: 'mx.one.test', ip: '127.0.0.1', port: 25, preference: 10 },
    starttlsOffered: false,
    tls: null,
    smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 ok' },
    durationMs: 5,
    ...over,
  });
}

/** A stored key as the key store sees it: opaque data, the facts beside it. */
export function recipientKey(over: Partial<RecipientKey> = {}): RecipientKey {
  return {
    fingerprint: 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678',
    kind: 'pgp',
    addresses: ['alice@example.org'],
    data: '-----BEGIN PGP PUBLIC KEY BLOCK-----\n(test)\n-----END PGP PUBLIC KEY BLOCK-----\n',
    label: 'Alice <alice@example.org>',
    createdAt: 1_700_000_000_000,
    expiresAt: null,
    revoked: false,
    unusable: null,
    source: 'import',
    importedAt: 1_700_000_100_000,
    ...over,
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A portal item as the store sees it: the sealed parts are opaque bytes (the vault's tests open real ones). */
export function portalItem(over: Partial<NewPortalItem> = {}): NewPortalItem {
  const now = Date.now();
  return {
    id: randomBytes(12).toString('hex'),
    queueId: newQueueId(),
    seq: 0,
    messageId: `<${Math.random().toString(36).slice(2)}@sender.test>`,
    sender: 'app@sender.test',
    recipient: 'pat@patient.test',
    createdAt: now,
    expiresAt: now + 30 * DAY_MS,
    size: 1234,
    tokenHash: randomBytes(32),
    sealed: { keyId: 'k1', wrapNonce: randomBytes(12), wrappedKey: randomBytes(48), contentNonce: randomBytes(12), content: randomBytes(1250), keyInLink: false },
    ...over,
  };
}

export interface ContractOptions<Place> {
  /** Somewhere new and empty for a store to live (a file path, a database name). */
  readonly newPlace: () => Place;
  /** Opens a store on a place; opening the same place again finds what was committed there. */
  readonly open: (place: Place) => Promise<Store>;
  /** The store is owned by one relay process, so every lease found at start is an orphan. */
  readonly singleNode: boolean;
}

export function storeContract<Place>(name: string, opts: ContractOptions<Place>): void {
  describe(`Store contract: ${name}`, () => {
    const withStore = async (fn: (s: Store) => Promise<void>, place = opts.newPlace()) => {
      const s = await opts.open(place);
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    };

    it('enqueue makes every recipient claimable once, with the message facts', () =>
      withStore(async (s) => {
        const m = message();
        await s.enqueue(m);
        const items = await s.claim({ owner: 'w1', limit: 10, leaseMs: 60_000 });
        expect(items.map((i) => i.recipient).sort()).toEqual([...m.recipients].sort());
        expect(items.every((i) => i.queueId === m.queueId && i.attempt === 1 && i.size === m.body.length)).toBe(true);
        expect(items.find((i) => i.recipient === 'c@two.test')?.domain).toBe('two.test');
        expect(await s.claim({ owner: 'w2', limit: 10, leaseMs: 60_000 })).toEqual([]);
        expect((await s.readBody(m.queueId))?.equals(m.body)).toBe(true);
      }));

    it('a message staged in parts: committed whole with its head, read back in order, deleted with its message', () =>
      withStore(async (s) => {
        const head = Buffer.from('Received: from x\r\nSubject: parts\r\n\r\nfirst\r\n');
        const parts = [Buffer.alloc(300_000, 'a\r\n'), Buffer.alloc(300_000, 'b\r\n'), Buffer.from('last\r\n')];
        const m = message({ body: head, staged: { parts: parts.length, bytes: parts.reduce((n, p) => n + p.length, 0) } });
        const whole = Buffer.concat([head, ...parts]);
        // Written in order, as ingress does, but each as a copy: the store may take a part's memory.
        for (const [i, part] of parts.entries()) await s.stageBodyPart(m.queueId, i + 1, Buffer.from(part));
        expect(await s.getQueueEntry(m.queueId)).toBeNull();
        await s.enqueue(m);
        expect((await s.getQueueEntry(m.queueId))?.size).toBe(whole.length);
        expect((await s.readBody(m.queueId))?.equals(whole)).toBe(true);
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        expect(items.every((i) => i.size === whole.length)).toBe(true);
        // Discarding parts of a message already queued changes nothing.
        await s.discardStaged(m.queueId);
        expect((await s.readBody(m.queueId))?.equals(whole)).toBe(true);
        expect(await s.deleteEntry(m.queueId, 'test')).toBe(3);
        expect(await s.readBody(m.queueId)).toBeNull();
      }));

    it('an enqueue naming parts that were not all staged fails and queues nothing', () =>
      withStore(async (s) => {
        const m = message({ staged: { parts: 2, bytes: 20 } });
        await s.stageBodyPart(m.queueId, 1, Buffer.alloc(10, 'x'));
        await expect(s.enqueue(m)).rejects.toThrow(/staged part/);
        expect(await s.getQueueEntry(m.queueId)).toBeNull();
        await s.stageBodyPart(m.queueId, 2, Buffer.alloc(9, 'x'));
        await expect(s.enqueue(m)).rejects.toThrow(/staged part/);
        expect(await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).toEqual([]);
        await expect(s.stageBodyPart(m.queueId, 0, Buffer.alloc(1))).rejects.toThrow(/1 or more/);
      }));

    it('parts of a message never enqueued: dropped by discardStaged, and at the next start by recoverInterrupted', async () => {
      const place = opts.newPlace();
      const dropped = newQueueId();
      const orphan = newQueueId();
      const kept = message();
      await withStore(async (s) => {
        await s.stageBodyPart(dropped, 1, Buffer.from('refused\r\n'));
        await s.discardStaged(dropped);
        expect(await s.readBody(dropped)).toBeNull();
        await s.stageBodyPart(orphan, 1, Buffer.from('client went away\r\n'));
        expect((await s.readBody(orphan))?.toString()).toBe('client went away\r\n');
        await s.enqueue(kept);
      }, place);
      await withStore(async (s) => {
        await s.recoverInterrupted();
        expect(await s.readBody(orphan)).toBeNull();
        expect((await s.readBody(kept.queueId))?.equals(kept.body)).toBe(true);
      }, place);
    });

    it('a lease that expires makes the work claimable by another worker, counting the attempt', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['x@one.test'] }));
        const now = Date.now();
        expect(await s.claim({ owner: 'w1', limit: 10, leaseMs: 1000, now })).toHaveLength(1);
        expect(await s.claim({ owner: 'w2', limit: 10, leaseMs: 1000, now: now + 500 })).toHaveLength(0);
        const again = await s.claim({ owner: 'w2', limit: 10, leaseMs: 1000, now: now + 1001 });
        expect(again).toHaveLength(1);
        expect(again[0]?.attempt).toBe(2);
      }));

    it('queue totals: messages, waiting recipients, bytes and the oldest message still queued', () =>
      withStore(async (s) => {
        expect(await s.queueStats()).toMatchObject({ messages: 0, recipients: 0, bytes: 0, oldestReceivedAt: null });
        const old = message({ receivedAt: 1_700_000_000_000, recipients: ['a@one.test'] });
        const young = message({ receivedAt: 1_700_000_100_000, recipients: ['b@one.test', 'c@one.test'] });
        await s.enqueue(young);
        await s.enqueue(old);
        expect(await s.queueStats()).toMatchObject({ messages: 2, recipients: 3, bytes: old.body.length + young.body.length, oldestReceivedAt: old.receivedAt });
        const [item] = (await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).filter((i) => i.queueId === old.queueId);
        await s.finish([record(item!)], [{ queueId: old.queueId, seq: 0, outcome: 'delivered', error: null }]);
        expect((await s.queueStats()).oldestReceivedAt).toBe(young.receivedAt);
      }));

    it('finish settles recipients, stores records, and removes a message with nothing left', () =>
      withStore(async (s) => {
        const m = message();
        await s.enqueue(m);
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        const [a, b, c] = items.sort((x, y) => x.seq - y.seq) as [QueueItem, QueueItem, QueueItem];
        const later = Date.now() + 300_000;
        await s.finish(
          [record(a), record(b, { outcome: 'bounced', method: 'none', smtp: { code: 550, enhanced: '5.1.1', response: '550 no' } }), record(c, { outcome: 'deferred', method: 'none', smtp: { code: 451, enhanced: '4.4.1', response: '451 later' } })],
          [
            { queueId: a.queueId, seq: a.seq, outcome: 'delivered', error: null },
            { queueId: b.queueId, seq: b.seq, outcome: 'bounced', error: '550 no' },
            { queueId: c.queueId, seq: c.seq, outcome: 'deferred', error: '451 later', nextAttemptAt: later },
          ],
        );
        const entry = await s.getQueueEntry(m.queueId);
        expect(entry?.recipients.map((r) => r.state)).toEqual(['delivered', 'bounced', 'queued']);
        expect(entry?.recipients[2]?.nextAttemptAt).toBe(later);
        expect(entry?.recipients[2]?.lastError).toBe('451 later');
        expect(await s.claim({ owner: 'w', limit: 10, leaseMs: 1 })).toEqual([]);
        expect(await s.nextDueAt()).toBe(later);

        const [c2] = await s.claim({ owner: 'w', limit: 10, leaseMs: 1, now: later });
        await s.finish([record(c2 as QueueItem)], [{ queueId: c.queueId, seq: c.seq, outcome: 'delivered', error: null }]);
        expect(await s.getQueueEntry(m.queueId)).toBeNull();
        expect(await s.readBody(m.queueId)).toBeNull();
        expect(await s.queryRecords({ message: m.queueId })).toHaveLength(4);
      }));

    it('bounces enqueued in finish are committed with the settlement', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['x@one.test'] }));
        const [item] = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        const bounce = message({ sender: '', recipients: ['app@sender.test'] });
        await s.finish([record(item as QueueItem, { outcome: 'bounced', method: 'none' })], [{ queueId: item!.queueId, seq: item!.seq, outcome: 'bounced', error: 'x' }], [bounce]);
        const next = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        expect(next.map((i) => [i.queueId, i.sender, i.recipient])).toEqual([[bounce.queueId, '', 'app@sender.test']]);
      }));

    it('hold, release, flush and delete act like postsuper', () =>
      withStore(async (s) => {
        const m = message({ recipients: ['x@one.test', 'y@one.test'] });
        await s.enqueue(m);
        expect(await s.hold(m.queueId, 'alice')).toBe(2);
        expect(await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).toEqual([]);
        expect((await s.listQueue())[0]?.recipients.every((r) => r.state === 'held')).toBe(true);
        expect(await s.releaseHold(m.queueId, 'alice')).toBe(2);
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        const far = Date.now() + 3_600_000;
        await s.finish(
          [],
          items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: 'later', nextAttemptAt: far })),
        );
        expect(await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).toEqual([]);
        expect(await s.flush(m.queueId, 'alice')).toBe(2);
        expect(await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).toHaveLength(2);
        expect(await s.deleteEntry(m.queueId, 'alice')).toBe(2);
        expect(await s.getQueueEntry(m.queueId)).toBeNull();
        expect(await s.deleteEntry('nope', 'alice')).toBe(0);
      }));

    it('each operator action records what it did to each recipient it changed; a deleted message ends on `deleted`', () =>
      withStore(async (s) => {
        const m = message({ recipients: ['x@one.test', 'y@one.test', 'z@two.test'] });
        await s.enqueue(m);
        const [x, y, z] = (await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).sort((a, b) => a.seq - b.seq) as [QueueItem, QueueItem, QueueItem];
        const far = Date.now() + 3_600_000;
        const later = (i: QueueItem) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: '451 later', nextAttemptAt: far });
        const deferred = { outcome: 'deferred' as const, method: 'none' as const, smtp: { code: 451, enhanced: '4.7.1', response: '451 later' } };
        await s.finish([record(x), record(y, deferred), record(z, deferred)], [{ queueId: x.queueId, seq: x.seq, outcome: 'delivered', error: null }, later(y), later(z)]);
        const before = await s.logAfter(null, {});

        // x is delivered: no action changes it. A second hold changes nothing and writes nothing.
        expect(await s.flush(m.queueId, 'carol')).toBe(2);
        expect(await s.hold(m.queueId, 'alice')).toBe(2);
        expect(await s.hold(m.queueId, 'alice')).toBe(0);
        expect(await s.releaseHold(m.queueId, 'bob')).toBe(2);
        expect(await s.deleteEntry(m.queueId, 'dave')).toBe(2);

        const log = await s.queryLog({ message: m.queueId });
        const trace = (r: LogRecord) => [r.recipient, r.outcome, isOperatorRecord(r) ? r.operator : (r as DeliveryRecord).attempt];
        expect(log.map(trace)).toEqual([
          ['x@one.test', 'delivered', 1], ['y@one.test', 'deferred', 1], ['z@two.test', 'deferred', 1],
          ['y@one.test', 'flushed', 'carol'], ['z@two.test', 'flushed', 'carol'],
          ['y@one.test', 'held', 'alice'], ['z@two.test', 'held', 'alice'],
          ['y@one.test', 'released', 'bob'], ['z@two.test', 'released', 'bob'],
          ['y@one.test', 'deleted', 'dave'], ['z@two.test', 'deleted', 'dave'],
        ]);
        const deleted = log.at(-1)!;
        expect(deleted).toEqual({
          kind: 'operator', queueId: m.queueId, seq: z.seq, messageId: m.messageId, at: deleted.at, sender: m.sender,
          recipient: 'z@two.test', domain: 'two.test', action: 'delete', outcome: 'deleted', operator: 'dave', attemptsBefore: 1,
        });
        expect(Date.parse(deleted.at)).toBeGreaterThanOrEqual(Date.parse(log[2]!.at));
        // Found by the Message-ID too, after the message itself is gone.
        expect((await s.queryLog({ message: m.messageId!.slice(1, -1), outcome: 'deleted' })).map((r) => r.recipient)).toEqual(['y@one.test', 'z@two.test']);
        // Following the log sees the actions in the order they were made.
        expect((await s.logAfter(before.cursor, { recipient: 'y@one.test' })).records.map((r) => r.outcome)).toEqual(['flushed', 'held', 'released', 'deleted']);

        // The attempts alone (what reports and evidence read) are not confused by the actions.
        expect((await s.queryRecords({ message: m.queueId })).map((r) => [r.recipient, r.outcome])).toEqual([
          ['x@one.test', 'delivered'], ['y@one.test', 'deferred'], ['z@two.test', 'deferred'],
        ]);
        expect(await s.queryRecords({ outcome: 'deleted' })).toEqual([]);
        expect((await s.queryLog({ outcome: 'deferred' })).map((r) => r.recipient)).toEqual(['y@one.test', 'z@two.test']);
      }));

    it('an operator action is not an attempt: attempt numbers, domain knowledge and duplicates stay as they were', () =>
      withStore(async (s) => {
        const m = message({ recipients: ['a@learn.test'] });
        await s.enqueue(m);
        expect(await s.hold(m.queueId, 'alice')).toBe(1);
        expect(await s.releaseHold(m.queueId, 'alice')).toBe(1);
        const [item] = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        expect(item?.attempt).toBe(1);
        await s.finish([record(item!, { outcome: 'deferred', method: 'none', starttlsOffered: true })], [
          { queueId: m.queueId, seq: 0, outcome: 'deferred', error: 'x', nextAttemptAt: Date.now() + 3_600_000 },
        ]);
        const learned = await s.getDomain('learn.test');
        expect(learned).toMatchObject({ attempts: 1 });
        expect(await s.flush(null, 'alice')).toBe(1);
        const [again] = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        expect(again?.attempt).toBe(2);
        await s.unclaim([again!]);
        expect(await s.deleteEntry(m.queueId, 'alice')).toBe(1);
        expect(await s.getDomain('learn.test')).toEqual(learned);
        expect((await s.queueStats()).possibleDuplicates).toBe(0);
        expect((await s.queryLog({ message: m.queueId })).map((r) => r.outcome)).toEqual(['held', 'released', 'deferred', 'flushed', 'deleted']);
        expect((await s.queryLog({ outcome: 'deleted' }))[0]).toMatchObject({ attemptsBefore: 1 });
      }));

    it('flushing the whole queue records every recipient it made due, and only those', () =>
      withStore(async (s) => {
        const m1 = message({ recipients: ['a@one.test', 'b@one.test'] });
        const m2 = message({ recipients: ['c@two.test'] });
        const due = message({ recipients: ['d@three.test'] });
        for (const m of [m1, m2]) await s.enqueue(m);
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        await s.finish([], items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: 'x', nextAttemptAt: Date.now() + 3_600_000 })));
        await s.enqueue(due);
        expect(await s.flush(null, 'ops')).toBe(3);
        const flushed = await s.queryLog({ outcome: 'flushed' });
        expect(flushed.map((r) => [r.queueId, r.recipient]).sort()).toEqual([[m1.queueId, 'a@one.test'], [m1.queueId, 'b@one.test'], [m2.queueId, 'c@two.test']].sort());
        expect(flushed.every((r) => isOperatorRecord(r) && r.operator === 'ops' && r.action === 'flush')).toBe(true);
      }));

    it('an operator action must name who acts; without one it is refused and changes nothing', () =>
      withStore(async (s) => {
        const m = message({ recipients: ['x@one.test'] });
        await s.enqueue(m);
        await expect(s.hold(m.queueId, '  ')).rejects.toThrow(/queue hold: the operator who acts must be named/);
        await expect(s.deleteEntry(m.queueId, '')).rejects.toThrow(/queue delete: the operator/);
        expect((await s.getQueueEntry(m.queueId))?.recipients.map((r) => r.state)).toEqual(['queued']);
        expect(await s.queryLog({})).toEqual([]);
      }));

    it('recoverInterrupted frees the claims of a run that died, and says how many', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['x@one.test', 'y@one.test'] }));
        // A shared store can only know a worker is dead once its lease expired.
        expect(await s.claim({ owner: 'dead', limit: 1, leaseMs: opts.singleNode ? 600_000 : 1 })).toHaveLength(1);
        if (!opts.singleNode) await new Promise((r) => setTimeout(r, 5));
        expect(await s.recoverInterrupted()).toBe(1);
        const again = await s.claim({ owner: 'new', limit: 10, leaseMs: 60_000 });
        expect(again.map((i) => i.attempt).sort()).toEqual([1, 2]);
      }));

    it('recoverInterrupted adds what it freed to the possible duplicates, a total that survives reopening', async () => {
      const place = opts.newPlace();
      const leaseMs = opts.singleNode ? 600_000 : 1;
      const dieMidAttempt = async (s: Store, limit: number) => {
        expect(await s.claim({ owner: 'dead', limit, leaseMs })).toHaveLength(limit);
        if (!opts.singleNode) await new Promise((r) => setTimeout(r, 5));
      };
      await withStore(async (s) => {
        expect((await s.queueStats()).possibleDuplicates).toBe(0);
        await s.enqueue(message({ recipients: ['x@one.test', 'y@one.test', 'z@two.test'] }));
        await dieMidAttempt(s, 2);
        expect(await s.recoverInterrupted()).toBe(2);
        expect((await s.queueStats()).possibleDuplicates).toBe(2);
        // Nothing to free: the total stays.
        expect(await s.recoverInterrupted()).toBe(0);
        expect((await s.queueStats()).possibleDuplicates).toBe(2);
      }, place);
      await withStore(async (s) => {
        expect((await s.queueStats()).possibleDuplicates).toBe(2);
        await dieMidAttempt(s, 1);
        expect(await s.recoverInterrupted()).toBe(1);
        expect(await s.queueStats()).toMatchObject({ messages: 1, recipients: 3, held: 0, possibleDuplicates: 3 });
      }, place);
      await withStore(async (s) => expect((await s.queueStats()).possibleDuplicates).toBe(3), place);
    });

    it('unclaim and finish free claims without counting a possible duplicate', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['x@one.test', 'y@one.test'] }));
        const [x, y] = (await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).sort((a, b) => a.seq - b.seq) as [QueueItem, QueueItem];
        await s.unclaim([x]);
        await s.finish([record(y)], [{ queueId: y.queueId, seq: y.seq, outcome: 'delivered', error: null }]);
        expect(await s.recoverInterrupted()).toBe(0);
        expect((await s.queueStats()).possibleDuplicates).toBe(0);
      }));

    it('finish learns domain knowledge: TLS-known after a delivery over TLS; forget resets it', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['a@one.test', 'b@two.test'] }));
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        const one = items.find((i) => i.domain === 'one.test')!;
        const two = items.find((i) => i.domain === 'two.test')!;
        const tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: false, authorizationError: null, peerCertSubject: null, peerCertFingerprint256: null };
        await s.finish(
          [record(one, { method: 'tls', starttlsOffered: true, tls }), record(two, { starttlsOffered: false })],
          items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'delivered' as const, error: null })),
        );
        const known = await s.getDomain('ONE.test');
        expect(known).toMatchObject({ domain: 'one.test', attempts: 1, lastNoStarttlsAt: null });
        expect(known?.tlsKnownSince).toBeGreaterThan(0);
        expect(known?.lastStarttlsAt).toBe(known?.tlsKnownSince);
        const plain = await s.getDomain('two.test');
        expect(plain).toMatchObject({ tlsKnownSince: null, lastStarttlsAt: null });
        expect(plain?.lastNoStarttlsAt).toBeGreaterThan(0);
        expect((await s.listDomains()).map((d) => d.domain)).toEqual(['one.test', 'two.test']);
        expect(await s.forgetDomain('one.test')).toBe(true);
        expect(await s.getDomain('one.test')).toBeNull();
        expect(await s.forgetDomain('one.test')).toBe(false);
      }));

    it('recordProbe notes what a probe saw but never makes a domain TLS-known nor counts an attempt', () =>
      withStore(async (s) => {
        const at = Date.now();
        await s.recordProbe('Probed.test', { at, starttlsOffered: true, tlsOk: true });
        expect(await s.getDomain('probed.test')).toMatchObject({
          tlsKnownSince: null, lastTlsAt: null, lastStarttlsAt: at, lastNoStarttlsAt: null, attempts: 0, lastProbeAt: at, lastProbeStarttlsOffered: true, lastProbeTlsOk: true,
        });
        await s.recordProbe('probed.test', { at: at + 1, starttlsOffered: false, tlsOk: false });
        expect(await s.getDomain('probed.test')).toMatchObject({ lastStarttlsAt: at, lastNoStarttlsAt: at + 1, attempts: 0, lastProbeAt: at + 1, lastProbeStarttlsOffered: false, lastProbeTlsOk: false });
        // STARTTLS offered, handshake failed (e.g. below the floor).
        await s.recordProbe('probed.test', { at: at + 2, starttlsOffered: true, tlsOk: false });
        expect(await s.getDomain('probed.test')).toMatchObject({ lastStarttlsAt: at + 2, lastProbeAt: at + 2, lastProbeStarttlsOffered: true, lastProbeTlsOk: false, tlsKnownSince: null });
        await expect(s.recordProbe('probed.test', { at: at + 3, starttlsOffered: false, tlsOk: true })).rejects.toThrow(/probe of probed\.test: a TLS handshake cannot succeed where STARTTLS was not offered/);
        expect((await s.getDomain('probed.test'))?.lastProbeAt).toBe(at + 2);
      }));

    it('the last probe is null until a probe ran, and a probe keeps what deliveries learned', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['a@one.test'] }));
        const [item] = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        const tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', bits: 128, authorized: false, authorizationError: null, peerCertSubject: null, peerCertFingerprint256: null };
        await s.finish([record(item as QueueItem, { method: 'tls', starttlsOffered: true, tls })], [{ queueId: item!.queueId, seq: item!.seq, outcome: 'delivered', error: null }]);
        const learned = await s.getDomain('one.test');
        expect(learned).toMatchObject({ attempts: 1, lastProbeAt: null, lastProbeStarttlsOffered: null, lastProbeTlsOk: null });
        const at = learned!.lastAttemptAt + 60_000;
        await s.recordProbe('one.test', { at, starttlsOffered: true, tlsOk: false });
        expect(await s.getDomain('one.test')).toEqual({ ...learned, lastStarttlsAt: at, lastProbeAt: at, lastProbeStarttlsOffered: true, lastProbeTlsOk: false });
        expect((await s.listDomains()).map((d) => [d.domain, d.lastProbeAt, d.lastProbeTlsOk])).toEqual([['one.test', at, false]]);
      }));

    it('renewLeases keeps work claimed past its first lease, only for the owner, only while it is queued', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['a@one.test', 'b@one.test'] }));
        const t0 = Date.now();
        const items = await s.claim({ owner: 'w1', limit: 10, leaseMs: 1000, now: t0 });
        expect(items).toHaveLength(2);
        // Someone else's renewal does nothing.
        expect(await s.renewLeases('w2', items, 60_000, t0 + 500)).toBe(0);
        expect(await s.renewLeases('w1', items, 60_000, t0 + 500)).toBe(2);
        // Past the first lease, nobody can claim it: the renewed one holds.
        expect(await s.claim({ owner: 'w2', limit: 10, leaseMs: 1000, now: t0 + 5000 })).toEqual([]);
        // Settled work has no lease left to renew.
        const [a, b] = items;
        await s.finish([record(a!)], [{ queueId: a!.queueId, seq: a!.seq, outcome: 'delivered', error: null }]);
        expect(await s.renewLeases('w1', items, 60_000, t0 + 1000)).toBe(1);
        // Once the renewed lease runs out, the rest is anybody's again.
        expect((await s.claim({ owner: 'w2', limit: 10, leaseMs: 1000, now: t0 + 62_000 })).map((i) => i.seq)).toEqual([b!.seq]);
      }));

    it('unclaim gives work back without counting an attempt', () =>
      withStore(async (s) => {
        await s.enqueue(message({ recipients: ['x@one.test'] }));
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        await s.unclaim(items);
        const again = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        expect(again[0]?.attempt).toBe(1);
      }));

    it('concurrent enqueues all commit (group commit) and records filter by every key', () =>
      withStore(async (s) => {
        const ms = Array.from({ length: 50 }, (_, i) => message({ recipients: [`u${i}@d${i % 3}.test`] }));
        await Promise.all(ms.map((m) => s.enqueue(m)));
        expect((await s.queueStats()).messages).toBe(50);
        const items = await s.claim({ owner: 'w', limit: 100, leaseMs: 60_000 });
        expect(items).toHaveLength(50);
        await s.finish(
          items.map((i, n) => record(i, n % 2 ? { outcome: 'deferred', method: 'none' } : {})),
          items.map((i, n) => (n % 2 ? { queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: 'x', nextAttemptAt: Date.now() + 1e6 } : { queueId: i.queueId, seq: i.seq, outcome: 'delivered' as const, error: null })),
        );
        expect(await s.queryRecords({ domain: 'D1.test' })).toHaveLength(items.filter((i) => i.domain === 'd1.test').length);
        expect(await s.queryRecords({ outcome: 'deferred' })).toHaveLength(25);
        expect(await s.queryRecords({ recipient: 'U7@d1.test' })).toHaveLength(1);
        expect(await s.queryRecords({ message: ms[3]!.messageId!.slice(1, -1) })).toHaveLength(1);
        expect(await s.queryRecords({ since: Date.now() + 60_000 })).toHaveLength(0);
        expect(await s.queryRecords({ limit: 5 })).toHaveLength(5);
      }));

    it('logAfter follows the log in write order: from the end, then only what was written since, filtered', () =>
      withStore(async (s) => {
        const start = await s.logAfter(null, {});
        expect(start.records).toEqual([]);
        const ms = Array.from({ length: 4 }, (_, i) => message({ recipients: [`f${i}@${i % 2 ? 'odd' : 'even'}.test`] }));
        for (const m of ms) await s.enqueue(m);
        const items = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
        const byRecipient = (r: string) => items.find((i) => i.recipient === r)!;
        const settle = (item: QueueItem, at: string) =>
          s.finish([record(item, { at })], [{ queueId: item.queueId, seq: item.seq, outcome: 'delivered', error: null }]);
        await settle(byRecipient('f0@even.test'), '2026-01-01T00:00:02.000Z');
        await settle(byRecipient('f1@odd.test'), '2026-01-01T00:00:03.000Z');

        const first = await s.logAfter(start.cursor, {});
        expect(first.records.map((r) => r.recipient)).toEqual(['f0@even.test', 'f1@odd.test']);
        expect(await s.logAfter(first.cursor, {})).toEqual({ records: [], cursor: first.cursor });

        // An attempt that started earlier but finished later is still seen, once, after the cursor.
        await settle(byRecipient('f2@even.test'), '2026-01-01T00:00:01.000Z');
        await settle(byRecipient('f3@odd.test'), '2026-01-01T00:00:04.000Z');
        const evens = await s.logAfter(first.cursor, { domain: 'EVEN.test' });
        expect(evens.records.map((r) => r.recipient)).toEqual(['f2@even.test']);
        // The cursor moved past the record that did not match, too.
        expect(await s.logAfter(evens.cursor, {})).toEqual({ records: [], cursor: evens.cursor });

        // From the end with a limit: the newest written, oldest first.
        expect((await s.logAfter(null, { limit: 2 })).records.map((r) => r.recipient)).toEqual(['f2@even.test', 'f3@odd.test']);
        expect((await s.logAfter(null, { domain: 'odd.test' })).records.map((r) => r.recipient)).toEqual(['f1@odd.test', 'f3@odd.test']);
      }));

    it('putKey stores a key whole; getKey finds it by fingerprint in any case; keysFor by normalised address', () =>
      withStore(async (s) => {
        const key = recipientKey({ addresses: ['alice@example.org', 'bob@xn--bcher-kva.example'], expiresAt: 1_800_000_000_000, unusable: 'no encryption subkey' });
        await s.putKey(key);
        expect(await s.getKey(key.fingerprint)).toEqual(key);
        expect(await s.getKey(key.fingerprint.toLowerCase())).toEqual(key);
        expect(await s.getKey(key.fingerprint.slice(0, 20))).toBeNull();
        expect(await s.keysFor('  Alice@EXAMPLE.org ')).toEqual([key]);
        // The Unicode form of the domain finds the key stored under its A-label.
        expect(await s.keysFor('BOB@Bücher.example')).toEqual([key]);
        expect(await s.keysFor('carol@example.org')).toEqual([]);
        expect(await s.keysFor('not an address')).toEqual([]);
      }));

    it('keysFor returns the newest key first and filters by kind; listKeys orders by address and filters by it', () =>
      withStore(async (s) => {
        const old = recipientKey({ fingerprint: 'AA01', createdAt: 1000 });
        const unknown = recipientKey({ fingerprint: 'AA02', createdAt: null });
        const newest = recipientKey({ fingerprint: 'AA03', createdAt: 3000 });
        const cert = recipientKey({ fingerprint: 'BB01', kind: 'smime', createdAt: 2000, addresses: ['alice@example.org', 'zed@example.org'] });
        const other = recipientKey({ fingerprint: 'CC01', addresses: ['bob@example.org'] });
        for (const k of [old, unknown, newest, cert, other]) await s.putKey(k);
        expect((await s.keysFor('alice@example.org')).map((k) => k.fingerprint)).toEqual(['AA03', 'BB01', 'AA01', 'AA02']);
        expect((await s.keysFor('alice@example.org', 'pgp')).map((k) => k.fingerprint)).toEqual(['AA03', 'AA01', 'AA02']);
        expect((await s.keysFor('alice@example.org', 'smime')).map((k) => k.fingerprint)).toEqual(['BB01']);
        expect((await s.keysFor('zed@example.org')).map((k) => k.fingerprint)).toEqual(['BB01']);
        expect((await s.listKeys()).map((k) => k.fingerprint)).toEqual(['AA03', 'BB01', 'AA01', 'AA02', 'CC01']);
        expect((await s.listKeys({ address: 'Bob@Example.org' })).map((k) => k.fingerprint)).toEqual(['CC01']);
      }));

    it('putKey again replaces the key and its address index; removeKey forgets both', () =>
      withStore(async (s) => {
        await s.putKey(recipientKey({ addresses: ['alice@example.org', 'old@example.org'] }));
        const revoked = recipientKey({ fingerprint: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678', addresses: ['alice@example.org', 'new@example.org'], revoked: true, label: 'updated' });
        await s.putKey(revoked);
        const upper = { ...revoked, fingerprint: revoked.fingerprint.toUpperCase() };
        expect(await s.listKeys()).toEqual([upper]);
        expect(await s.keysFor('old@example.org')).toEqual([]);
        expect(await s.keysFor('new@example.org')).toEqual([upper]);
        expect(await s.removeKey(revoked.fingerprint)).toBe(true);
        expect(await s.getKey(revoked.fingerprint)).toBeNull();
        expect(await s.keysFor('alice@example.org')).toEqual([]);
        expect(await s.removeKey(revoked.fingerprint)).toBe(false);
      }));

    it('putKey normalises and de-duplicates addresses and refuses what is not a key', async () =>
      withStore(async (s) => {
        await s.putKey(recipientKey({ addresses: ['Alice@Example.org', 'alice@example.org ', 'x@Bücher.example'] }));
        expect((await s.getKey(recipientKey().fingerprint))?.addresses).toEqual(['alice@example.org', 'x@xn--bcher-kva.example']);
        await expect(s.putKey(recipientKey({ fingerprint: 'not hex!' }))).rejects.toThrow(/not a hex fingerprint/);
        await expect(s.putKey(recipientKey({ addresses: ['no-at-sign'] }))).rejects.toThrow(/"no-at-sign" is not an email address/);
        await expect(s.putKey(recipientKey({ kind: 'x509' as 'pgp' }))).rejects.toThrow(/kind must be pgp or smime/);
        expect(await s.listKeys()).toHaveLength(1);
      }));

    it('key lookups: none until recorded, then the latest answer per normalised address', () =>
      withStore(async (s) => {
        expect(await s.getKeyLookup('alice@example.org')).toBeNull();
        await s.recordKeyLookup({ address: 'Alice@Example.org', lookedUpAt: 1000, found: false, expiresAt: 2000, error: 'HTTP 503' });
        expect(await s.getKeyLookup('alice@example.org')).toEqual({ address: 'alice@example.org', lookedUpAt: 1000, found: false, expiresAt: 2000, error: 'HTTP 503' });
        await s.recordKeyLookup({ address: 'alice@example.org', lookedUpAt: 3000, found: true, expiresAt: 9000, error: null });
        expect(await s.getKeyLookup('ALICE@example.org')).toEqual({ address: 'alice@example.org', lookedUpAt: 3000, found: true, expiresAt: 9000, error: null });
        expect(await s.getKeyLookup('bob@example.org')).toBeNull();
        await expect(s.recordKeyLookup({ address: 'nobody', lookedUpAt: 1, found: false, expiresAt: 2, error: null })).rejects.toThrow(/not an email address/);
      }));

    describe('portal items', () => {
      const visitor = { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (test)' };
      const portalLog = async (s: Store, queueId: string) => (await s.queryLog({ message: queueId })).filter(isPortalRecord);

      it('putPortalItem stores an item whole; found by id and by token hash; listed without its secrets', () =>
        withStore(async (s) => {
          const item = portalItem({ sealed: { ...portalItem().sealed, keyInLink: true } });
          await s.putPortalItem(item);
          const got = await s.getPortalItem(item.id);
          expect(got).toMatchObject({ id: item.id, queueId: item.queueId, seq: 0, messageId: item.messageId, sender: item.sender, recipient: item.recipient, createdAt: item.createdAt, expiresAt: item.expiresAt, recalledAt: null, erasedAt: null, size: 1234, keyInLink: true, keyId: 'k1', lockedUntil: null, code: null });
          expect(got?.sealed).toEqual(item.sealed);
          expect(got?.tokenHash.equals(item.tokenHash)).toBe(true);
          expect((await s.findPortalItem(item.tokenHash))?.id).toBe(item.id);
          expect(await s.findPortalItem(randomBytes(32))).toBeNull();
          expect(await s.findPortalItem(Buffer.alloc(0))).toBeNull();
          // The head: everything but the ciphertext, Buffers as Buffers (also across the store thread).
          const { sealed: _sealed, ...head } = got!;
          const foundHead = await s.findPortalItemHead(item.tokenHash);
          expect(foundHead).toEqual(head);
          expect(foundHead).not.toHaveProperty('sealed');
          expect(Buffer.isBuffer(foundHead!.tokenHash)).toBe(true);
          expect(await s.findPortalItemHead(randomBytes(32))).toBeNull();
          expect(await s.getPortalItem('nope')).toBeNull();
          const [listed] = await s.listPortalItems();
          expect(Object.keys(listed!).sort()).toEqual(['createdAt', 'erasedAt', 'expiresAt', 'id', 'keyId', 'keyInLink', 'lockedUntil', 'messageId', 'queueId', 'recalledAt', 'recipient', 'sender', 'seq', 'size']);
          expect(await s.getPortalItemInfo(item.id)).toEqual(listed);
          expect(await s.getPortalItemInfo('nope')).toBeNull();
          expect(portalItemState(listed!)).toBe('readable');
        }));

      it('listPortalItems: newest first, by queue id or Message-ID (with or without <>), limited', () =>
        withStore(async (s) => {
          const queueId = newQueueId();
          const a = portalItem({ queueId, seq: 0, messageId: '<m1@sender.test>', createdAt: 1000, expiresAt: 9e15 });
          const b = portalItem({ queueId, seq: 1, messageId: '<m1@sender.test>', recipient: 'kim@patient.test', createdAt: 2000, expiresAt: 9e15 });
          const other = portalItem({ createdAt: 3000, expiresAt: 9e15 });
          for (const i of [a, b, other]) await s.putPortalItem(i);
          expect((await s.listPortalItems()).map((i) => i.id)).toEqual([other.id, b.id, a.id]);
          expect((await s.listPortalItems({ message: queueId })).map((i) => i.id)).toEqual([b.id, a.id]);
          expect((await s.listPortalItems({ message: 'm1@sender.test' })).map((i) => i.id)).toEqual([b.id, a.id]);
          expect((await s.listPortalItems({ message: '<m1@sender.test>', limit: 1 })).map((i) => i.id)).toEqual([b.id]);
          expect(await s.listPortalItems({ message: 'unknown' })).toEqual([]);
        }));

      it('refuses an incomplete item, and a second item with the same id or token hash', () =>
        withStore(async (s) => {
          const item = portalItem();
          await s.putPortalItem(item);
          await expect(s.putPortalItem(portalItem({ id: item.id }))).rejects.toThrow();
          await expect(s.putPortalItem(portalItem({ tokenHash: item.tokenHash }))).rejects.toThrow();
          await expect(s.putPortalItem(portalItem({ tokenHash: randomBytes(16) }))).rejects.toThrow(/token hash must be 32 bytes/);
          await expect(s.putPortalItem(portalItem({ sealed: { ...item.sealed, content: Buffer.alloc(0) } }))).rejects.toThrow(/sealed content incomplete/);
          await expect(s.putPortalItem(portalItem({ expiresAt: 1, createdAt: 2 }))).rejects.toThrow(/expires before/);
          expect(await s.listPortalItems()).toHaveLength(1);
        }));

      it('finish stores portal items with the records, settlements and notifications of the same attempt, all or nothing', () =>
        withStore(async (s) => {
          const m = message({ recipients: ['pat@patient.test'] });
          await s.enqueue(m);
          const [item] = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
          const notification = message({ recipients: ['pat@patient.test'], sender: 'portal@relay.test' });
          const made = portalItem({ queueId: m.queueId, seq: 0, messageId: m.messageId });
          const notified = record(item!, { outcome: 'portal-notified', method: 'portal', portal: portalFacts(made.id, notification.queueId) });
          const settle = [{ queueId: m.queueId, seq: 0, outcome: 'portal-notified' as const, error: null }];

          // One bad item (a token hash already taken) and nothing of the attempt is written.
          const taken = portalItem();
          await s.putPortalItem(taken);
          await expect(s.finish([notified], settle, [notification], [made, portalItem({ tokenHash: taken.tokenHash })])).rejects.toThrow();
          expect(await s.getPortalItem(made.id)).toBeNull();
          expect(await s.queryRecords({ message: m.queueId })).toEqual([]);
          expect(await s.getQueueEntry(notification.queueId)).toBeNull();
          expect((await s.getQueueEntry(m.queueId))?.recipients[0]?.state).toBe('queued');

          await s.finish([notified], settle, [notification], [made]);
          expect((await s.getPortalItem(made.id))?.sealed).toEqual(made.sealed);
          expect((await s.queryRecords({ message: m.queueId })).map((r) => [r.outcome, r.method])).toEqual([['portal-notified', 'portal']]);
          expect((await s.getQueueEntry(notification.queueId))?.recipients.map((r) => r.state)).toEqual(['queued']);
          // The original message is done with; its item outlives it.
          expect(await s.getQueueEntry(m.queueId)).toBeNull();
        }));

      it('recall erases every item of a message at once, by queue id or Message-ID, keeps the metadata, and records who did it', () =>
        withStore(async (s) => {
          const queueId = newQueueId();
          const messageId = '<recall-me@sender.test>';
          const a = portalItem({ queueId, seq: 0, messageId });
          const b = portalItem({ queueId, seq: 1, messageId, recipient: 'kim@patient.test' });
          const bystander = portalItem();
          for (const i of [a, b, bystander]) await s.putPortalItem(i);
          await expect(s.recallPortalItems(queueId, ' ')).rejects.toThrow(/operator who acts must be named/);
          expect((await s.getPortalItem(a.id))?.sealed).not.toBeNull();

          const at = Date.now();
          const recalled = await s.recallPortalItems('recall-me@sender.test', 'alice', at);
          expect(recalled.map((i) => i.id).sort()).toEqual([a.id, b.id].sort());
          for (const i of [a, b]) {
            const got = await s.getPortalItem(i.id);
            expect(got).toMatchObject({ recalledAt: at, erasedAt: at, keyId: null, sealed: null, recipient: i.recipient, size: i.size });
            expect(portalItemState(got!)).toBe('recalled');
            // Still found by its link, to say "recalled" rather than "unknown link".
            expect((await s.findPortalItem(i.tokenHash))?.sealed).toBeNull();
          }
          expect((await s.getPortalItem(bystander.id))?.sealed).toEqual(bystander.sealed);
          const log = await portalLog(s, queueId);
          expect(log.map((r) => [r.recipient, r.outcome, r.operator, r.itemId])).toEqual([
            ['pat@patient.test', 'portal-recalled', 'alice', a.id],
            ['kim@patient.test', 'portal-recalled', 'alice', b.id],
          ]);
          expect(log[0]).toEqual({
            kind: 'portal', queueId, seq: 0, messageId, at: new Date(at).toISOString(), sender: 'app@sender.test', recipient: 'pat@patient.test',
            domain: 'patient.test', itemId: a.id, outcome: 'portal-recalled', ip: null, userAgent: null, operator: 'alice', detail: null,
          } satisfies PortalRecord);
          // Recalled once: a second recall changes and records nothing.
          expect(await s.recallPortalItems(queueId, 'bob')).toEqual([]);
          expect(await portalLog(s, queueId)).toHaveLength(2);
          expect(await s.queryRecords({ message: queueId })).toEqual([]);
        }));

      it('expire erases items past their expiry only, in batches, keeps the metadata and records it', () =>
        withStore(async (s) => {
          const now = Date.now();
          const due = [1, 2, 3].map((n) => portalItem({ createdAt: now - 10_000, expiresAt: now - n }));
          const later = portalItem({ expiresAt: now + 60_000 });
          const recalled = portalItem({ createdAt: now - 10_000, expiresAt: now - 5 });
          for (const i of [...due, later, recalled]) await s.putPortalItem(i);
          await s.recallPortalItems(recalled.queueId, 'alice');
          // Past expiry, before the sweep: already not readable.
          expect(portalItemState((await s.getPortalItem(due[0]!.id))!, now)).toBe('expired');

          expect(await s.expirePortalItems(now, 2)).toBe(2);
          expect(await s.expirePortalItems(now, 2)).toBe(1);
          expect(await s.expirePortalItems(now, 2)).toBe(0);
          for (const i of due) {
            const got = await s.getPortalItem(i.id);
            expect(got).toMatchObject({ erasedAt: now, recalledAt: null, sealed: null, keyId: null, expiresAt: i.expiresAt });
            expect(portalItemState(got!)).toBe('expired');
            expect((await portalLog(s, i.queueId)).map((r) => [r.outcome, r.at, r.operator])).toEqual([['portal-expired', new Date(now).toISOString(), null]]);
          }
          expect((await s.getPortalItem(later.id))?.sealed).toEqual(later.sealed);
          expect((await portalLog(s, recalled.queueId)).map((r) => r.outcome)).toEqual(['portal-recalled']);
          expect(await s.expirePortalItems(now + 120_000, 10)).toBe(1);
          expect((await s.getPortalItem(later.id))?.sealed).toBeNull();
        }));

      it('portal events are in the log (with IP and user agent) but never among the attempts; found by outcome and followed', () =>
        withStore(async (s) => {
          const item = portalItem();
          await s.putPortalItem(item);
          const before = await s.logAfter(null, {});
          expect(await s.recordPortalEvent(item.id, 'portal-viewed', { ...visitor, detail: 'possibly automated', at: 5000 })).toBe(true);
          expect(await s.recordPortalEvent(item.id, 'portal-opened', { ...visitor, at: 6000 })).toBe(true);
          expect(await s.recordPortalEvent('nope', 'portal-opened', visitor)).toBe(false);
          const log = await portalLog(s, item.queueId);
          expect(log.map((r) => [r.outcome, r.at, r.ip, r.userAgent, r.detail])).toEqual([
            ['portal-viewed', '1970-01-01T00:00:05.000Z', visitor.ip, visitor.userAgent, 'possibly automated'],
            ['portal-opened', '1970-01-01T00:00:06.000Z', visitor.ip, visitor.userAgent, null],
          ]);
          expect((await s.queryLog({ message: item.messageId!, outcome: 'portal-opened' })).map((r) => r.outcome)).toEqual(['portal-opened']);
          expect((await s.queryLog({ recipient: 'PAT@patient.test' }))).toHaveLength(2);
          expect(await s.queryRecords({ message: item.queueId })).toEqual([]);
          expect((await s.logAfter(before.cursor, {})).records.map((r) => r.outcome)).toEqual(['portal-viewed', 'portal-opened']);
        }));

      it('one-time codes: wrong ones use tries, the last locks; the right one verifies once; each is recorded', () =>
        withStore(async (s) => {
          const item = portalItem();
          await s.putPortalItem(item);
          const t0 = Date.now();
          const right = randomBytes(32);
          const wrong = randomBytes(32);
          const lockMs = 15 * 60_000;
          const check = (hash: Buffer, at: number) => s.checkPortalCode(item.id, hash, { lockMs, event: { ...visitor, at } });
          expect(await check(right, t0)).toEqual({ result: 'no-code' });
          expect(await s.setPortalCode(item.id, { hash: right, expiresAt: t0 + 600_000, triesLeft: 3 }, { ...visitor, at: t0 })).toEqual({ result: 'set' });
          expect((await s.getPortalItem(item.id))?.code).toEqual({ hash: right, expiresAt: t0 + 600_000, triesLeft: 3 });
          expect(await check(wrong, t0 + 1)).toEqual({ result: 'wrong', triesLeft: 2 });
          expect(await check(Buffer.from('short'), t0 + 2)).toEqual({ result: 'wrong', triesLeft: 1 });
          expect(await check(wrong, t0 + 3)).toEqual({ result: 'locked', until: t0 + 3 + lockMs });
          // Locked: even the right code fails, and no new code is sent, until the lock ends.
          expect(await check(right, t0 + 4)).toEqual({ result: 'locked', until: t0 + 3 + lockMs });
          expect(await s.setPortalCode(item.id, { hash: right, expiresAt: t0 + 600_000, triesLeft: 3 }, { at: t0 + 5 })).toEqual({ result: 'locked', until: t0 + 3 + lockMs });
          expect((await s.getPortalItem(item.id))?.lockedUntil).toBe(t0 + 3 + lockMs);

          const after = t0 + 3 + lockMs;
          expect(await s.setPortalCode(item.id, { hash: right, expiresAt: after + 600_000, triesLeft: 5 }, { ...visitor, at: after })).toEqual({ result: 'set' });
          expect(await check(right, after + 1)).toEqual({ result: 'verified' });
          // Used up: the same code again is no code at all.
          expect(await check(right, after + 2)).toEqual({ result: 'no-code' });
          expect((await portalLog(s, item.queueId)).map((r) => [r.outcome, r.detail])).toEqual([
            ['portal-code-sent', null],
            ['portal-code-failed', '2 tries left'],
            ['portal-code-failed', '1 try left'],
            ['portal-code-failed', 'no tries left'],
            ['portal-locked', `until ${new Date(t0 + 3 + lockMs).toISOString()}`],
            ['portal-code-sent', null],
            ['portal-verified', null],
          ]);
        }));

      it('a code expires; codes for an erased item are refused; concurrent wrong codes never use more tries than there are', () =>
        withStore(async (s) => {
          const item = portalItem();
          await s.putPortalItem(item);
          const t0 = Date.now();
          const code = randomBytes(32);
          await s.setPortalCode(item.id, { hash: code, expiresAt: t0 + 1000, triesLeft: 3 }, { at: t0 });
          expect(await s.checkPortalCode(item.id, code, { lockMs: 1000, event: { at: t0 + 1000 } })).toEqual({ result: 'no-code' });
          expect((await s.getPortalItem(item.id))?.code).toBeNull();
          await expect(s.setPortalCode(item.id, { hash: code, expiresAt: t0 + 1000, triesLeft: 0 }, {})).rejects.toThrow(/at least one try/);

          await s.setPortalCode(item.id, { hash: code, expiresAt: t0 + 600_000, triesLeft: 3 }, { at: t0 });
          const results = await Promise.all(Array.from({ length: 8 }, () => s.checkPortalCode(item.id, randomBytes(32), { lockMs: 60_000, event: { at: t0 + 1 } })));
          expect(results.filter((r) => r.result === 'wrong')).toHaveLength(2);
          expect(results.filter((r) => r.result === 'locked')).toHaveLength(6);
          expect((await portalLog(s, item.queueId)).filter((r) => r.outcome === 'portal-code-failed')).toHaveLength(3);

          const gone = portalItem({ createdAt: t0 - 10, expiresAt: t0 - 1 });
          await s.putPortalItem(gone);
          expect(await s.setPortalCode(gone.id, { hash: code, expiresAt: t0 + 600_000, triesLeft: 3 }, {})).toEqual({ result: 'gone' });
          expect(await s.checkPortalCode(gone.id, code, { lockMs: 1, event: {} })).toEqual({ result: 'gone' });
          expect(await s.setPortalCode('nope', { hash: code, expiresAt: t0 + 600_000, triesLeft: 3 }, {})).toEqual({ result: 'gone' });
        }));

      it('rewrap: lists readable items under other keys in id order after a cursor; replaces a key only if it is still the old one', () =>
        withStore(async (s) => {
          const items = ['k1', 'k1', 'k2', 'k3'].map((keyId) => portalItem({ sealed: { ...portalItem().sealed, keyId } }));
          for (const i of items) await s.putPortalItem(i);
          const erased = portalItem({ sealed: { ...portalItem().sealed, keyId: 'k1' } });
          await s.putPortalItem(erased);
          await s.recallPortalItems(erased.queueId, 'alice');

          const old = items.filter((i) => i.sealed.keyId !== 'k3').map((i) => i.id).sort();
          const all = await s.portalKeysToRewrap('k3', 10);
          expect(all.map((k) => k.id)).toEqual(old);
          const first = all.find((k) => k.id === items[0]!.id)!;
          expect(first).toEqual({ id: items[0]!.id, keyInLink: false, keyId: 'k1', wrapNonce: items[0]!.sealed.wrapNonce, wrappedKey: items[0]!.sealed.wrappedKey });
          expect((await s.portalKeysToRewrap('k3', 2)).map((k) => k.id)).toEqual(old.slice(0, 2));
          expect((await s.portalKeysToRewrap('k3', 10, old[1])).map((k) => k.id)).toEqual(old.slice(2));

          const next = { id: first.id, keyInLink: false, keyId: 'k3', wrapNonce: randomBytes(12), wrappedKey: randomBytes(48) };
          expect(await s.rewrapPortalKeys([{ ...next, fromKeyId: 'k2' }])).toBe(0);
          expect(await s.rewrapPortalKeys([{ ...next, fromKeyId: 'k1' }])).toBe(1);
          expect(await s.rewrapPortalKeys([{ ...next, fromKeyId: 'k1' }])).toBe(0);
          const got = await s.getPortalItem(first.id);
          expect(got?.sealed).toEqual({ ...items[0]!.sealed, keyId: 'k3', wrapNonce: next.wrapNonce, wrappedKey: next.wrappedKey });
          expect(got?.keyId).toBe('k3');
          expect((await s.portalKeysToRewrap('k3', 10)).map((k) => k.id)).toEqual(old.filter((id) => id !== first.id));
        }));
    });

    describe('events (the outbox)', () => {
      const all = (s: Store) => s.listEvents({ limit: 10_000 });
      /** type, recipient and method of each event, in order: what most checks compare. */
      const brief = (events: readonly RelayEvent[]) => events.map((e) => [e.type, e.recipient, e.method]);
      const tlsFacts = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, authorizationError: null, peerCertSubject: 'CN=mx', peerCertFingerprint256: 'AA' };
      /** Subject and body words that must never reach an event. */
      const SECRET_SUBJECT = 'Lab result Zebrafinch';
      const SECRET_BODY = 'Diagnosis Quetzalcoatl';
      const secretMessage = (over: Partial<NewMessage> = {}) =>
        message({ subject: SECRET_SUBJECT, body: Buffer.from(`Subject: ${SECRET_SUBJECT}\r\n\r\n${SECRET_BODY}\r\n`), ...over });
      const claimAll = async (s: Store) => (await s.claim({ owner: 'w', limit: 100, leaseMs: 60_000 })).sort((x, y) => x.seq - y.seq);

      it('enqueue writes one `queued` per recipient with the envelope facts and the message facts reports split by, and nothing of the body', () =>
        withStore(async (s) => {
          const facts = { subject: SECRET_SUBJECT, campaign: 'flu-2026', custom: 'Cardiology' };
          const m = secretMessage({ sender: 'app@sender.test', recipients: ['a@one.test', 'B@Two.Test'], campaign: facts.campaign, custom: facts.custom });
          await s.enqueue(m);
          const events = await all(s);
          expect(events.map(({ id: _id, ...e }) => e)).toEqual([
            { ...facts, queueId: m.queueId, seq: 0, at: m.receivedAt, type: 'queued', sender: 'app@sender.test', recipient: 'a@one.test', domain: 'one.test', method: null, tls: null, automated: false },
            { ...facts, queueId: m.queueId, seq: 1, at: m.receivedAt, type: 'queued', sender: 'app@sender.test', recipient: 'B@Two.Test', domain: 'two.test', method: null, tls: null, automated: false },
          ]);
          expect(events.every((e) => /^[0-9a-f]{32}$/.test(e.id))).toBe(true);
          expect(JSON.stringify(events)).not.toContain('Quetzalcoatl');
        }));

      it('finish writes each record\'s outcome; `secured` (with the method) only for a secure method, never for plaintext', () =>
        withStore(async (s) => {
          const m = secretMessage({ recipients: ['plain@one.test', 'tls@one.test', 'pgp@one.test', 'soft@two.test', 'hard@two.test', 'drop@two.test'] });
          await s.enqueue(m);
          const [plain, tls, pgp, soft, hard, drop] = (await claimAll(s)) as [QueueItem, QueueItem, QueueItem, QueueItem, QueueItem, QueueItem];
          const before = await all(s);
          const end = Date.parse('2026-06-01T10:00:00.000Z');
          const at = new Date(end - 40).toISOString();
          await s.finish(
            [
              record(plain, { at, durationMs: 40 }),
              record(tls, { at, durationMs: 40, method: 'tls', tls: tlsFacts, starttlsOffered: true }),
              record(pgp, { at, durationMs: 40, method: 'pgp+tls', tls: tlsFacts, starttlsOffered: true }),
              record(soft, { at, durationMs: 40, outcome: 'deferred', method: 'none', smtp: { code: 451, enhanced: '4.4.1', response: '451 later' } }),
              record(hard, { at, durationMs: 40, outcome: 'bounced', method: 'none', smtp: { code: 550, enhanced: '5.1.1', response: '550 no' } }),
              record(drop, { at, durationMs: 40, outcome: 'dropped', method: 'none', smtp: { code: null, enhanced: null, response: 'no acceptable TLS' } }),
            ],
            [
              { queueId: m.queueId, seq: 0, outcome: 'delivered', error: null },
              { queueId: m.queueId, seq: 1, outcome: 'delivered', error: null },
              { queueId: m.queueId, seq: 2, outcome: 'delivered', error: null },
              { queueId: m.queueId, seq: 3, outcome: 'deferred', error: '451 later', nextAttemptAt: Date.now() + 60_000 },
              { queueId: m.queueId, seq: 4, outcome: 'bounced', error: '550 no' },
              { queueId: m.queueId, seq: 5, outcome: 'dropped', error: 'no acceptable TLS' },
            ],
          );
          const events = (await all(s)).slice(before.length);
          expect(brief(events)).toEqual([
            ['delivered', 'plain@one.test', 'plaintext'],
            ['delivered', 'tls@one.test', 'tls'],
            ['secured', 'tls@one.test', 'tls'],
            ['delivered', 'pgp@one.test', 'pgp+tls'],
            ['secured', 'pgp@one.test', 'pgp+tls'],
            ['deferred', 'soft@two.test', null],
            ['bounced', 'hard@two.test', null],
            ['dropped', 'drop@two.test', null],
          ]);
          // The attempt's end; its message and recipient; the message facts copied from `queued`; the TLS version; nothing of the body.
          expect(events.every((e) => e.at === end && e.queueId === m.queueId && e.sender === m.sender && e.campaign === null && e.subject === SECRET_SUBJECT)).toBe(true);
          expect(events.map((e) => e.tls)).toEqual([null, 'TLSv1.3', 'TLSv1.3', 'TLSv1.3', 'TLSv1.3', null, null, null]);
          expect(events.map((e) => [e.seq, e.domain])).toEqual([[0, 'one.test'], [1, 'one.test'], [1, 'one.test'], [2, 'one.test'], [2, 'one.test'], [3, 'two.test'], [4, 'two.test'], [5, 'two.test']]);
          expect(JSON.stringify(events)).not.toMatch(/Quetzalcoatl/);
        }));

      it('a bounce queued by finish gets its own `queued` events, after the attempt\'s', () =>
        withStore(async (s) => {
          await s.enqueue(message({ recipients: ['x@one.test'] }));
          const [item] = await claimAll(s);
          const bounce = message({ sender: '', recipients: ['app@sender.test'] });
          await s.finish([record(item!, { outcome: 'bounced', method: 'none' })], [{ queueId: item!.queueId, seq: 0, outcome: 'bounced', error: 'x' }], [bounce]);
          const events = await all(s);
          expect(brief(events)).toEqual([['queued', 'x@one.test', null], ['bounced', 'x@one.test', null], ['queued', 'app@sender.test', null]]);
          expect(events[2]).toMatchObject({ queueId: bounce.queueId, seq: 0, sender: '', domain: 'sender.test', at: bounce.receivedAt });
        }));

      it('the portal: notified (and secured, method portal) in finish; opened, replied, recalled and expired where they happen; other portal steps write none', () =>
        withStore(async (s) => {
          const m = secretMessage({ recipients: ['pat@patient.test'] });
          await s.enqueue(m);
          const [item] = await claimAll(s);
          const notification = message({ recipients: ['pat@patient.test'], sender: 'portal@relay.test' });
          const made = portalItem({ queueId: m.queueId, seq: 0, messageId: m.messageId, sender: m.sender });
          await s.finish(
            [record(item!, { outcome: 'portal-notified', method: 'portal', portal: portalFacts(made.id, notification.queueId) })],
            [{ queueId: m.queueId, seq: 0, outcome: 'portal-notified', error: null }],
            [notification],
            [made],
          );
          expect(brief(await all(s))).toEqual([
            ['queued', 'pat@patient.test', null],
            ['portal-notified', 'pat@patient.test', 'portal'],
            ['secured', 'pat@patient.test', 'portal'],
            ['queued', 'pat@patient.test', null],
          ]);
          const mark = (await all(s)).at(-1)!.id;
          const t0 = 1_700_000_000_000;
          expect(await s.recordPortalEvent(made.id, 'portal-viewed', { at: t0 })).toBe(true);
          expect(await s.setPortalCode(made.id, { hash: randomBytes(32), expiresAt: Date.now() + 60_000, triesLeft: 3 }, { at: Date.now() })).toEqual({ result: 'set' });
          expect(await s.checkPortalCode(made.id, randomBytes(32), { lockMs: 1000, event: { at: Date.now() } })).toEqual({ result: 'wrong', triesLeft: 2 });
          expect(await s.recordPortalEvent(made.id, 'portal-downloaded', { at: t0 + 1 })).toBe(true);
          expect(await s.recordPortalEvent(made.id, 'portal-opened', { at: t0 + 2, ip: '192.0.2.1' })).toBe(true);
          expect(await s.recordPortalEvent(made.id, 'portal-replied', { at: t0 + 3 })).toBe(true);
          expect(await s.recordPortalEvent('no-such-item', 'portal-opened', { at: t0 + 4 })).toBe(false);
          const recalledAt = t0 + 5;
          expect(await s.recallPortalItems(m.queueId, 'alice', recalledAt)).toHaveLength(1);
          const expiring = portalItem({ createdAt: t0 - 10, expiresAt: t0 - 1, recipient: 'kim@patient.test' });
          await s.putPortalItem(expiring);
          expect(await s.expirePortalItems(Date.now(), 10)).toBe(1);

          const events = await s.listEvents({ afterId: mark, limit: 100 });
          expect(events.map(({ id: _id, ...e }) => e)).toEqual([
            { queueId: m.queueId, seq: 0, at: t0 + 2, type: 'portal-opened', sender: m.sender, recipient: 'pat@patient.test', domain: 'patient.test', method: null, tls: null, campaign: null, custom: null, subject: SECRET_SUBJECT, automated: false },
            { queueId: m.queueId, seq: 0, at: t0 + 3, type: 'replied', sender: m.sender, recipient: 'pat@patient.test', domain: 'patient.test', method: null, tls: null, campaign: null, custom: null, subject: SECRET_SUBJECT, automated: false },
            { queueId: m.queueId, seq: 0, at: recalledAt, type: 'recalled', sender: m.sender, recipient: 'pat@patient.test', domain: 'patient.test', method: null, tls: null, campaign: null, custom: null, subject: SECRET_SUBJECT, automated: false },
            { queueId: expiring.queueId, seq: 0, at: expect.any(Number) as number, type: 'expired', sender: expiring.sender, recipient: 'kim@patient.test', domain: 'patient.test', method: null, tls: null, campaign: null, custom: null, subject: null, automated: false },
          ]);
          expect(JSON.stringify(await all(s))).not.toMatch(/Quetzalcoatl|192\.0\.2\.1|alice/);
        }));

      it('a finish or enqueue that fails writes no event: events commit in the transaction of their fact', () =>
        withStore(async (s) => {
          const m = message({ recipients: ['pat@patient.test', 'x@one.test'] });
          await s.enqueue(m);
          const [pat, x] = await claimAll(s);
          const before = await all(s);
          const notification = message({ recipients: ['pat@patient.test'] });
          const made = portalItem({ queueId: m.queueId, seq: 0, messageId: m.messageId });
          const taken = portalItem();
          await s.putPortalItem(taken);
          const records = [
            record(pat!, { outcome: 'portal-notified', method: 'portal', portal: portalFacts(made.id, notification.queueId) }),
            record(x!, { method: 'tls', tls: tlsFacts, starttlsOffered: true }),
          ];
          const settle = [
            { queueId: m.queueId, seq: 0, outcome: 'portal-notified' as const, error: null },
            { queueId: m.queueId, seq: 1, outcome: 'delivered' as const, error: null },
          ];
          // A second item with a token hash already taken: the whole finish fails. Other writes of the
          // same group commit (an enqueue made at the same moment) still commit, with their events.
          const other = message({ recipients: ['o@three.test'] });
          const [failed, enqueued] = await Promise.allSettled([
            s.finish(records, settle, [notification], [made, portalItem({ tokenHash: taken.tokenHash })]),
            s.enqueue(other),
          ]);
          expect(failed.status).toBe('rejected');
          expect(enqueued.status).toBe('fulfilled');
          expect(brief((await all(s)).slice(before.length))).toEqual([['queued', 'o@three.test', null]]);
          expect(await s.queryRecords({ message: m.queueId })).toEqual([]);

          // An enqueue that fails (its staged parts are not all there) writes no `queued`.
          const staged = message({ staged: { parts: 2, bytes: 20 } });
          await s.stageBodyPart(staged.queueId, 1, Buffer.alloc(10, 'x'));
          await expect(s.enqueue(staged)).rejects.toThrow(/staged part/);
          expect((await all(s)).filter((e) => e.queueId === staged.queueId)).toEqual([]);

          // The same finish without the bad item writes every event of it.
          await s.finish(records, settle, [notification], [made]);
          expect(brief((await all(s)).filter((e) => e.queueId === m.queueId && e.type !== 'queued'))).toEqual([
            ['portal-notified', 'pat@patient.test', 'portal'],
            ['secured', 'pat@patient.test', 'portal'],
            ['delivered', 'x@one.test', 'tls'],
            ['secured', 'x@one.test', 'tls'],
          ]);
        }));

      it('events are read in write order with unique ids; paging with afterId sees each once; filtered by type and time', () =>
        withStore(async (s) => {
          // Many events in the same millisecond and a fact dated in the past: id order is still write order.
          await s.enqueue(message({ recipients: Array.from({ length: 30 }, (_, i) => `r${i}@one.test`) }));
          await s.enqueue(message({ recipients: ['old@two.test'], receivedAt: 1_000 }));
          const items = await claimAll(s);
          await s.finish(items.map((i) => record(i, { method: 'tls', tls: tlsFacts, starttlsOffered: true })), items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'delivered' as const, error: null })));
          const events = await all(s);
          expect(events).toHaveLength(31 + 31 * 2);
          const ids = events.map((e) => e.id);
          expect(new Set(ids).size).toBe(ids.length);
          expect([...ids].sort()).toEqual(ids);
          expect(events.slice(0, 31).every((e) => e.type === 'queued')).toBe(true);
          expect(events[30]).toMatchObject({ recipient: 'old@two.test', at: 1_000 });

          const paged: RelayEvent[] = [];
          let afterId: string | undefined;
          for (;;) {
            const page = await s.listEvents({ afterId, limit: 7 });
            if (!page.length) break;
            expect(page.length).toBeLessThanOrEqual(7);
            paged.push(...page);
            afterId = page.at(-1)!.id;
          }
          expect(paged).toEqual(events);
          // A reader at the end sees only what is written after.
          await s.enqueue(message({ recipients: ['late@three.test'] }));
          expect(brief(await s.listEvents({ afterId, limit: 100 }))).toEqual([['queued', 'late@three.test', null]]);

          const secured = await s.listEvents({ types: ['secured'], limit: 100 });
          expect(secured).toHaveLength(31);
          expect(secured.every((e) => e.type === 'secured' && e.method === 'tls')).toBe(true);
          const types: EventType[] = ['queued', 'delivered'];
          expect((await s.listEvents({ types, limit: 1000 })).map((e) => e.id)).toEqual((await all(s)).filter((e) => types.includes(e.type)).map((e) => e.id));
          expect((await s.listEvents({ since: 2_000, types: ['queued'], limit: 100 })).map((e) => e.recipient)).not.toContain('old@two.test');
          expect(await s.listEvents({ types: ['clicked', 'opened', 'unsubscribed', 'suppressed'], limit: 100 })).toEqual([]);
        }));

      it('a bad query is refused with a clear error', () =>
        withStore(async (s) => {
          await expect(s.listEvents({ limit: 0 })).rejects.toThrow(/limit must be a whole number/);
          await expect(s.listEvents({ limit: 1e9 })).rejects.toThrow(/limit must be a whole number/);
          await expect(s.listEvents({ afterId: "' OR 1=1 --", limit: 10 })).rejects.toThrow(/afterId must be an event id/);
          await expect(s.listEvents({ types: ['delivered', 'sent' as EventType], limit: 10 })).rejects.toThrow(/unknown type "sent"/);
          await expect(s.listEvents({ since: Number.NaN, limit: 10 })).rejects.toThrow(/since must be a time/);
        }));
    });

    describe('retention (pruneOld, countPrunable)', () => {
      const now = Date.now();
      const cutoff = now - 400 * DAY_MS;
      const ago = (days: number) => now - days * DAY_MS;
      const queueIds = async (s: Store) => new Set((await s.listEvents({ limit: 10_000 })).map((e) => e.queueId));
      /** Reading a report makes its counts catch up with the events: only counted events may be pruned. */
      const countForReports = (s: Store) => s.reportCounts({ split: 'none', pieces: [], includeAutomated: false });
      const drain = async (s: Store, kind: PruneKind, limit: number) => {
        const batches: number[] = [];
        for (;;) {
          const n = await s.pruneOld(kind, cutoff, limit);
          batches.push(n);
          if (n < limit) return batches;
        }
      };

      it('prunes records and events of finished messages older than the cutoff, in batches; keeps queued messages, readable portal items and anything newer', () =>
        withStore(async (s) => {
          const old1 = await finishedMessage(s, ago(500));
          const old2 = await finishedMessage(s, ago(450));
          const fresh = await finishedMessage(s, ago(10));
          const deferred = await deferredMessage(s, ago(500));
          const held = await heldMessage(s, ago(500));
          const portal = await portalMessage(s, ago(500));
          await countForReports(s);

          // 3 recipients each: a record apiece; queued, delivered and secured events apiece.
          expect(await s.countPrunable('records', cutoff)).toBe(6);
          expect(await s.countPrunable('events', cutoff)).toBe(18);
          expect(await drain(s, 'records', 4)).toEqual([4, 2]);
          expect(await drain(s, 'events', 7)).toEqual([7, 7, 4]);
          expect(await s.countPrunable('records', cutoff)).toBe(0);
          expect(await s.countPrunable('events', cutoff)).toBe(0);

          for (const gone of [old1, old2]) expect(await s.queryLog({ message: gone.queueId })).toEqual([]);
          expect(await s.queryRecords({ message: fresh.queueId })).toHaveLength(3);
          expect(await s.queryRecords({ message: deferred.queueId })).toHaveLength(3);
          expect(await s.queryRecords({ message: portal.message.queueId })).toHaveLength(3);
          const left = await queueIds(s);
          expect([old1, old2].filter((m) => left.has(m.queueId))).toEqual([]);
          expect([fresh, deferred, held, portal.message].every((m) => left.has(m.queueId))).toBe(true);
          // The queue is untouched, old as it is.
          expect((await s.getQueueEntry(deferred.queueId))?.recipients.map((r) => r.state)).toEqual(['queued', 'queued', 'queued']);
          expect((await s.getQueueEntry(held.queueId))?.recipients.map((r) => r.state)).toEqual(['held', 'held', 'held']);
          expect((await s.readBody(held.queueId))?.equals(held.body)).toBe(true);
        }));

      it('a portal message is pruned once its item is erased; an erased item\'s metadata goes by its creation, a readable one never', () =>
        withStore(async (s) => {
          const readable = await portalMessage(s, ago(500));
          const erased = await portalMessage(s, ago(500), { erased: true });
          const erasedNew = await portalMessage(s, ago(10), { erased: true });
          expect(await s.countPrunable('portal-items', cutoff)).toBe(1);
          expect(await drain(s, 'portal-items', 10)).toEqual([1]);
          expect(await s.getPortalItemInfo(erased.itemId)).toBeNull();
          expect(await s.getPortalItemInfo(readable.itemId)).not.toBeNull();
          expect(await s.getPortalItemInfo(erasedNew.itemId)).not.toBeNull();
          await drain(s, 'records', 100);
          expect(await s.queryLog({ message: erased.message.queueId })).toEqual([]);
          expect(await s.queryLog({ message: readable.message.queueId })).not.toEqual([]);
        }));

      it('never the newest record or event: a reader following the log or the events by id sees what is written after a prune of everything', () =>
        withStore(async (s) => {
          await finishedMessage(s, ago(500));
          const { cursor } = await s.logAfter(null, {});
          const lastEvent = (await s.listEvents({ limit: 10_000 })).at(-1)!;
          await countForReports(s);
          expect(await s.pruneOld('records', now, 100)).toBe(2);
          expect(await s.pruneOld('events', now, 100)).toBe(8);
          const next = await finishedMessage(s, now);
          expect((await s.logAfter(cursor, {})).records.map((r) => r.queueId)).toEqual([next.queueId, next.queueId, next.queueId]);
          expect((await s.listEvents({ afterId: lastEvent.id, limit: 100 })).map((e) => e.queueId)).toEqual(Array(9).fill(next.queueId));
        }));

      it('refuses an unknown kind, a bad time or limit, and changes nothing', () =>
        withStore(async (s) => {
          await finishedMessage(s, ago(500));
          await expect(s.pruneOld('bodies' as PruneKind, cutoff, 10)).rejects.toThrow(/unknown kind "bodies"/);
          await expect(s.pruneOld('records', Number.NaN, 10)).rejects.toThrow(/before must be a time/);
          await expect(s.pruneOld('records', cutoff, 0)).rejects.toThrow(/limit must be a whole number/);
          await expect(s.countPrunable('events', 1.5)).rejects.toThrow(/before must be a time/);
          expect(await s.countPrunable('records', cutoff)).toBe(2);
        }));
    });
  });
}
