// What the relay believes a domain's MTA-STS policy is right now (RFC 8461 §5.1).
//
// Policy:
// - A fetched policy is kept for max_age from its fetch (`expiresAt`) in a pluggable
//   cache (in memory here; the Store backs it in the relay, so it survives restarts).
// - While it is fresh, the TXT id is checked at most every `recheckMs`; a new id
//   fetches the new policy at once (the caller waits for it). A missing or broken TXT record does not remove a
//   fresh cached policy (§3.1 note, §5.1): only a fetched policy replaces it (mode
//   none withdraws it, §8.3).
// - When less than REFRESH_AHEAD_FRACTION of max_age remains, the policy is refetched
//   in the background (at most once per `recheckMs`), so a domain in steady use never
//   falls back to "absent" (§10.2); the refetch also picks up a changed id.
// - When a fetch fails, a fresh cached policy is still applied (§5.1); without one the
//   domain is treated as having no policy (`absent`, with the error), and the fetch
//   is not retried for `failureBackoffMs` so a broken policy host does not add its
//   timeout to every delivery.
// - A domain without a TXT record (or with an invalid one) is asked again after
//   `recheckMs`, not on every delivery.
// - One fetch per domain at a time: concurrent callers share it.
import {
  fetchMtaStsPolicyFile,
  lookupMtaStsRecord,
  type MtaStsError,
  type MtaStsFetchOptions,
  type MtaStsNone,
  type MtaStsPolicy,
  type MtaStsRecord,
} from './mta-sts.ts';

export interface MtaStsState {
  /** `absent`: no policy applies (no or invalid TXT record, or fetch failed with nothing cached). */
  readonly mode: 'enforce' | 'testing' | 'none' | 'absent';
  readonly mx: readonly string[];
  readonly id?: string;
  /** ms since the epoch: fetchedAt + max_age. */
  readonly expiresAt?: number;
  /** `cache`: a stored policy was used; `fetch`: fetched by this call; `none`: no policy. */
  readonly source: 'cache' | 'fetch' | 'none';
  /** Why discovery failed or found nothing usable, when it did (for records and check-domain). */
  readonly error?: string;
}

/** Where policies are kept between calls; the relay backs it with the Store. */
export interface MtaStsPolicyCache {
  get(domain: string): Promise<MtaStsPolicy | null>;
  set(domain: string, policy: MtaStsPolicy): Promise<void>;
}

export interface MtaStsCacheOptions {
  readonly fetch: MtaStsFetchOptions;
  /** Defaults to a fresh in-memory cache. */
  readonly cache?: MtaStsPolicyCache;
  /** Least time between TXT id checks for a domain with a fresh policy, in ms. */
  readonly recheckMs?: number;
  /** After a failed fetch with nothing usable cached, wait this long before fetching again, in ms. */
  readonly failureBackoffMs?: number;
  /** Clock in ms since the epoch; tests move it. */
  readonly now?: () => number;
  /** Told about every fetch made (foreground or background), e.g. to log it. */
  readonly onFetch?: (domain: string, result: MtaStsPolicy | MtaStsError | MtaStsNone, background: boolean) => void;
}

export interface MtaStsCache {
  policyFor(domain: string): Promise<MtaStsState>;
  /** Resolves when no background refresh is running (tests, shutdown). */
  idle(): Promise<void>;
}

/** Refetch ahead of expiry when less than this fraction of max_age remains. */
export const REFRESH_AHEAD_FRACTION = 0.1;
/** Default least interval between TXT id checks of a cached domain: DNS once a minute at most. */
export const RECHECK_MS = 60_000;
/** Default wait after a failed fetch with nothing cached (mailauth uses one hour; we retry sooner). */
export const FAILURE_BACKOFF_MS = 5 * 60_000;

export function createMemoryPolicyCache(): MtaStsPolicyCache & { readonly entries: Map<string, MtaStsPolicy> } {
  const entries = new Map<string, MtaStsPolicy>();
  return {
    entries,
    get: async (domain) => entries.get(domain) ?? null,
    set: async (domain, policy) => {
      entries.set(domain, policy);
    },
  };
}

const expiresAt = (policy: MtaStsPolicy) => policy.fetchedAt + policy.maxAge * 1000;

function fromPolicy(policy: MtaStsPolicy, source: 'cache' | 'fetch', error?: string): MtaStsState {
  return { mode: policy.mode, mx: policy.mx, id: policy.id, expiresAt: expiresAt(policy), source, ...(error ? { error } : {}) };
}

