// `sealrelay queue delete|hold|release|flush|list` with a target (ALL, a queue id or a
// prefix of one) and filters, like postsuper -d ALL deferred and postqueue -s: the
// real CLI from dist/ on a real SQLite store seeded with messages in several states,
// for several domains and senders, of several ages. Each action is checked in the
// database afterwards: what it changed, what it left alone, and the trace it left
// (an operator record per recipient, an audit entry per message).
import { userInfo } from 'node:os';
import { beforeEach, afterEach, describe, expect, it } from 'vitest';
import { isOperatorRecord, type QueueEntry } from '../../src/store/store.ts';
import { claimAll, DAY, HOUR, lines, makeSandbox, message, runCli, withStore, type Sandbox } from './harness.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const OPERATOR = userInfo().username;
let box: Sandbox;
let now: number;

/**
 * DEF1  deferred  app@clinic.example     ann@example.com, otto@other.org   3 days old
 * DEF2  deferred  billing@bank.example   bea@example.com                   1 hour old
 * HLD1  held      <>                     hal@other.org                     1 day old
 * NEW1  queued    app@clinic.example     cy@example.com                    just now
 * ab_1, abX1  queued (ids for the prefix tests)  app@clinic.example  zed@prefix.example
 */
beforeEach(async () => {
  box = makeSandbox();
  now = Date.now();
  await withStore(box.storePath, async (store) => {
    await store.enqueue(message('DEF1', ['ann@example.com', 'otto@other.org'], now - 3 * DAY));
    await store.enqueue(message('DEF2', ['bea@example.com'], now - HOUR, { sender: 'billing@bank.example' }));
    const tried = await claimAll(store);
    await store.finish([], tried.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: '451 4.7.1 try later', nextAttemptAt: now + HOUR })));
    await store.enqueue(message('HLD1', ['hal@other.org'], now - DAY, { sender: '' }));
    expect(await store.hold('HLD1', 'seed')).toBe(1);
    await store.enqueue(message('NEW1', ['cy@example.com'], now));
    for (const id of ['ab_1', 'abX1']) await store.enqueue(message(id, ['zed@prefix.example'], now));
  });
});

afterEach(() => box.cleanup());

const queue = (...args: string[]) => runCli(['-c', box.configFile, 'queue', ...args]);
/** Every message still queued: id → its waiting recipients and their states. */
const snapshot = () =>
  withStore(box.storePath, async (s) =>
    Object.fromEntries((await s.listQueue()).map((e) => [e.queueId, e.recipients.filter((r) => r.state === 'queued' || r.state === 'held').map((r) => `${r.recipient} ${r.state}`)])),
  );
const listIds = async (...args: string[]) => {
  const res = await queue('list', '--json', ...args);
  expect(res).toMatchObject({ code: 0, stderr: '' });
  return lines(res.stdout).map((l) => (JSON.parse(l) as QueueEntry).queueId);
};

