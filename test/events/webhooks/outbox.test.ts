// The webhook outbox in a real SQLite store: a new endpoint starts at the end of the
// events; each event is copied once, with the cursor, and only of the endpoint's
// types; one message's events are claimed one at a time in id order, and a failure
// holds the later ones back with it; leases keep a request from being sent twice at
// once and are freed at start; give-up, replay (requeue and backfill), pruning. (A
// version 12 store migrating to the outbox: test/store/migrations.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventIdBefore } from '../../../src/events/webhooks/outbox.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { message } from '../../store/contract.ts';

const dirs: string[] = [];
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-outbox-'));
  dirs.push(dir);
  return join(dir, 'store.db');
}

function open(path = tempPath()): SqliteStore {
  const store = new SqliteStore(path);
  stores.push(store);
  return store;
}

const T0 = Date.UTC(2026, 11, 3, 12);
const HOUR = 3600_000;
const LEASE = 60_000;

describe('copying', () => {
  it('starts a new endpoint at the current end, copies each event once, and only the types it takes', async () => {
    const store = open();
    await store.enqueue(message({ recipients: ['old@one.test'] }));
    expect(await store.copyWebhookEvents('crm', null, 100, T0)).toBe(0);
    expect(await store.copyWebhookEvents('billing', ['delivered'], 100, T0)).toBe(0);
    const m = message({ recipients: ['a@one.test', 'b@one.test'] });
    await store.enqueue(m);
    expect(await store.copyWebhookEvents('crm', null, 100, T0)).toBe(2);
    expect(await store.copyWebhookEvents('crm', null, 100, T0)).toBe(0);
    // Read past (the cursor moves) but not copied: not a type billing takes.
    expect(await store.copyWebhookEvents('billing', ['delivered'], 100, T0)).toBe(2);
    const [crm, billing] = await statusOf(store, 'crm', 'billing');
    expect(crm!.pending).toBe(2);
    expect(billing!.pending).toBe(0);
    const claimed = await claimAll(store, 'crm', T0);
    expect(claimed.map((d) => d.queueId)).toEqual([m.queueId]);
    // The body is the event, without the subject the event keeps for reports.
    const body = JSON.parse(claimed[0]!.body) as Record<string, unknown>;
    expect(body).toMatchObject({ schema: 1, type: 'queued', queue_id: m.queueId, seq: 0, recipient: 'a@one.test', sender: 'app@sender.test' });
    expect(body.id).toBe(claimed[0]!.eventId);
    expect(claimed[0]!.body).not.toContain('"subject"');
    expect(claimed[0]!.body).not.toContain('hi');
  });

  it('copies a backlog larger than one batch over several calls, losing none', async () => {
    const store = open();
    await store.copyWebhookEvents('crm', null, 10, T0);
    for (let i = 0; i < 5; i++) await store.enqueue(message({ recipients: ['a@one.test', 'b@one.test', 'c@one.test'] }));
    const reads: number[] = [];
    for (let n = -1; n !== 0; ) reads.push((n = await store.copyWebhookEvents('crm', null, 4, T0)));
    expect(reads).toEqual([4, 4, 4, 3, 0]);
    expect((await statusOf(store, 'crm'))[0]!.pending).toBe(15);
  });
});