const absent = (error?: string): MtaStsState => ({ mode: 'absent', mx: [], source: 'none', ...(error ? { error } : {}) });

type Discovery = MtaStsPolicy | MtaStsError | MtaStsNone;

export function createMtaStsCache(opts: MtaStsCacheOptions): MtaStsCache {
  const cache = opts.cache ?? createMemoryPolicyCache();
  const now = opts.now ?? Date.now;
  const recheckMs = opts.recheckMs ?? RECHECK_MS;
  const failureBackoffMs = opts.failureBackoffMs ?? FAILURE_BACKOFF_MS;
  const fetchOpts: MtaStsFetchOptions = { ...opts.fetch, now };

  /** Last TXT check per domain (ms), for domains with a fresh policy. */
  const checkedAt = new Map<string, number>();
  /** Domains without a usable policy: until when not to look again, and why (failures only). */
  const absentUntil = new Map<string, { until: number; error: string | undefined }>();
  /** Discoveries under way, shared by concurrent callers. */
  const inFlight = new Map<string, Promise<Discovery>>();
  const background = new Set<Promise<unknown>>();

  /** Fetches the policy (TXT first unless the id is known), stores a good one. */
  function discover(domain: string, isBackground: boolean, known?: MtaStsRecord): Promise<Discovery> {
    const running = inFlight.get(domain);
    if (running) return running;
    const work = (async (): Promise<Discovery> => {
      const record = known ?? (await lookupMtaStsRecord(domain, fetchOpts));
      checkedAt.set(domain, now());
      const result = record.kind === 'record' ? await fetchMtaStsPolicyFile(domain, record.id, fetchOpts) : record;
      if (result.kind === 'policy') {
        await cache.set(domain, result);
        absentUntil.delete(domain);
      }
      opts.onFetch?.(domain, result, isBackground);
      return result;
    })().finally(() => inFlight.delete(domain));
    inFlight.set(domain, work);
    return work;
  }

  function refreshInBackground(domain: string): void {
    if (inFlight.has(domain)) return;
    // Failures are reported through onFetch; the cached policy stays in force meanwhile.
    const task = discover(domain, true).catch(() => undefined);
    background.add(task);
    void task.finally(() => background.delete(task));
  }

  async function policyFor(rawDomain: string): Promise<MtaStsState> {
    const domain = rawDomain.trim().toLowerCase().replace(/\.$/, '');
    const t = now();
    const cached = await cache.get(domain);
    const fresh = cached && t < expiresAt(cached) ? cached : null;

    if (fresh) {
      // Both checks below go to the network: at most once per recheckMs per domain.
      if (t - (checkedAt.get(domain) ?? -Infinity) < recheckMs) return fromPolicy(fresh, 'cache');
      checkedAt.set(domain, t);
      if (expiresAt(fresh) - t < fresh.maxAge * 1000 * REFRESH_AHEAD_FRACTION) {
        // Near expiry: refetch (TXT and policy) in the background; this delivery uses the cache.
        refreshInBackground(domain);
        return fromPolicy(fresh, 'cache');
      }
      const record = await lookupMtaStsRecord(domain, fetchOpts);
      if (record.kind === 'record' && record.id !== fresh.id) {
        // §5.1: a new id means a new policy; until it is fetched the old one holds.
        const result = await discover(domain, false, record);
        if (result.kind === 'policy') return fromPolicy(result, 'fetch');
        return fromPolicy(fresh, 'cache', result.kind === 'error' ? result.reason : undefined);
      }
      // No record or a broken one leaves a fresh policy in force (§3.1 note).
      return fromPolicy(fresh, 'cache');
    }

    const known = absentUntil.get(domain);
    if (known && t < known.until) return absent(known.error);

    const result = await discover(domain, false);
    if (result.kind === 'policy') return fromPolicy(result, 'fetch');
    // Most domains publish no policy: ask DNS again after recheckMs, not on every delivery.
    // §5.1: no usable policy and nothing fresh cached: deliver as if there were no policy.
    const error = result.kind === 'error' || result.invalid ? result.reason : undefined;
    absentUntil.set(domain, { until: now() + (result.kind === 'error' ? failureBackoffMs : recheckMs), error });
    return absent(error);
  }

  return {
    policyFor,
    async idle() {
      while (background.size) await Promise.all([...background]);
    },
  };
}
