// Resolved destinations, kept briefly so a burst of mail to one domain costs one
// MX lookup, not one per message. Failures are never cached: the next attempt asks again.
import { resolveDestination, type Destination } from './resolve-mx.ts';

/** How long a resolved MX set is reused, in ms (well under typical MX TTLs). */
const DESTINATION_TTL_MS = 30_000;

export class DestinationCache {
  private readonly entries = new Map<string, { at: number; value: Promise<Destination> }>();

  resolve(domain: string, opts: Parameters<typeof resolveDestination>[1]): Promise<Destination> {
    const now = Date.now();
    // A DNSSEC answer (with its validation facts, for DANE) and a plain one are different entries.
    const key = opts.dnssec ? `dnssec:${domain}` : domain;
    const hit = this.entries.get(key);
    if (hit && now - hit.at < DESTINATION_TTL_MS) return hit.value;
    const value = resolveDestination(domain, opts);
    this.entries.set(key, { at: now, value });
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  clear(): void {
    this.entries.clear();
  }
}
