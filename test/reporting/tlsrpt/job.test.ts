// The daily job on its own timer against a real store: yesterday's reports are made
// only once 00:00 UTC plus this relay's share of the jitter has passed, once; domains
// reached through a static route get none; a disabled job does not start.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import { createLogger } from '../../../src/log.ts';
import { makeDayReports, startTlsRptJob, type TlsRptDeps } from '../../../src/reporting/tlsrpt/job.ts';
import type { TlsRptDiscovery } from '../../../src/reporting/tlsrpt/discovery.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { DAY, HOUR, seedTlsDay, T0 } from './seed.ts';

const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

async function seeded(): Promise<SqliteStore> {
  const store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'sealrelay-tlsrpt-job-')), 'store.db'));
  stores.push(store);
  await seedTlsDay(store);
  return store;
}

const configWith = (over: Record<string, unknown>): Config => configSchema.parse({ ingress: { listeners: {} }, ...over });
// Every domain publishes a record: what is made depends on the job alone.
const everywhere = async (): Promise<TlsRptDiscovery> => ({ kind: 'record', rua: ['https://reports.test/r'], ignored: [] });

async function until(condition: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition never held');
    await new Promise((r) => setTimeout(r, 10));
  }
}

it('makes the reports of the day before only after 00:00 UTC plus its share of the jitter', async () => {
  const store = await seeded();
  let clock = T0 + 24 * HOUR + 10 * 60_000; // the next day, 00:10 UTC
  const job = startTlsRptJob({
    store,
    config: configWith({ tlsrpt: { enabled: true, jitter_minutes: 60 } }),
    logger: createLogger('silent'),
    queueMail: async () => undefined,
    discover: everywhere,
    now: () => clock,
    random: () => 0.5, // this relay starts at 00:30
    tickMs: 5,
  })!;
  try {
    await until(() => job.ticks >= 3);
    expect(await store.tlsReportDayDone(DAY)).toBe(false);
    clock = T0 + 24 * HOUR + 31 * 60_000;
    await until(() => store.tlsReportDayDone(DAY));
    expect((await store.listTlsReports()).map((r) => r.domain)).toEqual(['dane.test', 'dnssec.test', 'plain.test', 'sts.test']);
  } finally {
    await job.stop();
  }
});

it('leaves out domains reached through a static route', async () => {
  const store = await seeded();
  const deps: TlsRptDeps = {
    store,
    config: configWith({ delivery: { routes: { 'plain.test': '127.0.0.1:2525' } } }),
    logger: createLogger('silent'),
    queueMail: async () => undefined,
    discover: everywhere,
    now: () => T0 + 25 * HOUR,
  };
  expect(await makeDayReports(deps, DAY)).toEqual({ day: DAY, domains: 3, reports: 3 });
  expect((await store.listTlsReports()).map((r) => r.domain)).toEqual(['dane.test', 'dnssec.test', 'sts.test']);
});

it('a disabled job does not start', () => {
  expect(startTlsRptJob({ store: {} as SqliteStore, config: configWith({}), logger: createLogger('silent'), queueMail: async () => undefined })).toBeNull();
});
