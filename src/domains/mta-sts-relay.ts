// The relay's MTA-STS: the cache of mta-sts-cache.ts backed by the Store, so
// policies survive restarts for their max_age (RFC 8461 §5.1), fetched with the
// configured resolvers and trust store, every fetch logged.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';
import { createMtaStsCache, type MtaStsCache } from './mta-sts-cache.ts';
import type { MtaStsPolicy } from './mta-sts.ts';

/** MTA-STS policies fetched over HTTPS and kept in the store, or null when disabled. */
export function mtaStsCacheFor(config: Config, store: Store, logger: Logger): MtaStsCache | null {
  const c = config.mta_sts;
  if (!c.enabled) return null;
  return createMtaStsCache({
    fetch: {
      dnsServers: config.delivery.dns.servers,
      timeoutMs: c.timeout_ms,
      port: c.https_port,
      ...(c.ca_file ? { ca: readFileSync(c.ca_file) } : {}),
    },
    cache: {
      get: async (domain) => {
        const json = await store.getMtaStsPolicy(domain);
        return json ? (JSON.parse(json) as MtaStsPolicy) : null;
      },
      set: (domain, policy) => store.setMtaStsPolicy(domain, JSON.stringify(policy)),
    },
    recheckMs: c.recheck_seconds * 1000,
    failureBackoffMs: c.failure_backoff_seconds * 1000,
    onFetch: (domain, result, background) =>
      logger.info({ event: 'domains.mta_sts', domain, result: result.kind, reason: 'reason' in result ? result.reason : undefined, mode: 'mode' in result ? result.mode : undefined, background }, `MTA-STS ${domain}: ${result.kind}`),
  });
}