describe('bulk actions act on what the filters select, and on nothing else', () => {
  it('delete ALL --state deferred --domain example.com: only those recipients; records, audit entries and a log line', async () => {
    const before = await snapshot();
    const res = await queue('delete', 'ALL', '--state', 'deferred', '--domain', 'example.com');
    expect(res.stdout).toBe('deleted 2 recipients of 2 messages\n');
    expect(res.code).toBe(0);
    expect(JSON.parse(lines(res.stderr)[0]!)).toMatchObject({ event: 'queue.deleted', selection: 'ALL state=deferred domain=example.com', messages: 2, recipients: 2, operator: OPERATOR });

    // DEF2 is gone; DEF1 keeps its other.org recipient; the others are as they were.
    const after = await snapshot();
    expect(after).toEqual({ ...before, DEF1: ['otto@other.org queued'], DEF2: undefined });
    await withStore(box.storePath, async (s) => {
      const deleted = await s.queryLog({ outcome: 'deleted' });
      expect(deleted.map((r) => [r.queueId, r.recipient, isOperatorRecord(r) && r.operator, isOperatorRecord(r) && r.action])).toEqual([
        ['DEF1', 'ann@example.com', OPERATOR, 'delete'],
        ['DEF2', 'bea@example.com', OPERATOR, 'delete'],
      ]);
      const audit = (await s.listAudit({ limit: 100, action: 'queue.delete' })).map((a) => [a.actorName, a.target, a.detail]);
      expect(audit).toEqual([
        [OPERATOR, 'DEF1', '1 recipients'],
        [OPERATOR, 'DEF2', '1 recipients'],
        [OPERATOR, 'ALL state=deferred domain=example.com', '2 messages, 2 recipients'],
      ]);
    });
  });

  it('--dry-run shows what would change and changes nothing', async () => {
    const before = await snapshot();
    const res = await queue('delete', 'ALL', '--state', 'deferred', '--dry-run');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^DEF1\s.*\sdeferred\s/m);
    expect(res.stdout).toMatch(/^DEF2\s.*\sdeferred\s/m);
    expect(res.stdout).not.toMatch(/^(HLD1|NEW1)\s/m);
    expect(lines(res.stdout).at(-1)).toBe('would have deleted 3 recipients of 2 messages (dry run: nothing changed)');
    expect(await snapshot()).toEqual(before);
    await withStore(box.storePath, async (s) => {
      expect(await s.queryLog({ outcome: 'deleted' })).toEqual([]);
      expect((await s.listAudit({ limit: 10 })).map((a) => a.action)).toEqual(['queue.read']);
    });
  });

  it('list selects by sender address or domain, the null sender, recipient domain and age', { timeout: 90_000 }, async () => {
    expect(await listIds('--sender', 'APP@clinic.example', '--older-than', '1d')).toEqual(['DEF1']);
    expect(await listIds('--sender', '<>')).toEqual(['HLD1']);
    expect(await listIds('ALL', '--newer-than', '2h', '--domain', 'EXAMPLE.com')).toEqual(['DEF2', 'NEW1']);
    expect(await listIds('--sender', 'bank.example', '--state', 'deferred,held')).toEqual(['DEF2']);
  });

  it('hold ALL --sender <domain> holds that sender\'s mail only; release ALL releases only what is held', { timeout: 60_000 }, async () => {
    expect(await queue('hold', 'ALL', '--sender', 'clinic.example')).toMatchObject({ code: 0, stdout: 'held 5 recipients of 4 messages\n' });
    const held = await snapshot();
    expect(held).toMatchObject({ DEF1: ['ann@example.com held', 'otto@other.org held'], DEF2: ['bea@example.com queued'], NEW1: ['cy@example.com held'] });
    expect(await queue('release', 'ALL', '--older-than', '12h')).toMatchObject({ code: 0, stdout: 'released 3 recipients of 2 messages\n' });
    expect(await snapshot()).toMatchObject({ DEF1: ['ann@example.com queued', 'otto@other.org queued'], HLD1: ['hal@other.org queued'], NEW1: ['cy@example.com held'] });
  });

  it('flush --domain (postqueue -s) makes only that domain due, and a store open beside it (a running relay) sees it', async () => {
    const relay = new SqliteStore(box.storePath);
    try {
      // Nothing is due but NEW1 and the prefix messages; take those out of the way.
      await relay.claim({ owner: 'relay', limit: 100, leaseMs: HOUR });
      expect(await queue('flush', '--domain', 'example.com')).toMatchObject({ code: 0, stdout: 'flushed 2 recipients of 2 messages\n' });
      const due = await relay.claim({ owner: 'relay', limit: 100, leaseMs: HOUR });
      expect(due.map((i) => i.recipient).sort()).toEqual(['ann@example.com', 'bea@example.com']);
    } finally {
      await relay.close();
    }
  });
});

