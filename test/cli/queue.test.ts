// `sealrelay queue`: list (table, footer, --json), stats, show, and the operator
// actions flush / hold / release / delete, each checked in the database afterwards
// and in the trace it leaves (an operator record in `sealrelay log`, a log line on
// stderr); and a reader that closes the pipe early ends a command quietly.
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import type { OperatorRecord, QueueEntry, QueueStats } from '../../src/store/store.ts';
import { claimAll, HOUR, lines, makeSandbox, message, MINUTE, record, ROOT, runCli, withStore, type Sandbox } from './harness.ts';

let box: Sandbox;
let now: number;
/** Who the actions are recorded as: the OS user running the command, i.e. the one running the tests. */
const OPERATOR = userInfo().username;

// QA (2 recipients, received 2h ago): alice delivered, bob deferred for an hour (last error).
// QB (1 recipient, received 5m ago, null sender): held (by operator "seed").
beforeEach(async () => {
  box = makeSandbox();
  now = Date.now();
  await withStore(box.storePath, async (store) => {
    await store.enqueue(message('QA', ['alice@example.com', 'bob@example.org'], now - 2 * HOUR));
    await store.enqueue(message('QB', ['carol@example.net'], now - 5 * MINUTE, { sender: '' }));
    await claimAll(store);
    await store.finish(
      [
        record({ queueId: 'QA', seq: 0, recipient: 'alice@example.com', attempt: 1, at: now - HOUR, outcome: 'delivered' }),
        record({
          queueId: 'QA', seq: 1, recipient: 'bob@example.org', attempt: 1, at: now - HOUR, outcome: 'deferred',
          fields: { smtp: { code: 451, enhanced: '4.7.1', response: '451 4.7.1 Greylisted, please try again later, we are very busy today' } },
        }),
      ],
      [
        { queueId: 'QA', seq: 0, outcome: 'delivered', error: null },
        { queueId: 'QA', seq: 1, outcome: 'deferred', error: '451 4.7.1 Greylisted, please try again later, we are very busy today', nextAttemptAt: now + HOUR },
      ],
    );
    await store.unclaim([{ queueId: 'QB', seq: 0 }]);
    expect(await store.hold('QB', 'seed')).toBe(1);
  });
});

afterEach(() => box.cleanup());

const queue = (...args: string[]) => runCli(['-c', box.configFile, 'queue', ...args]);
const entry = (id: string) => withStore(box.storePath, (s) => s.getQueueEntry(id));

describe('sealrelay queue list', () => {
  it('lists messages like postqueue -p, with a footer', async () => {
    const res = await queue();
    expect(res.code).toBe(0);
    const [header, qa, qb, footer, ...rest] = lines(res.stdout);
    expect(rest).toEqual([]);
    expect(header?.split(/\s{2,}/)).toEqual(['ID', 'AGE', 'SIZE', 'SENDER', 'RECIPIENTS', 'STATE', 'NEXT TRY', 'LAST ERROR']);
    // Only bob is still waiting in QA: alice was delivered.
    expect(qa).toMatch(/^QA\s+2h\s+\d+ B\s+app@clinic\.example\s+bob@example\.org\s+deferred\s+in (59m|1h)\s+451 4\.7\.1 Greylisted, please try again later, we…$/);
    expect(qb).toMatch(/^QB\s+5m\s+\d+ B\s+<>\s+carol@example\.net\s+held\s+-$/);
    expect(footer).toBe('2 messages, 2 recipients (1 held), 1 KB');
  });

  it('`queue list --json` prints one entry per line', async () => {
    const res = await queue('list', '--json');
    expect(res.code).toBe(0);
    const entries = lines(res.stdout).map((l) => JSON.parse(l) as QueueEntry);
    expect(entries.map((e) => e.queueId)).toEqual(['QA', 'QB']);
    expect(entries[0]?.recipients.map((r) => r.state)).toEqual(['delivered', 'queued']);
  });

  it('counts recipients and shows the first', async () => {
    await withStore(box.storePath, (s) => s.enqueue(message('QC', ['x@a.example', 'y@b.example', 'z@c.example'], now)));
    const res = await queue();
    expect(res.stdout).toMatch(/^QC\s+\d+s\s+\d+ B\s+app@clinic\.example\s+x@a\.example \(\+2\)\s+queued\s+now$/m);
    expect(res.stdout).toContain('3 messages, 5 recipients (1 held), 1 KB');
  });

  it('--limit lists the oldest n and says how many there are in all', async () => {
    const res = await queue('list', '--limit', '1');
    expect(res.stdout).toMatch(/^QA\s/m);
    expect(res.stdout).not.toMatch(/^QB\s/m);
    const total = /\(the oldest 1 of (\d+) messages; --limit 0 lists all\)/.exec(res.stdout)?.[1];
    expect(Number(total)).toBeGreaterThan(1);
    expect(res.stdout).toMatch(new RegExp(`^${total} messages, \\d+ recipients`, 'm'));
    expect((await queue('list', '--limit', 'x')).code).toBe(64);
  });

  it('says so when the queue is empty', async () => {
    await withStore(box.storePath, async (s) => {
      await s.deleteEntry('QA', 'seed');
      await s.deleteEntry('QB', 'seed');
    });
    expect(await queue()).toMatchObject({ code: 0, stdout: 'queue is empty\n' });
  });
});

