// Client network lists (relay_networks, auth_plaintext_networks,
// require_tls_networks): "is this client address inside one of these ranges?"
//
// Policy: an address that does not parse is in no network, so a malformed peer
// address can only lose privileges, never gain them. IPv4-mapped IPv6 addresses
// ("::ffff:192.0.2.1", what a dual-stack listener reports for IPv4 clients) are
// matched as the IPv4 address they carry, so "127.0.0.1/32" covers them.
import { BlockList, isIP } from 'node:net';

const MAPPED_IPV4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

export class NetworkList {
  readonly #list = new BlockList();
  /** The ranges as configured, for logs and error messages. */
  readonly entries: readonly string[];

  constructor(cidrs: readonly string[]) {
    this.entries = [...cidrs];
    for (const entry of cidrs) {
      const [rawAddr = '', bits, ...rest] = entry.split('/');
      if (rest.length || (bits !== undefined && !/^\d{1,3}$/.test(bits))) throw new Error(`not an address or CIDR range: ${JSON.stringify(entry)}`);
      const mapped = MAPPED_IPV4.exec(rawAddr.trim());
      // "::ffff:10.0.0.0/104" is the IPv4 range 10.0.0.0/8 written as IPv6.
      const addr = mapped ? (mapped[1] as string) : normalizeAddress(rawAddr);
      const family = addr ? isIP(addr) : 0;
      if (!addr || !family) throw new Error(`not an address or CIDR range: ${JSON.stringify(entry)}`);
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits) - (mapped ? 96 : 0);
      if (prefix < 0 || prefix > max) throw new Error(`bad prefix length in ${JSON.stringify(entry)}`);
      this.#list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  contains(address: string | null | undefined): boolean {
    const addr = normalizeAddress(address ?? '');
    if (!addr) return false;
    const family = isIP(addr);
    if (family === 4) return this.#list.check(addr, 'ipv4');
    if (family === 6) return this.#list.check(addr, 'ipv6');
    return false;
  }
}

/**
 * Strips what is not part of the address itself: an IPv6 zone ("%eth0"), and the
 * IPv4-mapped prefix. Returns null when nothing address-like is left.
 */
export function normalizeAddress(address: string): string | null {
  let addr = address.trim();
  const zone = addr.indexOf('%');
  if (zone >= 0) addr = addr.slice(0, zone);
  const mapped = MAPPED_IPV4.exec(addr);
  if (mapped) addr = mapped[1] as string;
  return isIP(addr) ? addr.toLowerCase() : null;
}
