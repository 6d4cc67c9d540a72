// portal-items: what delivery does for a recipient the portal takes, as the portal
// bench repeats it. Messages are queued as ingress queues them (store.enqueue) and
// claimed as delivery claims them; then, per recipient: read the queued message,
// hand it to the portal desk (seal it under the master key, write the notification:
// portal/handoff.ts) and commit item, notification, record and settlement in one
// durable store.finish — the steps of delivery/scheduler.ts `execute` → deliver.ts
// `toPortal` → `commit`, without SMTP around them.
//
// Also the config both bench processes read (the portal's settings as an operator
// writes them, a master key in a chmod-600 file) and the opening of what the relay
// opens from it: the store on its own thread, the keyring.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { portalResult } from '../src/delivery/deliver.ts';
import { toRecord } from '../src/delivery/scheduler.ts';
import { makeDecision, type Decision, type PortalTerms } from '../src/policy/decision.ts';
import type { PortalDesk } from '../src/portal/handoff.ts';
import { formatMasterKey, generateMasterKey, loadKeyring, type Keyring } from '../src/portal/master-keys.ts';
import { openRelayStore } from '../src/store/open-store.ts';
import { newQueueId } from '../src/store/queue-id.ts';
import type { QueueItem, Store } from '../src/store/store.ts';
import type { MessageFactory } from './message.ts';

/** The recipients' domain; every recipient is patient<i>@ it. */
export const PORTAL_BENCH_DOMAIN = 'patients.bench.test';
const CONFIG_FILE = 'sealrelay.yaml';

/** Writes the config (and its master key file) into `dir`; returns the config file's path. */
export function writePortalBenchConfig(dir: string, tls?: { certFile: string; keyFile: string }): string {
  const keyFile = join(dir, 'portal-k1.key');
  writeFileSync(keyFile, formatMasterKey(generateMasterKey()), { mode: 0o600 });
  const config = {
    server: { hostname: 'relay.bench.local' },
    store: { driver: 'sqlite', path: join(dir, 'sealrelay.db') },
    // No SMTP listener: the bench measures the portal alone.
    ingress: { listeners: {}, ...(tls ? { cert_file: tls.certFile, key_file: tls.keyFile } : {}) },
    portal: {
      master_keys: [{ id: 'k1', file: keyFile }],
      current_key: 'k1',
      listen: '127.0.0.1:0',
      organisation: { name: 'Bench Clinic' },
    },
  };
  const file = join(dir, CONFIG_FILE);
  writeFileSync(file, stringify(config));
  return file;
}

export interface PortalBenchSetup {
  readonly config: Config;
  readonly keyring: Keyring;
  readonly store: Store;
  /** What a rule with no portal settings of its own gives the portal step (the portal.* defaults). */
  readonly terms: PortalTerms;
}

/** Reads the config as the relay does and opens its store (SQLite on a thread of its own, one owner) and keyring. */
export async function openPortalBench(configFile: string): Promise<PortalBenchSetup> {
  const config = parseConfig(readFileSync(configFile, 'utf8'), configFile);
  const keyring = loadKeyring(config.portal, {});
  if (!keyring) throw new Error('the bench config has no portal master key');
  const store = await openRelayStore(config.store, (message) => console.error(`store thread: ${message}`));
  const terms: PortalTerms = { expiryDays: config.portal.expiry_days, keyInLink: false, showSubject: false, passphrase: null };
  return { config, keyring, store, terms };
}

/** Queues `n` messages, message i to recipient i alone, as ingress commits them; returns their queue ids. */
export async function queueMessages(store: Store, factory: MessageFactory, n: number, label: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const queueId = newQueueId();
    await store.enqueue({
      queueId,
      sender: factory.sender,
      recipients: [recipientOf(i)],
      body: factory.build(`${label}-${i}`, i),
      messageId: `<${label}-${i}@app.bench.local>`,
      subject: `Your appointment (ref ${i})`,
      clientIp: '127.0.0.1',
      authUser: null,
      receivedAt: Date.now(),
    });
    ids.push(queueId);
  }
  return ids;
}

export const recipientOf = (i: number): string => `patient${i}@${PORTAL_BENCH_DOMAIN}`;

/** Claims everything due, as delivery's scheduler does (one lease for the run). */
export async function claimAll(store: Store, n: number): Promise<QueueItem[]> {
  const items = await store.claim({ owner: 'portal-bench', limit: n, leaseMs: 24 * 3_600_000 });
  if (items.length !== n) throw new Error(`claimed ${items.length} recipients, expected ${n}`);
  return items;
}

/** One recipient's trip into the portal, timed step by step (ms). */
export interface StoredItem {
  readonly itemId: string;
  readonly readMs: number;
  readonly handMs: number;
  readonly commitMs: number;
}

/**
 * Delivery's steps for one claimed recipient whose decision is the portal: read the
 * message, hand it to the desk, commit the item and its notification with the
 * recipient's record and settlement (durable: fsynced before it resolves).
 */
export async function storeItem(store: Store, desk: PortalDesk, item: QueueItem, terms: PortalTerms): Promise<StoredItem> {
  const t0 = performance.now();
  const body = await store.readBody(item.queueId);
  if (!body) throw new Error(`message ${item.queueId} is gone`);
  const t1 = performance.now();
  const handoff = await desk.hand(item, body, terms);
  const t2 = performance.now();
  const started = Date.now();
  const record = toRecord(benchDecision(terms), portalResult(item, handoff), started, Date.now());
  // As scheduler.ts settles any outcome but delivered: the record's response is the settlement's text.
  await store.finish([record], [{ queueId: item.queueId, seq: item.seq, outcome: 'portal-notified', error: record.smtp.response }], [handoff.notification], [handoff.item]);
  const t3 = performance.now();
  return { itemId: handoff.facts.itemId, readMs: t1 - t0, handMs: t2 - t1, commitMs: t3 - t2 };
}

/** Runs `work` over `items`, at most `parallel` at once, in order of start. */
export async function inParallel<T, R>(items: readonly T[], parallel: number, work: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, lane));
  return out;
}

/** The decision a recipient sent to the portal carries (a rule's `mode: portal`). */
function benchDecision(terms: PortalTerms): Decision {
  return makeDecision({
    mode: 'portal',
    verification: 'none',
    floor: { minVersion: 'TLSv1.2', minCipherBits: 128 },
    fallbackChain: [],
    portal: terms,
    tlsExpected: false,
    rule: 'default',
    reasons: ['portal bench'],
  });
}