describe('possible duplicates (recipients a crash cut off mid-attempt)', () => {
  /** QC's two recipients are claimed by a run that dies; the next start frees them. */
  const crashMidAttempt = () =>
    withStore(box.storePath, async (s) => {
      await s.enqueue(message('QC', ['x@a.example', 'y@b.example'], now));
      expect(await claimAll(s)).toHaveLength(2);
      expect(await s.recoverInterrupted()).toBe(2);
    });

  it('the list footer counts them once there are any', async () => {
    await crashMidAttempt();
    const footer = lines((await queue()).stdout).at(-1);
    expect(footer).toBe('3 messages, 4 recipients (1 held), 1 KB; 2 possible duplicates (recipients retried after a crash cut their attempt off)');
  });

  it('an empty queue still shows them: the count outlives the messages', async () => {
    await crashMidAttempt();
    await withStore(box.storePath, async (s) => {
      for (const id of ['QA', 'QB', 'QC']) await s.deleteEntry(id, 'seed');
    });
    expect(await queue()).toMatchObject({ code: 0, stdout: 'queue is empty; 2 possible duplicates (recipients retried after a crash cut their attempt off)\n' });
  });

  it('`queue stats` shows every total, zero duplicates included; --json as one object', async () => {
    const before = await queue('stats');
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/^messages:\s+2$/m);
    expect(before.stdout).toMatch(/^recipients:\s+2 waiting \(1 held\)$/m);
    expect(before.stdout).toMatch(/^possible duplicates: 0 \(/m);
    await crashMidAttempt();
    const res = await queue('stats', '--json');
    expect(res.code).toBe(0);
    const stats = JSON.parse(res.stdout) as QueueStats;
    expect(stats).toMatchObject({ messages: 3, recipients: 4, held: 1, possibleDuplicates: 2 });
    expect(stats.bytes).toBeGreaterThan(0);
  });
});

describe('sealrelay queue show', () => {
  it("prints the envelope, every recipient's state and the records so far", async () => {
    const res = await queue('show', 'QA');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^queue id:\s+QA$/m);
    expect(res.stdout).toMatch(/^message-id:\s+<qa@clinic\.example>$/m);
    expect(res.stdout).toMatch(/^sender:\s+app@clinic\.example$/m);
    expect(res.stdout).toMatch(/^\s*0\s+alice@example\.com\s+delivered\s+1\s+-\s+-$/m);
    // The full last error, untruncated.
    expect(res.stdout).toMatch(/^\s*1\s+bob@example\.org\s+queued\s+1\s+in (59m|1h)\s+-\s+451 4\.7\.1 Greylisted, please try again later, we are very busy today$/m);
    expect(res.stdout).toContain('delivery records:');
    expect(res.stdout).toMatch(/QA\.0\s+1\s+alice@example\.com\s+delivered/);
    expect(res.stdout).toMatch(/QA\.1\s+1\s+bob@example\.org\s+deferred/);
  });

  it('--json gives the entry and its records', async () => {
    const res = await queue('show', 'QB', '--json');
    const shown = JSON.parse(res.stdout) as { entry: QueueEntry; records: unknown[] };
    expect(shown.entry.sender).toBe('');
    expect(shown.entry.recipients[0]?.state).toBe('held');
    // No attempt yet; the hold is on record.
    expect(shown.records).toMatchObject([{ kind: 'operator', action: 'hold', outcome: 'held', operator: 'seed', recipient: 'carol@example.net' }]);
  });
});