describe('claiming', () => {
  it('sends one message’s events one at a time, in id order; other messages go beside them', async () => {
    const store = open();
    await store.copyWebhookEvents('crm', null, 100, T0);
    const m1 = message({ recipients: ['a@one.test', 'b@one.test', 'c@one.test'] });
    const m2 = message({ recipients: ['d@two.test'] });
    await store.enqueue(m1);
    await store.enqueue(m2);
    await store.copyWebhookEvents('crm', null, 100, T0);
    const seen: string[] = [];
    for (let round = 0; round < 3; round++) {
      const batch = await claimAll(store, 'crm', T0 + round);
      // At most one event of each message is out at once.
      expect(new Set(batch.map((d) => d.queueId)).size).toBe(batch.length);
      // Nothing else is due while these are in flight.
      expect(await claimAll(store, 'crm', T0 + round)).toEqual([]);
      for (const d of batch) {
        seen.push(d.eventId);
        await store.settleWebhookDeliveries([{ endpoint: 'crm', eventId: d.eventId, at: T0 + round, delivered: true, status: 200 }]);
      }
    }
    const ids = (await store.listEvents({ limit: 100 })).filter((e) => e.queueId === m1.queueId).map((e) => e.id);
    expect(seen.filter((id) => ids.includes(id))).toEqual(ids);
    expect(seen).toHaveLength(4);
    expect((await statusOf(store, 'crm'))[0]).toMatchObject({ pending: 0, deliveredTotal: 4, lastDeliveredAt: T0 + 2 });
  });

  it('holds a message’s later events back with a failed one, and leases keep a request from going twice', async () => {
    const store = open();
    await store.copyWebhookEvents('crm', null, 100, T0);
    const m1 = message({ recipients: ['a@one.test', 'b@one.test'] });
    await store.enqueue(m1);
    await store.copyWebhookEvents('crm', null, 100, T0);
    const [first] = await store.claimWebhookDeliveries('crm', 10, LEASE, T0);
    expect(await store.claimWebhookDeliveries('crm', 10, LEASE, T0 + LEASE - 1)).toEqual([]);
    await store.settleWebhookDeliveries([{ endpoint: 'crm', eventId: first!.eventId, at: T0, delivered: false, status: 500, error: 'HTTP 500', nextAt: T0 + HOUR }]);
    // A message written later is not held back by another message's failure.
    const m2 = message({ recipients: ['c@two.test'] });
    await store.enqueue(m2);
    await store.copyWebhookEvents('crm', null, 100, T0 + 1);
    const other = await claimAll(store, 'crm', T0 + 2);
    expect(other.map((d) => d.queueId)).toEqual([m2.queueId]);
    await store.settleWebhookDeliveries([{ endpoint: 'crm', eventId: other[0]!.eventId, at: T0 + 2, delivered: true, status: 200 }]);
    // m1: neither its failed event nor the later one is due before the retry time.
    expect(await claimAll(store, 'crm', T0 + HOUR - 1)).toEqual([]);
    const retried = await claimAll(store, 'crm', T0 + HOUR);
    expect(retried.map((d) => [d.eventId, d.attempts])).toEqual([[first!.eventId, 1]]);
    // Cut off (a crash): the lease keeps it until it ends, or until the next start frees it.
    expect(await claimAll(store, 'crm', T0 + HOUR + 1)).toEqual([]);
    expect(await store.recoverWebhookDeliveries()).toBe(1);
    expect((await claimAll(store, 'crm', T0 + HOUR + 1)).map((d) => d.eventId)).toEqual([first!.eventId]);
    const [status] = await statusOf(store, 'crm');
    expect(status).toMatchObject({ pending: 2, failedAttemptsTotal: 1, lastStatus: 500, lastError: 'HTTP 500', lastFailureAt: T0 });
    expect(await store.troubledWebhookDeliveries('crm', 10)).toMatchObject([{ eventId: first!.eventId, state: 'pending', attempts: 1, lastError: 'HTTP 500' }]);
  });

  it('gives an event up (failed, counted), after which the message’s later events go on', async () => {
    const store = open();
    await store.copyWebhookEvents('crm', null, 100, T0);
    await store.enqueue(message({ recipients: ['a@one.test', 'b@one.test'] }));
    await store.copyWebhookEvents('crm', null, 100, T0);
    const [first] = await claimAll(store, 'crm', T0);
    await store.settleWebhookDeliveries([{ endpoint: 'crm', eventId: first!.eventId, at: T0 + 73 * HOUR, delivered: false, status: null, error: 'connection refused', nextAt: null }]);
    const [next] = await claimAll(store, 'crm', T0 + 73 * HOUR);
    expect(next!.eventId > first!.eventId).toBe(true);
    expect((await statusOf(store, 'crm'))[0]).toMatchObject({ pending: 1, failed: 1, gaveUpTotal: 1, failedAttemptsTotal: 1, lastError: 'connection refused', lastStatus: null });
    expect(await store.troubledWebhookDeliveries(null, 10)).toMatchObject([{ eventId: first!.eventId, state: 'failed' }]);
  });
});

