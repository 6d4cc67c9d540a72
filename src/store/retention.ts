// Retention: what the store keeps of finished messages, and for how long.
//
// A message's body (and its queue rows) is deleted in the transaction that settles its
// last recipient (SqliteStore.finish) or by an operator's delete: nothing here keeps
// it. What outlives the message is the evidence of how it travelled — delivery records,
// events, the metadata of erased portal items — and that is pruned here once older
// than retention.records_days / events_days (null: kept). The store never prunes a
// message still queued, nor one whose portal item may still be opened (retention-table.ts).
//
// Kept on purpose, whatever their age: the audit trail (append-only and hash-chained:
// cutting its start would break `sealrelay audit verify`, and it holds no content),
// report counts (aggregates; reports read them, never the events), suppressions
// (an opt-out must be honoured for as long as mail is sent). Webhook deliveries and
// API idempotency keys have their own ages (webhooks.keep_days, api.idempotency_hours).
//
// Pruning runs in batches of PRUNE_BATCH rows, one short transaction each, so the
// queue keeps flowing through a large first prune; each kind to the end, then the next.
import type { Config } from '../config/schema.ts';
import type { AuditInput } from '../events/audit/entry.ts';
import type { Logger } from '../log.ts';
import { PRUNE_KINDS, type PruneKind, type Store } from './store.ts';

/** Rows deleted per transaction: 2–25 ms of write lock a batch of records or events, measured on a busy 2-core machine. */
export const PRUNE_BATCH = 500;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Per kind, the time before which its rows are pruned (ms since the epoch); null: kept. */
export type Cutoffs = Readonly<Record<PruneKind, number | null>>;
/** Per kind, how many rows a run deleted (or, dry, would delete). */
export type PruneCounts = Record<PruneKind, number>;

/** Which setting governs each kind: what a cutoff is read from, and what the CLI names. */
export const RETENTION_SETTING: Readonly<Record<PruneKind, 'records_days' | 'events_days'>> = {
  records: 'records_days',
  events: 'events_days',
  // An erased item's metadata is part of its message's evidence, beside its records.
  'portal-items': 'records_days',
};

export function retentionCutoffs(retention: Config['retention'], now = Date.now()): Cutoffs {
  const cutoff = (kind: PruneKind) => {
    const days = retention[RETENTION_SETTING[kind]];
    return days === null ? null : now - days * DAY_MS;
  };
  return { records: cutoff('records'), events: cutoff('events'), 'portal-items': cutoff('portal-items') };
}

/**
 * Deletes every prunable row of each kind, batch by batch; returns how many of each.
 * `signal`: a relay that stops ends the run after the batch in hand (the rest waits for the next run).
 */
export async function pruneAll(store: Pick<Store, 'pruneOld'>, cutoffs: Cutoffs, opts: { batch?: number; signal?: AbortSignal } = {}): Promise<PruneCounts> {
  const batch = opts.batch ?? PRUNE_BATCH;
  const counts = zeroCounts();
  for (const kind of PRUNE_KINDS) {
    const before = cutoffs[kind];
    if (before === null) continue;
    while (!opts.signal?.aborted) {
      let n: number;
      try {
        n = await store.pruneOld(kind, before, batch);
      } catch (err) {
        // What the earlier batches deleted is gone all the same: the caller logs and audits it.
        throw new PruneError(err as Error, counts);
      }
      counts[kind] += n;
      if (n < batch) break;
      // Whatever else waits for the store (an enqueue, a finish) goes before the next batch.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return counts;
}

/** A batch failed; `pruned`: what the batches before it had deleted. */
export class PruneError extends Error {
  constructor(
    cause: Error,
    readonly pruned: PruneCounts,
  ) {
    super(cause.message, { cause });
    this.name = 'PruneError';
  }
}

/** What `pruneAll` would delete now; changes nothing. */
export async function countPrunable(store: Pick<Store, 'countPrunable'>, cutoffs: Cutoffs): Promise<PruneCounts> {
  const counts = zeroCounts();
  for (const kind of PRUNE_KINDS) {
    const before = cutoffs[kind];
    if (before !== null) counts[kind] = await store.countPrunable(kind, before);
  }
  return counts;
}

/** "records 12, events 40, portal-items 0": counts only, never what was in them. */
export function describeCounts(counts: PruneCounts): string {
  return PRUNE_KINDS.map((k) => `${k} ${counts[k]}`).join(', ');
}

/** The audit entry of a prune that deleted something (who: an OS user, or the relay itself). */
export function pruneAudit(actor: AuditInput['actor'], counts: PruneCounts, cutoffs: Cutoffs): AuditInput {
  const ages = PRUNE_KINDS.filter((k) => cutoffs[k] !== null).map((k) => `${k} before ${new Date(cutoffs[k]!).toISOString()}`);
  return { actor, action: 'store.prune', target: ages.join('; ') || null, detail: describeCounts(counts) };
}

export const totalOf = (counts: PruneCounts): number => PRUNE_KINDS.reduce((n, k) => n + counts[k], 0);
const zeroCounts = (): PruneCounts => ({ records: 0, events: 0, 'portal-items': 0 });

export interface RetentionSweep {
  /** Runs finished so far (for `status`-like checks and tests). */
  readonly runs: number;
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Prunes at once, then every retention.interval_seconds; logs and audits what a run
 * deleted (counts only). A failed run is logged and tried again at the next.
 */
export function startRetentionSweep(opts: { store: Store; logger: Logger; retention: Config['retention']; now?: () => number }): RetentionSweep {
  const log = opts.logger.child({ component: 'retention' });
  const now = opts.now ?? Date.now;
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  let runs = 0;

  const run = async () => {
    const cutoffs = retentionCutoffs(opts.retention, now());
    let counts: PruneCounts;
    try {
      counts = await pruneAll(opts.store, cutoffs, { signal: stopping.signal });
    } catch (err) {
      log.error({ event: 'store.prune_failed', err: (err as Error).message }, 'retention run failed; trying again at the next');
      if (!(err instanceof PruneError)) return;
      counts = err.pruned;
    }
    if (!totalOf(counts)) return;
    log.info({ event: 'store.pruned', ...counts }, `retention pruned ${describeCounts(counts)}`);
    await opts.store
      .appendAudit(pruneAudit({ kind: 'relay', name: 'retention' }, counts, cutoffs))
      .catch((err: Error) => log.error({ event: 'audit.failed', action: 'store.prune', err: err.message }, 'retention run not recorded in the audit trail'));
  };
  const arm = (ms: number) => {
    if (stopping.signal.aborted) return;
    timer = setTimeout(() => {
      timer = null;
      running = run().finally(() => {
        runs += 1;
        arm(opts.retention.interval_seconds * 1000);
      });
    }, ms);
    // Never keeps a stopping process alive.
    timer.unref();
  };
  arm(0);
  return {
    get runs() {
      return runs;
    },
    stop() {
      stopping.abort();
      if (timer) clearTimeout(timer);
      timer = null;
      return running;
    },
  };
}