describe('sealrelay queue actions', () => {
  it('flush <id> makes the waiting recipients due now', async () => {
    const res = await queue('flush', 'QA');
    expect(res).toMatchObject({ code: 0, stdout: 'flushed 1 recipient of QA\n' });
    const bob = (await entry('QA'))?.recipients[1];
    expect(bob?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
  });

  it('flush without an id flushes the whole queue', async () => {
    await withStore(box.storePath, (s) => s.releaseHold('QB', 'seed'));
    const res = await queue('flush');
    expect(res).toMatchObject({ code: 0, stdout: 'flushed 1 recipient\n' });
    expect((await entry('QA'))?.recipients[1]?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
  });

  it('hold and release', async () => {
    expect(await queue('hold', 'QA')).toMatchObject({ code: 0, stdout: 'held 1 recipient of QA\n' });
    expect((await entry('QA'))?.recipients.map((r) => r.state)).toEqual(['delivered', 'held']);
    expect((await queue()).stdout).toMatch(/^QA\s.*\sheld\s+-\s/m);

    expect(await queue('release', 'QA')).toMatchObject({ code: 0, stdout: 'released 1 recipient of QA\n' });
    const bob = (await entry('QA'))?.recipients[1];
    expect(bob?.state).toBe('queued');
    expect(bob?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
  });

  it('delete removes the message and says how many recipients went with it', async () => {
    await withStore(box.storePath, (s) => s.enqueue(message('QC', ['x@a.example', 'y@b.example'], now)));
    expect(await queue('delete', 'QC')).toMatchObject({ code: 0, stdout: 'deleted QC: 2 recipients removed\n' });
    expect(await entry('QC')).toBeNull();
    expect(await entry('QA')).not.toBeNull();
  });

  it.each([['show'], ['flush'], ['hold'], ['release'], ['delete']])('%s of an unknown id exits 1', async (action) => {
    const res = await queue(action, 'NOSUCHID');
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('no message NOSUCHID in the queue');
    expect(res.stdout).toBe('');
  });

  it('a missing id is a usage error (64)', async () => {
    const res = await queue('hold');
    expect(res.code).toBe(64);
    expect(res.stderr).toContain('say which messages: a queue id, a unique prefix of one, or ALL');
  });
});

/** The JSON log lines a command wrote to stderr. */
const logLines = (stderr: string) => lines(stderr).map((l) => JSON.parse(l) as Record<string, unknown>);
const logJson = async (...args: string[]) => lines((await runCli(['-c', box.configFile, 'log', '--json', ...args])).stdout).map((l) => JSON.parse(l) as DeliveryRecord | OperatorRecord);

describe('every operator action leaves a trace: a record per recipient it changed, and a log line', () => {
  it("delete: each waiting recipient's last record says `deleted`, by whom; the settled ones keep theirs", async () => {
    const res = await queue('delete', 'QA');
    expect(res).toMatchObject({ code: 0, stdout: 'deleted QA: 1 recipient removed\n' });
    expect(logLines(res.stderr)).toMatchObject([{ level: 30, event: 'queue.deleted', queueId: 'QA', recipients: 1, operator: OPERATOR }]);

    const records = await logJson('--message', 'QA');
    expect(records.map((r) => [r.recipient, r.outcome])).toEqual([
      ['alice@example.com', 'delivered'], ['bob@example.org', 'deferred'], ['bob@example.org', 'deleted'],
    ]);
    const deleted = records.at(-1) as OperatorRecord;
    expect(deleted).toMatchObject({ kind: 'operator', queueId: 'QA', seq: 1, action: 'delete', operator: OPERATOR, attemptsBefore: 1, messageId: '<qa@clinic.example>' });
    // Not an attempt: no attempt number, MX, TLS or SMTP reply of its own.
    for (const field of ['attempt', 'mx', 'tls', 'smtp', 'method']) expect(deleted).not.toHaveProperty(field);

    const table = (await runCli(['-c', box.configFile, 'log', '--message', 'QA'])).stdout;
    // The table's columns: time, id, attempt, recipient, outcome, method, TLS, SMTP (the reason).
    expect(table).toMatch(new RegExp(`QA\\.1\\s+-\\s+bob@example\\.org\\s+deleted\\s+-\\s+-\\s+queue delete by ${OPERATOR}$`, 'm'));
  });

  it('flush, hold and release: a record and a log line each, naming the action and the operator', async () => {
    for (const action of ['flush', 'hold', 'release']) {
      const res = await queue(action, 'QA');
      expect(res.code).toBe(0);
      const event = { flush: 'queue.flushed', hold: 'queue.held', release: 'queue.released' }[action];
      expect(logLines(res.stderr)).toMatchObject([{ event, queueId: 'QA', recipients: 1, operator: OPERATOR }]);
    }
    const trail = (await logJson('--recipient', 'bob@example.org')).map((r) => ('action' in r ? [r.outcome, r.action, r.operator] : [r.outcome, r.attempt]));
    expect(trail).toEqual([['deferred', 1], ['flushed', 'flush', OPERATOR], ['held', 'hold', OPERATOR], ['released', 'release', OPERATOR]]);
    const table = (await runCli(['-c', box.configFile, 'log', '--message', 'QA'])).stdout;
    expect(table).toMatch(new RegExp(`bob@example\\.org\\s+held\\s+-\\s+-\\s+queue hold by ${OPERATOR}`));
    // `queue show` lists them among the records.
    expect((await queue('show', 'QA')).stdout).toMatch(/QA\.1\s+-\s+bob@example\.org\s+released\s/);
  });

  it('flush without an id logs it for the whole queue; an action that changes nothing records nothing', async () => {
    const res = await queue('flush');
    expect(logLines(res.stderr)).toMatchObject([{ event: 'queue.flushed', queueId: null, recipients: 1, operator: OPERATOR }]);
    // QB is already held: nothing changes, nothing is recorded, the action is still logged.
    const again = await queue('hold', 'QB');
    expect(again.stdout).toBe('held 0 recipients of QB\n');
    expect(logLines(again.stderr)).toMatchObject([{ event: 'queue.held', queueId: 'QB', recipients: 0 }]);
    expect((await logJson('--message', 'QB')).map((r) => r.outcome)).toEqual(['held']);
  });

  it('--outcome filters tell actions from attempts: `deferred` is only attempts, `deleted` only deletions', async () => {
    await queue('delete', 'QA');
    await queue('delete', 'QB');
    expect((await logJson('--outcome', 'deferred')).map((r) => [r.queueId, r.outcome])).toEqual([['QA', 'deferred']]);
    expect((await logJson('--outcome', 'deleted')).map((r) => [r.queueId, r.recipient])).toEqual([['QA', 'bob@example.org'], ['QB', 'carol@example.net']]);
    const bad = await runCli(['-c', box.configFile, 'log', '--outcome', 'removed']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('deleted, held, released, flushed');
  });
});

describe('a closed pipe', () => {
  /** Runs `sealrelay <args>` and closes its stdout after the first chunk, as `| head -1` would. */
  const readFirstChunk = (args: string[]) =>
    new Promise<{ code: number | null; signal: string | null; stderr: string }>((done) => {
      const child = spawn(process.execPath, ['bin/sealrelay.js', '-c', box.configFile, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.once('data', () => child.stdout.destroy());
      child.on('close', (code, signal) => done({ code, signal, stderr }));
    });

  it('ends `queue list` (table and --json) quietly once the reader has gone: no stack trace, exit 0', async () => {
    // Far more than a pipe holds (64 KiB), so the writer is still writing when the reader leaves.
    await withStore(box.storePath, (s) => Promise.all(Array.from({ length: 3000 }, (_, i) => s.enqueue(message(`QBULK${i}`, ['x@bulk.example'], now)))));
    for (const args of [['queue', 'list', '--limit', '0'], ['queue', 'list', '--limit', '0', '--json']]) {
      expect(await readFirstChunk(args)).toEqual({ code: 0, signal: null, stderr: '' });
    }
  });
});
