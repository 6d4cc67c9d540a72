// Expiry of portal items: past its expiresAt an item's ciphertext and wrapped key
// are deleted; its metadata row stays, so the page can say "expired" and the
// evidence (who was sent what, when, and what happened) remains. The web side
// refuses an item past expiry even before the sweep reaches it (portalItemState).
//
// The relay sweeps every portal.expiry_sweep_seconds (startExpirySweep, from
// relay.ts) and once at start; `sealrelay portal expire` sweeps now. Needs no key:
// erasing is deleting.
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';

/** Items erased per transaction: a large backlog never holds the store's write lock for long. */
const EXPIRE_BATCH = 500;

/** Erases every item past its expiry at `now`, in batches; returns how many. */
export async function expireDue(store: Store, now = Date.now()): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await store.expirePortalItems(now, EXPIRE_BATCH);
    total += n;
    if (n < EXPIRE_BATCH) return total;
  }
}

export interface ExpirySweep {
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
}

/** Sweeps at once, then every `intervalMs`; a failed sweep is logged and tried again at the next. */
export function startExpirySweep(opts: { store: Store; logger: Logger; intervalMs: number }): ExpirySweep {
  const log = opts.logger.child({ component: 'portal-expiry' });
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();

  const sweep = async () => {
    try {
      const erased = await expireDue(opts.store);
      if (erased) log.info({ event: 'portal.expired', items: erased }, `erased ${erased} expired portal item(s)`);
    } catch (err) {
      log.error({ event: 'portal.expiry_failed', err: (err as Error).message }, 'portal expiry sweep failed; trying again at the next');
    }
  };
  const arm = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      running = sweep().finally(() => arm(opts.intervalMs));
    }, ms);
    // Never keeps a stopping process alive.
    timer.unref();
  };
  arm(0);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      return running;
    },
  };
}
