// DNS queries through the configured resolvers (delivery.dns.servers; tests point
// them at a local stub), one setup for MX lookups, MTA-STS TXT records and the
// HTTPS hosts of MTA-STS and WKD, so they time out, retry and read errors alike.
import dns from 'node:dns';

/** Queries per lookup before c-ares gives up (first try included). */
const DNS_TRIES = 2;

/** c-ares codes that mean "no such name" / "no such record": an answer, not a failure. */
export const ABSENT_CODES: ReadonlySet<string> = new Set([dns.NOTFOUND, dns.NODATA]);

/** A resolver asking `dnsServers` (the system's when empty), each query bounded by `timeoutMs`. */
export function makeResolver(opts: { readonly dnsServers: readonly string[]; readonly timeoutMs: number }): dns.promises.Resolver {
  const resolver = new dns.promises.Resolver({ timeout: opts.timeoutMs, tries: DNS_TRIES });
  if (opts.dnsServers.length) resolver.setServers([...opts.dnsServers]);
  return resolver;
}

/** The c-ares or socket error code of a failed lookup. */
export const errorCode = (err: unknown): string => String((err as NodeJS.ErrnoException).code ?? 'EUNKNOWN');
