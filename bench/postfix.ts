// postfix: the reference relay — Postfix set up from scratch in a temp directory
// (postfix-instance.ts) as the same kind of relay as SealRelay, in one of two
// variants run in the same benchmark:
//
//   stock   every performance knob as Debian ships it: the qmgr's destination
//           concurrency, process limits, connection caching. Stock Postfix does
//           not reuse TLS connections (smtp_tls_connection_reuse = no), so with
//           TLS on the delivery hop every message gets a new connection and a new
//           handshake.
//   tuned   what an operator who cares about speed turns on: TLS connection
//           reuse (smtp_tls_connection_reuse = yes) with the tlsproxy service in
//           master.cf, so the smtp client hands TLS to tlsproxy and the connection
//           cache (scache) keeps TLS connections open between messages.
//
// What is ours and not Debian's, in both:
//   - Its own config_directory, queue_directory and data_directory in DIR; logs
//     go to DIR/maillog through postlogd (containers rarely run syslog).
//   - No chroot: Debian's master.cf chroots smtpd/smtp into the queue directory,
//     which then needs copies of /etc files; a chroot costs nothing per message,
//     so leaving it out changes no figure.
//   - Relaying: mynetworks = 127.0.0.0/8 may relay (SealRelay's relay_networks),
//     and a transport_maps entry sends the bench domain to the receiver as
//     [127.0.0.1]:PORT — Postfix's equivalent of SealRelay's delivery.routes.
//   - Delivery TLS: smtp_tls_security_level = verify against the bench CA, the
//     equivalent of SealRelay's `forced` + `verification: ca` (the receiver's
//     certificate names 127.0.0.1, which is the nexthop). The receiver accepts
//     only TLS 1.3, so every delivery is TLS 1.3.
//   - Submission: smtpd offers STARTTLS with the receiver's certificate, like
//     SealRelay's starttls listener.
import { readFileSync } from 'node:fs';
import { instanceMainCf, masterCf, startPostfixInstance } from './postfix-instance.ts';
import { freePort } from './free-port.ts';
import { treeCpuMs, treeMemory } from './proc-stats.ts';
import type { RelayUnderTest } from './relay-under-test.ts';

export { postfixUnavailable } from './postfix-instance.ts';

export type PostfixVariant = 'stock' | 'tuned';

export interface PostfixOptions {
  /** Temp directory; DIR/etc, DIR/queue, DIR/data and DIR/maillog are made in it. */
  dir: string;
  route: { domain: string; host: string; port: number };
  caFile: string;
  /** Certificate for STARTTLS on the submission port. */
  certFile: string;
  keyFile: string;
  /** `verify` (default, like SealRelay's forced+ca) or `encrypt` (TLS, no certificate check). */
  tlsLevel?: 'verify' | 'encrypt';
  /** Default stock. */
  variant?: PostfixVariant;
}

/** The tuned variant's additions, recorded in the results as they are written. */
export const TUNED_MAIN_CF = ['smtp_tls_connection_reuse = yes'];
export const TUNED_MASTER_CF = ['tlsproxy  unix  -       -       n       -       0       tlsproxy'];

export function mainCf(opts: PostfixOptions): string {
  const { dir, route } = opts;
  return `# Written by bench/postfix.ts for one benchmark run (${opts.variant ?? 'stock'}); see that file for what is stock.
${instanceMainCf(dir, 'postfix-relay.bench.local')}
myorigin = $myhostname
mydomain = bench.local

# A relay, not a final destination: nothing is delivered locally.
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
transport_maps = inline:{${route.domain}=smtp:[${route.host}]:${route.port}}

# Submission hop: STARTTLS offered (Debian's main.cf.tls defaults).
smtpd_tls_cert_file = ${opts.certFile}
smtpd_tls_key_file = ${opts.keyFile}
smtpd_tls_security_level = may

# Delivery hop: TLS required and the certificate checked against the bench CA.
smtp_tls_security_level = ${opts.tlsLevel ?? 'verify'}
smtp_tls_CAfile = ${opts.caFile}
smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache
smtp_tls_loglevel = 1
${opts.variant === 'tuned' ? `\n# Tuned: TLS connection reuse through tlsproxy.\n${TUNED_MAIN_CF.join('\n')}\n` : ''}`;
}

export async function startPostfix(opts: PostfixOptions): Promise<RelayUnderTest> {
  const port = await freePort();
  const variant = opts.variant ?? 'stock';
  const instance = await startPostfixInstance(`postfix relay (${variant})`, opts.dir, {
    mainCf: mainCf(opts),
    masterCf: masterCf(port, variant === 'tuned' ? TUNED_MASTER_CF : []),
  });
  const pid = instance.pid;
  return {
    name: `postfix-${variant}`,
    version: instance.version,
    port,
    pid,
    logFile: instance.logFile,
    // The master, every live daemon under it, and what the master reaped (smtpd/cleanup/smtp that exited).
    cpuMs: () => treeCpuMs(pid),
    memory: () => treeMemory(pid),
    kernelPeakRss: () => null,
    stop: () => instance.stop(),
  };
}

/** What the Postfix log says about deliveries: status counts and TLS connections by protocol. */
export function summarizeMaillog(file: string): { status: Record<string, number>; tlsConnections: Record<string, number>; reusedTls: number; warnings: string[] } {
  const status: Record<string, number> = {};
  const tlsConnections: Record<string, number> = {};
  const warnings: string[] = [];
  let reusedTls = 0;
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { status, tlsConnections, reusedTls, warnings };
  }
  for (const line of text.split('\n')) {
    const s = /postfix\/smtp\[\d+\]: .* status=(\w+)/.exec(line)?.[1];
    if (s) status[s] = (status[s] ?? 0) + 1;
    // smtp logs each handshake (tlsproxy, when tuned, logs it a second time: not counted) and each reuse.
    const tls = /postfix\/smtp\[\d+\]: (?:\w+ )?TLS connection established to .*?: (TLSv[\d.]+)/.exec(line)?.[1];
    if (tls) tlsConnections[tls] = (tlsConnections[tls] ?? 0) + 1;
    if (/postfix\/smtp\[\d+\]: .*TLS connection reused/.test(line)) reusedTls++;
    if (/ (warning|fatal|panic): /.test(line) && warnings.length < 10) warnings.push(line.slice(0, 300));
  }
  return { status, tlsConnections, reusedTls, warnings };
}
