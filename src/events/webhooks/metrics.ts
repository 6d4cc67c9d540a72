// Webhook facts for a /metrics page: per endpoint the backlog (deliveries waiting for a
// 2xx) and its age, the deliveries given up, and running totals of 2xx answers, failed
// requests and give-ups (counters: never reset, so rates can be taken). Read from the
// store, so they hold across restarts and whichever process asks.
import type { WebhooksConfig } from '../../config/webhooks.ts';
import type { Store } from '../../store/store.ts';

export interface WebhookMetrics {
  readonly endpoint: string;
  /** In the config now; false: removed, its deliveries kept until pruned. */
  readonly configured: boolean;
  /** Deliveries waiting for a 2xx (gauge). */
  readonly backlog: number;
  /** Age of the oldest of them, in seconds; 0 with no backlog (gauge). */
  readonly oldestPendingSeconds: number;
  /** Deliveries given up and not replayed or pruned (gauge). */
  readonly failed: number;
  readonly deliveredTotal: number;
  readonly failedAttemptsTotal: number;
  readonly gaveUpTotal: number;
}

/** One entry per endpoint, configured or still in the store, by name. */
export async function webhookMetrics(store: Store, config: WebhooksConfig, now = Date.now()): Promise<WebhookMetrics[]> {
  const known = new Map((await store.webhookStatus()).map((s) => [s.endpoint, s]));
  const names = [...new Set([...config.endpoints.map((e) => e.name), ...known.keys()])].sort();
  const configured = new Set(config.endpoints.map((e) => e.name));
  return names.map((endpoint) => {
    const s = known.get(endpoint);
    return {
      endpoint,
      configured: configured.has(endpoint),
      backlog: s?.pending ?? 0,
      oldestPendingSeconds: s?.oldestPendingAt != null ? Math.max(0, Math.floor((now - s.oldestPendingAt) / 1000)) : 0,
      failed: s?.failed ?? 0,
      deliveredTotal: s?.deliveredTotal ?? 0,
      failedAttemptsTotal: s?.failedAttemptsTotal ?? 0,
      gaveUpTotal: s?.gaveUpTotal ?? 0,
    };
  });
}
