// portal-store: one case of the portal bench's store scenario, in a process of its
// own (bench/portal.ts starts it, compiled, as the relay runs from dist/): its
// figures as JSON on stdout. Messages are queued and claimed first; --warmup items
// go to the portal, then the peak RSS is reset and --items go, --parallel at once,
// each the way delivery sends a recipient to the portal (portal-items.ts). At the
// end the last item is opened again and compared with the message it was made from.
//
//   node --expose-gc build/bench/portal-store.js --dir DIR --parallel K --items N --warmup W --size BYTES
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { portalDesk } from '../src/portal/handoff.ts';
import type { Keyring } from '../src/portal/master-keys.ts';
import { openPortalItem } from '../src/portal/vault.ts';
import type { Store } from '../src/store/store.ts';
import { messageFactory } from './message.ts';
import { summarize, type LatencySummary } from './percentiles.ts';
import { claimAll, inParallel, openPortalBench, PORTAL_BENCH_DOMAIN, queueMessages, storeItem, writePortalBenchConfig, type StoredItem } from './portal-items.ts';

const MB = 1e6;
/** The attachment's part headers end here; what follows is the same in every message of a run. */
const BODY_MARKER = Buffer.from('filename="appointment.pdf"\r\n\r\n');

interface StoreCaseOptions {
  dir: string;
  parallel: number;
  items: number;
  warmup: number;
  size: number;
}

export interface StoreFigures {
  parallel: number;
  items: number;
  warmupItems: number;
  messageBytes: number;
  wallMs: number;
  itemsPerSec: number;
  /** Message MB (10^6 bytes) stored per second. */
  mbPerSec: number;
  /** User+system CPU of the whole process (main thread, store thread, libuv pool) over the measured items. */
  cpuMs: number;
  cpuMsPerItem: number;
  /** Share of one core the process used over the measured window. */
  cores: number;
  /** Per item, from reading the message to the commit resolving, ms. */
  itemMs: LatencySummary;
  readMs: LatencySummary;
  handMs: LatencySummary;
  commitMs: LatencySummary;
  /** VmHWM before the reset: start-up, queueing the messages, the warm-up. */
  setupPeakRssBytes: number;
  /** VmRSS right after the reset, before the measured items. */
  rssBeforeBytes: number;
  /** VmHWM over the measured items (reset just before them). */
  peakRssBytes: number;
  peakReset: boolean;
  rssAfterBytes: number;
  /** The store's files at the end (database and WAL). */
  storeBytes: number;
}

function procStatus(key: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no ${key} in /proc/self/status`);
  return Number(kb) * 1024;
}

async function storeCase(opts: StoreCaseOptions): Promise<StoreFigures> {
  const { parallel, dir } = opts;
  const gc = globalThis.gc;
  if (!gc) throw new Error('the store case needs node --expose-gc');
  const configFile = writePortalBenchConfig(dir);
  const { config, keyring, store, terms } = await openPortalBench(configFile);
  try {
    // Links point nowhere in this scenario: the notification only has to be written.
    const desk = portalDesk(config, keyring, 'https://portal.bench.test');
    const factory = messageFactory({ size: opts.size, domain: PORTAL_BENCH_DOMAIN });
    const total = opts.warmup + opts.items;
    await queueMessages(store, factory, total, `portal-store-p${parallel}`);
    const claimed = await claimAll(store, total);
    const warm = claimed.slice(0, opts.warmup);
    const measured = claimed.slice(opts.warmup);
    for (const item of warm) await storeItem(store, desk, item, terms);

    gc();
    const setupPeakRssBytes = procStatus('VmHWM');
    let peakReset = true;
    try {
      writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS (Linux ≥ 4.0)
    } catch {
      peakReset = false;
    }
    const rssBeforeBytes = procStatus('VmRSS');
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const stored: StoredItem[] = await inParallel(measured, parallel, (item) => storeItem(store, desk, item, terms));
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const peakRssBytes = procStatus('VmHWM');
    const rssAfterBytes = procStatus('VmRSS');

    await checkStored(store, keyring, stored.at(-1)!.itemId, factory.build('check', 0), total);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const messageBytes = factory.build('x'.repeat(32), 0).length;
    return {
      parallel,
      items: measured.length,
      warmupItems: warm.length,
      messageBytes,
      wallMs: round(wallMs),
      itemsPerSec: round(measured.length / (wallMs / 1000)),
      mbPerSec: round((measured.length * messageBytes) / MB / (wallMs / 1000)),
      cpuMs: round(cpuMs),
      cpuMsPerItem: round(cpuMs / measured.length),
      cores: round(cpuMs / wallMs),
      itemMs: summarize(stored.map((s) => s.readMs + s.handMs + s.commitMs)),
      readMs: summarize(stored.map((s) => s.readMs)),
      handMs: summarize(stored.map((s) => s.handMs)),
      commitMs: summarize(stored.map((s) => s.commitMs)),
      setupPeakRssBytes,
      rssBeforeBytes,
      peakRssBytes,
      peakReset,
      rssAfterBytes,
      storeBytes: ['', '-wal'].reduce((sum, suffix) => sum + fileSize(config.store.path + suffix), 0),
    };
  } finally {
    await store.close();
  }
}

/** The last item opens to the message it was made from, and every notification waits in the queue. */
async function checkStored(store: Store, keyring: Keyring, itemId: string, sample: Buffer, notifications: number): Promise<void> {
  const item = await store.getPortalItem(itemId);
  if (!item) throw new Error(`item ${itemId} was not stored`);
  const content = openPortalItem(keyring, item, null);
  const tail = sample.subarray(sample.indexOf(BODY_MARKER));
  if (content.length !== item.size || !content.subarray(content.length - tail.length).equals(tail)) throw new Error(`item ${itemId} does not open to the message it was made from`);
  const { messages } = await store.queueStats();
  if (messages !== notifications) throw new Error(`${messages} messages queued after the run, expected ${notifications} notifications`);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const round = (x: number): number => Math.round(x * 100) / 100;

const { values } = parseArgs({
  options: { dir: { type: 'string' }, parallel: { type: 'string' }, items: { type: 'string' }, warmup: { type: 'string' }, size: { type: 'string' } },
  strict: true,
});
const num = (name: string, value: string | undefined, min: number) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, not ${JSON.stringify(value)}`);
  return n;
};
if (!values.dir) throw new Error('--dir is required');
const figures = await storeCase({
  dir: values.dir,
  parallel: num('parallel', values.parallel, 1),
  items: num('items', values.items, 1),
  warmup: num('warmup', values.warmup, 0),
  size: num('size', values.size, 1024),
});
process.stdout.write(JSON.stringify(figures));
