// Sends one report to an `https:` rua destination (RFC 8460 §5.4): a POST of the
// gzipped report as application/tlsrpt+gzip; any 2xx means the report was taken.
//
// Policy:
// - the host's address comes from the configured DNS servers (as every lookup of the
//   relay does); SNI and the certificate name are the URL's host, the chain must lead
//   to tlsrpt.ca_file or the system store;
// - redirects are not followed (a 3xx is a failure: the record names the destination);
// - one deadline covers connect, handshake, upload and answer; at most
//   MAX_RESPONSE_BYTES of the answer are read (for the error message), the rest dropped;
// - no agent: nothing outlives the request;
// - the URL comes from a recipient domain's DNS: an address on loopback, a private or
//   link-local network is refused unless tlsrpt.allow_private_destinations says
//   otherwise, so a TXT record cannot aim the relay at services inside its network.
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { resolveHostAddress } from '../../net/https-get.ts';

/** Networks a destination from DNS may not be on (RFC 1918, RFC 6598, loopback, link-local, ULA). */
const PRIVATE = new net.BlockList();
for (const [prefix, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16]] as const) PRIVATE.addSubnet(prefix, bits, 'ipv4');
for (const [prefix, bits] of [['::', 127], ['fc00::', 7], ['fe80::', 10]] as const) PRIVATE.addSubnet(prefix, bits, 'ipv6');

/** Whether an address is on a network reports are not sent to (IPv4-mapped IPv6 judged as IPv4). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  return PRIVATE.check(ip, net.isIPv4(ip) ? 'ipv4' : 'ipv6');
}

/** Of an answer, at most this much is read. */
const MAX_RESPONSE_BYTES = 16 * 1024;

export type PostResult = { readonly ok: true; readonly status: number } | { readonly ok: false; readonly error: string };

export async function postReport(
  url: string,
  gzipped: Buffer,
  opts: { readonly dnsServers: readonly string[]; readonly timeoutMs: number; readonly ca?: string | Buffer; readonly allowPrivate?: boolean },
): Promise<PostResult> {
  const target = new URL(url);
  if (target.protocol !== 'https:') return { ok: false, error: `not an https: URL: ${url}` };
  const host = target.hostname.replace(/^\[|\]$/g, '');
  let address: string | null;
  try {
    address = net.isIP(host) ? host : await resolveHostAddress(host, opts);
  } catch (err) {
    return { ok: false, error: `cannot resolve ${host}: ${(err as Error).message}` };
  }
  if (!address) return { ok: false, error: `${host} has no address` };
  if (!opts.allowPrivate && isPrivateAddress(address)) return { ok: false, error: `${host} is ${address}, on a private network: not sent (tlsrpt.allow_private_destinations)` };
  return new Promise<PostResult>((resolve) => {
    const req = https.request(
      {
        host: address,
        port: target.port ? Number(target.port) : 443,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        servername: net.isIP(host) ? undefined : host,
        // The certificate is checked against the URL's host, not the address connected to.
        checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
        headers: { Host: target.host, 'Content-Type': 'application/tlsrpt+gzip', 'Content-Length': gzipped.length, 'User-Agent': 'SealRelay TLS-RPT' },
        agent: false,
        ...(opts.ca ? { ca: opts.ca } : {}),
        timeout: opts.timeoutMs,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_RESPONSE_BYTES) chunks.push(chunk.subarray(0, MAX_RESPONSE_BYTES - size));
          size += chunk.length;
        });
        res.on('end', () => {
          clearTimeout(deadline);
          if (status >= 200 && status < 300) return resolve({ ok: true, status });
          const text = Buffer.concat(chunks).toString('utf8').replace(/\s+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim().slice(0, 200);
          resolve({ ok: false, error: `HTTP ${status}${text ? `: ${text}` : ''}` });
        });
        res.on('error', (err) => finish(`answer cut short: ${err.message}`));
      },
    );
    const finish = (error: string) => {
      clearTimeout(deadline);
      resolve({ ok: false, error });
    };
    const deadline = setTimeout(() => {
      req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish(`${url}: ${err.code ?? ''} ${err.message}`.trim()));
    req.end(gzipped);
  });
}