describe('replay and pruning', () => {
  it('requeues what was sent since a time, backfills events from before the endpoint, and leaves older ones', async () => {
    const store = open();
    const before = message({ recipients: ['early@one.test'] });
    await store.enqueue(before);
    await store.copyWebhookEvents('crm', null, 100, T0);
    const m = message({ recipients: ['a@one.test'] });
    await store.enqueue(m);
    await store.copyWebhookEvents('crm', null, 100, T0);
    const [d] = await claimAll(store, 'crm', T0);
    await store.settleWebhookDeliveries([{ endpoint: 'crm', eventId: d!.eventId, at: T0, delivered: true, status: 204 }]);
    // Nothing since a time after every event: nothing changes.
    expect(await store.replayWebhooks('crm', eventIdBefore(Date.now() + HOUR), null, 100, T0 + 1)).toEqual({ requeued: 0, added: 0, resumeAfter: null });
    // Since the beginning: the delivered one again, and the event from before the endpoint existed.
    expect(await store.replayWebhooks('crm', eventIdBefore(0), null, 100, T0 + 2)).toEqual({ requeued: 1, added: 1, resumeAfter: null });
    const again = await claimAll(store, 'crm', T0 + 2);
    expect(again.map((x) => x.queueId).sort()).toEqual([before.queueId, m.queueId].sort());
    expect(again.find((x) => x.queueId === m.queueId)).toMatchObject({ eventId: d!.eventId, attempts: 0, queuedAt: T0 + 2, body: d!.body });
    // Types: an endpoint taking only `delivered` backfills none of these `queued` events.
    expect(await store.replayWebhooks('billing', eventIdBefore(0), ['delivered'], 100, T0)).toEqual({ requeued: 0, added: 0, resumeAfter: null });
  });

  it('replays in batches that resume where the last stopped', async () => {
    const store = open();
    for (let i = 0; i < 2; i++) await store.enqueue(message({ recipients: ['a@one.test', 'b@one.test', 'c@one.test'] }));
    await store.copyWebhookEvents('crm', null, 100, T0);
    let after: string | null = eventIdBefore(0);
    const added: number[] = [];
    while (after !== null) {
      const r: { added: number; resumeAfter: string | null } = await store.replayWebhooks('crm', after, null, 4, T0);
      added.push(r.added);
      after = r.resumeAfter;
    }
    expect(added).toEqual([4, 2]);
    expect((await statusOf(store, 'crm'))[0]!.pending).toBe(6);
  });

  it('prunes delivered and failed deliveries settled before the cut, never pending ones', async () => {
    const store = open();
    await store.copyWebhookEvents('crm', null, 100, T0);
    await store.enqueue(message({ recipients: ['a@one.test'] }));
    await store.enqueue(message({ recipients: ['b@one.test'] }));
    await store.enqueue(message({ recipients: ['c@one.test'] }));
    await store.copyWebhookEvents('crm', null, 100, T0);
    const [a, b] = await claimAll(store, 'crm', T0);
    await store.settleWebhookDeliveries([
      { endpoint: 'crm', eventId: a!.eventId, at: T0, delivered: true, status: 200 },
      { endpoint: 'crm', eventId: b!.eventId, at: T0 + HOUR, delivered: false, status: 500, error: 'HTTP 500', nextAt: null },
    ]);
    expect(await store.pruneWebhookDeliveries(T0 + 1)).toBe(1);
    expect((await statusOf(store, 'crm'))[0]).toMatchObject({ pending: 1, failed: 1 });
    expect(await store.pruneWebhookDeliveries(T0 + 2 * HOUR)).toBe(1);
    expect((await statusOf(store, 'crm'))[0]).toMatchObject({ pending: 1, failed: 0, deliveredTotal: 1 });
  });
});

async function claimAll(store: SqliteStore, endpoint: string, now: number) {
  return store.claimWebhookDeliveries(endpoint, 100, LEASE, now);
}

async function statusOf(store: SqliteStore, ...names: string[]) {
  const all = await store.webhookStatus();
  return names.map((n) => all.find((s) => s.endpoint === n));
}
