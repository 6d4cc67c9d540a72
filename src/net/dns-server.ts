// One entry of delivery.dns.servers: "ip", "ip:port", "[ipv6]:port" or a bare IPv6
// address, the forms node:dns setServers takes too. Names are refused: there is no
// resolver to resolve the resolver. Checked when the config loads (schema.ts) and
// used by the DNSSEC client (dnssec.ts).
import net from 'node:net';

export const DNS_PORT = 53;

export interface DnsServer {
  readonly host: string;
  readonly port: number;
  /** As the config wrote it, for messages. */
  readonly label: string;
}

/** The server `spec` names; throws an Error saying what is expected. */
export function parseDnsServer(spec: string): DnsServer {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  let host = spec;
  let port = DNS_PORT;
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2]) port = Number(bracketed[2]);
  } else if (net.isIPv4(spec.split(':')[0]!) && spec.includes(':')) {
    const [ip, p] = spec.split(':') as [string, string];
    host = ip;
    port = /^\d+$/.test(p) ? Number(p) : NaN;
  }
  if (!net.isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`DNS server "${spec}": expected an IP address with an optional port ("127.0.0.1:5353", "[::1]:53")`);
  }
  return { host, port, label: spec };
}