describe('ids and prefixes', () => {
  it('a unique prefix names one message; an ambiguous one is refused with its candidates; _ and % are literal', { timeout: 90_000 }, async () => {
    // The ambiguous one first: once abX1 is deleted, ab names one message.
    const [ambiguous, percent] = await Promise.all([queue('delete', 'ab'), queue('delete', '%')]);
    const [unique, underscore] = await Promise.all([queue('delete', 'abX'), queue('hold', 'ab_')]);
    expect(unique).toMatchObject({ code: 0, stdout: 'deleted abX1: 1 recipient removed\n' });
    expect(ambiguous.code).toBe(64);
    expect(ambiguous.stderr).toContain('ab is the start of');
    // As a LIKE pattern, ab_ would match abX1 too and be ambiguous; literally it names ab_1.
    expect(underscore).toMatchObject({ code: 0, stdout: 'held 1 recipient of ab_1\n' });
    expect(percent.code).toBe(1);
    expect(percent.stderr).toContain('no message % in the queue, nor one whose id starts with it');
    const after = await snapshot();
    expect(after.abX1).toBeUndefined();
    expect(after.ab_1).toEqual(['zed@prefix.example held']);
    expect(Object.keys(after).sort()).toEqual(['DEF1', 'DEF2', 'HLD1', 'NEW1', 'ab_1']);
  });

  it('an ambiguous prefix lists the candidates and changes nothing', async () => {
    const res = await queue('release', 'a');
    expect(res.code).toBe(64);
    expect(res.stderr).toMatch(/a is the start of 2 queue ids: (ab_1, abX1|abX1, ab_1); give more of the id/);
  });
});

describe('bad input is refused with exit 64 before anything changes', () => {
  it.each([
    [['delete'], 'say which messages'],
    [['delete', ''], 'an empty queue id prefix would select every message'],
    [['delete', 'a b'], 'not a queue id or a prefix of one'],
    [['delete', 'ALL', '--state', 'bogus'], '"bogus" is not a state: expected queued, deferred, active, held'],
    [['delete', 'ALL', '--older-than', '2x'], 'expected an age like 90s'],
    [['delete', 'ALL', '--older-than', '99999999999999w'], 'longer than the epoch'],
    [['delete', 'ALL', '--older-than', '1d', '--newer-than', '2h'], 'select nothing: no message is both'],
    [['release', 'ALL', '--state', 'deferred'], 'queue release changes only recipients that are held'],
    [['hold', 'ALL', '--state', 'held'], 'queue hold changes only recipients that are queued, deferred, active'],
    [['delete', 'ALL', '--domain', 'a.example', '--domain', 'b.example'], '--domain is given once'],
    [['delete', 'ALL', '--domain', 'bob@example.com'], 'not an address'],
    [['delete', 'ALL', '--sender', ''], 'or <> for the null sender'],
    [['list', '--state', ''], 'an empty name is not a state'],
  ])('queue %j', async (args, error) => {
    const before = await snapshot();
    const res = await queue(...args);
    expect(res.stderr).toContain(error);
    expect(res).toMatchObject({ code: 64, stdout: '' });
    expect(await snapshot()).toEqual(before);
  });
});

describe('a large queue', () => {
  it('delete ALL --state deferred on 5,000 messages: every one, in batches, each with its record and audit entry', { timeout: 180_000 }, async () => {
    const n = 5000;
    await withStore(box.storePath, async (s) => {
      await Promise.all(Array.from({ length: n }, (_, i) => s.enqueue(message(`L${String(i).padStart(5, '0')}`, [`r${i}@${i % 2 ? 'odd' : 'even'}.example`], now - DAY))));
      const claimed = await s.claim({ owner: 'test', limit: n + 10, leaseMs: HOUR });
      await s.finish([], claimed.filter((i) => i.domain === 'odd.example').map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: 'x', nextAttemptAt: now + HOUR })));
      await s.unclaim(claimed.filter((i) => i.domain !== 'odd.example'));
    });
    const res = await queue('delete', 'ALL', '--state', 'deferred', '--sender', 'clinic.example');
    // The 2,500 odd ones and DEF1 (2 recipients); DEF2 is from another sender.
    expect(res).toMatchObject({ code: 0, stdout: `deleted ${n / 2 + 2} recipients of ${n / 2 + 1} messages\n` });
    await withStore(box.storePath, async (s) => {
      expect(await s.countQueue({ domain: 'odd.example' })).toEqual({ messages: 0, recipients: 0 });
      expect(await s.countQueue({ domain: 'even.example' })).toEqual({ messages: n / 2, recipients: n / 2 });
      expect(await s.getQueueEntry('DEF2')).not.toBeNull();
      expect((await s.queryLog({ outcome: 'deleted' })).length).toBe(n / 2 + 2);
      expect((await s.listAudit({ limit: n + 10, action: 'queue.delete' })).length).toBe(n / 2 + 2);
    });
  });
});
