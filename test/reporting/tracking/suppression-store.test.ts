// Suppressions and tracking events in a real SQLite store: add, list, remove with
// both halves normalised, bad input refused without a change; a one-click
// unsubscribe names its recipient by queue id and seq only and writes one
// `unsubscribed` event in the transaction of the suppression; opens and clicks are
// events with their `automated` mark; and the threaded store hands the same answers
// across its thread. (A version 12 store gaining the table: test/store/migrations.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../../src/store/sqlite/threaded-store.ts';
import { claimAll, HOUR, message, record } from '../../cli/harness.ts';

let dir: string;
let path: string;
let store: SqliteStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-suppress-'));
  path = join(dir, 'store.db');
  store = new SqliteStore(path);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const eventsOf = async (type: 'unsubscribed' | 'opened' | 'clicked') => store.listEvents({ limit: 100, types: [type] });

describe('suppressions', () => {
  it('are keyed by normalised sender domain and address, listed newest first, and removed', async () => {
    expect(await store.addSuppression({ senderDomain: 'Clinic.Example.', recipient: ' Ann@Patient.Example ', source: 'manual', createdAt: 1000 })).toBe(true);
    expect(await store.addSuppression({ senderDomain: 'clinic.example', recipient: 'ann@patient.example', source: 'manual', createdAt: 2000 })).toBe(false);
    expect(await store.addSuppression({ senderDomain: 'bücher.example', recipient: 'bob@patient.example', source: 'manual', createdAt: 3000 })).toBe(true);
    const all = await store.listSuppressions();
    expect(all.map((s) => [s.senderDomain, s.recipient, s.createdAt])).toEqual([
      ['xn--bcher-kva.example', 'bob@patient.example', 3000],
      ['clinic.example', 'ann@patient.example', 1000],
    ]);
    expect(await store.listSuppressions({ recipient: 'ANN@patient.example' })).toHaveLength(1);
    expect(await store.listSuppressions({ senderDomain: 'other.example' })).toEqual([]);
    expect(await store.listSuppressions({ senderDomain: 'not a domain' })).toEqual([]);

    expect(await store.suppressedAmong('CLINIC.example', ['ANN@patient.example', 'bob@patient.example', 'nonsense'])).toEqual(['ANN@patient.example']);
    expect(await store.removeSuppression('clinic.example', 'Ann@patient.example')).toBe(true);
    expect(await store.removeSuppression('clinic.example', 'ann@patient.example')).toBe(false);
    expect(await store.suppressedAmong('clinic.example', ['ann@patient.example'])).toEqual([]);
  });

  it('refuse what is no domain or address, changing nothing', async () => {
    for (const [senderDomain, recipient] of [
      ['', 'ann@patient.example'],
      ['clinic example', 'ann@patient.example'],
      ['ann@clinic.example', 'ann@patient.example'],
      ['clinic.example', 'ann'],
      ['clinic.example', '@patient.example'],
      ['clinic.example', `${'a'.repeat(400)}@patient.example`],
      ['a'.repeat(300), 'ann@patient.example'],
    ]) {
      await expect(store.addSuppression({ senderDomain: senderDomain!, recipient: recipient!, source: 'manual' })).rejects.toThrow(TypeError);
      await expect(store.removeSuppression(senderDomain!, recipient!)).rejects.toThrow(TypeError);
    }
    expect(await store.listSuppressions()).toEqual([]);
  });
});

describe('one-click unsubscribe and tracking events', () => {
  const now = Date.now();
  beforeEach(async () => {
    await store.enqueue(message('QA', ['ann@patient.example', 'bob@patient.example'], now - HOUR, { campaign: 'spring' }));
    await store.enqueue(message('QB', ['cid@patient.example'], now - HOUR, { sender: '' }));
    await claimAll(store);
    await store.finish([record({ queueId: 'QA', seq: 1, recipient: 'bob@patient.example', attempt: 1, at: now - 30_000, outcome: 'delivered' })], [{ queueId: 'QA', seq: 1, outcome: 'delivered', error: null }]);
  });

  it('suppresses the recipient the link names for its sender domain, with one unsubscribed event', async () => {
    const done = await store.unsubscribe('QA', 1, now);
    expect(done).toMatchObject({ created: true, suppression: { senderDomain: 'clinic.example', recipient: 'bob@patient.example', source: 'unsubscribe', queueId: 'QA', seq: 1, createdAt: now } });
    const [event, ...more] = await eventsOf('unsubscribed');
    expect(more).toEqual([]);
    expect(event).toMatchObject({ queueId: 'QA', seq: 1, recipient: 'bob@patient.example', sender: 'app@clinic.example', campaign: 'spring', automated: false });
    // Again: nothing changes, no second event.
    expect(await store.unsubscribe('QA', 1, now + 1)).toMatchObject({ created: false, suppression: { createdAt: now } });
    expect(await eventsOf('unsubscribed')).toHaveLength(1);
    expect(await store.suppressedAmong('clinic.example', ['ann@patient.example', 'bob@patient.example'])).toEqual(['bob@patient.example']);
  });

  it('knows no recipient for an unknown queue id or seq, nor for a message without a sender domain', async () => {
    expect(await store.unsubscribe('QZ', 0, now)).toBeNull();
    expect(await store.unsubscribe('QA', 7, now)).toBeNull();
    expect(await store.unsubscribe('QB', 0, now)).toBeNull();
    expect(await store.listSuppressions()).toEqual([]);
    expect(await eventsOf('unsubscribed')).toEqual([]);
  });

  it('records opens and clicks of known recipients, with the automated mark and the delivery time', async () => {
    expect(await store.trackedRecipient('QA', 1)).toMatchObject({ recipient: 'bob@patient.example', sender: 'app@clinic.example', domain: 'patient.example' });
    expect((await store.trackedRecipient('QA', 1))!.deliveredAt).toBeGreaterThanOrEqual(now - 30_000);
    expect((await store.trackedRecipient('QA', 0))!.deliveredAt).toBeNull();
    expect(await store.recordTracking('QA', 1, 'opened', { at: now, automated: true })).toBe(true);
    expect(await store.recordTracking('QA', 1, 'clicked', { at: now, automated: false })).toBe(true);
    expect(await store.recordTracking('QZ', 0, 'clicked', { at: now, automated: false })).toBe(false);
    expect((await eventsOf('opened')).map((e) => [e.queueId, e.seq, e.automated, e.campaign])).toEqual([['QA', 1, true, 'spring']]);
    expect((await eventsOf('clicked')).map((e) => [e.queueId, e.seq, e.automated])).toEqual([['QA', 1, false]]);
  });

  it('gives the same answers through the store thread', async () => {
    await store.close();
    const threaded = await ThreadedSqliteStore.open(path);
    try {
      expect(await threaded.addSuppression({ senderDomain: 'clinic.example', recipient: 'ann@patient.example', source: 'manual' })).toBe(true);
      expect(await threaded.unsubscribe('QA', 1)).toMatchObject({ created: true });
      expect((await threaded.listSuppressions()).map((s) => s.recipient).sort()).toEqual(['ann@patient.example', 'bob@patient.example']);
      expect(await threaded.trackedRecipient('QA', 1)).toMatchObject({ recipient: 'bob@patient.example' });
      expect(await threaded.recordTracking('QA', 1, 'opened', { automated: false })).toBe(true);
      expect(await threaded.removeSuppression('clinic.example', 'ann@patient.example')).toBe(true);
    } finally {
      await threaded.close();
      store = new SqliteStore(path);
    }
  });
});

