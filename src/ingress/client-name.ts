// The client's name for our Received header, found as Postfix finds it
// (smtpd_peername_lookup): the PTR name of the client's address, kept only when
// that name resolves back to the same address (forward-confirmed: a PTR record says
// whatever the owner of the address range wrote) and when it is a plain host name
// (it is written into a header). Both queries go to DNS through the configured
// resolvers (c-ares' reverse() would read /etc/hosts first, the forward query does
// not). Bounded by one deadline for both; never throws.
import { BlockList, isIP } from 'node:net';
import { makeResolver } from '../net/dns.ts';

export interface ClientNameLookup {
  /** The confirmed name in lower case, or null: none, not confirmed, failed, timed out or cancelled. */
  readonly name: Promise<string | null>;
  /** Ends the lookup now (the client has gone); `name` then resolves null. */
  cancel(): void;
}

/** LDH labels (RFC 1123 §2.1), at most 63 octets each, 253 in all. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_NAME_CHARS = 253;

export function lookUpClientName(ip: string, opts: { readonly dnsServers: readonly string[]; readonly timeoutMs: number }): ClientNameLookup {
  const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  const resolver = makeResolver(opts);
  let over = false;
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    over = true;
    clearTimeout(timer);
    // Pending queries reject with ECANCELLED.
    resolver.cancel();
  };
  const confirmed = async (): Promise<string | null> => {
    // Postfix, too, reads one name: the first.
    const [first] = await resolver.resolvePtr(reverseName(ip));
    const name = first === undefined ? null : hostName(first);
    if (name === null || over) return null;
    const addresses = family === 'ipv6' ? await resolver.resolve6(name) : await resolver.resolve4(name);
    // BlockList compares addresses, not spellings ("2001:db8::1" = "2001:DB8:0::1").
    const self = new BlockList();
    self.addAddress(ip, family);
    return addresses.some((a) => self.check(a, family)) ? name : null;
  };
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      stop();
      resolve(null);
    }, opts.timeoutMs);
    timer.unref();
  });
  const name = Promise.race([confirmed().catch(() => null), deadline]).then((found) => {
    stop();
    return found;
  });
  return { name, cancel: stop };
}

/** The PTR query name of an address: "1.0.0.127.in-addr.arpa", or 32 nibbles under ip6.arpa (RFC 3596 §2.5). */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const nibbles = ipv6Groups(ip).flatMap((group) => [...group.toString(16).padStart(4, '0')]);
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

/** The eight 16-bit groups of an IPv6 address ("::" expanded, a trailing dotted IPv4 part converted). */
function ipv6Groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string | undefined) => (part ? part.split(':').map((h) => parseInt(h, 16)) : []);
  const [head, tail] = text.split('::');
  if (tail === undefined) return parse(head);
  const before = parse(head);
  const after = parse(tail);
  return [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
}

/** `raw` in lower case without the root dot when it is a host name; null otherwise (an IP-like name included). */
export function hostName(raw: string): string | null {
  const name = raw.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > MAX_NAME_CHARS) return null;
  const labels = name.split('.');
  // An all-numeric last label would read as an address in the header (Postfix refuses these too).
  if (!labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels[labels.length - 1] ?? '')) return null;
  return name;
}
