// postfix: the reference relay — a stock Postfix, set up from scratch in a temp
// directory and started with `postfix -c DIR start`, so the system's own
// /etc/postfix and /var/spool/postfix are never read or touched.
//
// What is stock and what is not:
//   - Debian's binaries and daemon_directory (/usr/lib/postfix/sbin), Debian's
//     main.cf defaults (compatibility_level 3.6, smtp_tls_session_cache_database),
//     every performance knob at its default: the qmgr's destination concurrency,
//     process limits, and connection caching as shipped. Stock Postfix does not
//     reuse TLS connections (smtp_tls_connection_reuse = no), so with TLS on the
//     delivery hop every message gets a new connection and a new handshake. That
//     is the "new connection per message" of the reference.
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
//
// It must run as root (master binds, then drops to mail_owner=postfix). The
// queue directories are made by Postfix itself (post-install create-missing, run
// by `postfix start`) from the system's postfix-files, with the right owners.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { onCleanup } from './cleanup.ts';
import { freePort } from './free-port.ts';
import { treeCpuMs, treeMemory } from './proc-stats.ts';
import type { RelayUnderTest } from './relay-under-test.ts';

const run = promisify(execFile);
const POSTFIX = '/usr/sbin/postfix';
const POSTCONF = '/usr/sbin/postconf';
const COMMAND_TIMEOUT_MS = 60_000;

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
}

/** Why Postfix cannot be used here, or null when it can. */
export function postfixUnavailable(): string | null {
  if (!existsSync(POSTFIX)) return `${POSTFIX} is not installed (apt-get install postfix, "No configuration")`;
  if (process.getuid?.() !== 0) return 'Postfix needs root to start its master (run the comparison as root)';
  return null;
}

export function mainCf(opts: PostfixOptions): string {
  const { dir, route } = opts;
  return `# Written by bench/postfix.ts for one benchmark run; see that file for what is stock.
compatibility_level = 3.6
queue_directory = ${join(dir, 'queue')}
data_directory = ${join(dir, 'data')}
mail_owner = postfix
setgid_group = postdrop
maillog_file = ${join(dir, 'maillog')}
# Postfix only writes a maillog_file under one of these prefixes (default /var, /dev/stdout).
maillog_file_prefixes = ${dir}

myhostname = postfix-relay.bench.local
mydomain = bench.local
myorigin = $myhostname
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4

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
`;
}

/** Debian's master.cf services, chroot off, with smtpd on the chosen loopback port. */
export function masterCf(port: number): string {
  return `# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

export async function startPostfix(opts: PostfixOptions): Promise<RelayUnderTest> {
  const why = postfixUnavailable();
  if (why) throw new Error(why);
  const etc = join(opts.dir, 'etc');
  mkdirSync(etc, { recursive: true });
  // postfix-script cd's into the queue directory before anything creates it; the rest Postfix makes.
  mkdirSync(join(opts.dir, 'queue'), { recursive: true });
  makeTraversable(opts.dir);
  const port = await freePort();
  writeFileSync(join(etc, 'main.cf'), mainCf(opts));
  writeFileSync(join(etc, 'master.cf'), masterCf(port));

  const postfix = (command: string) => run(POSTFIX, ['-c', etc, command], { timeout: COMMAND_TIMEOUT_MS });
  const masterPidFile = join(opts.dir, 'queue', 'pid', 'master.pid');
  const forget = onCleanup('postfix', () => stopNow(etc, masterPidFile));
  try {
    await postfix('start');
  } catch (err) {
    forget();
    stopNow(etc, masterPidFile);
    throw new Error(`postfix -c ${etc} start failed: ${(err as { stderr?: string }).stderr || (err as Error).message}\n${tail(join(opts.dir, 'maillog'))}`);
  }
  const pid = Number(readFileSync(masterPidFile, 'utf8').trim());
  const version = (await run(POSTCONF, ['-c', etc, '-h', 'mail_version'], { timeout: COMMAND_TIMEOUT_MS })).stdout.trim();
  return {
    name: 'postfix',
    version,
    port,
    pid,
    logFile: join(opts.dir, 'maillog'),
    // The master, every live daemon under it, and what the master reaped (smtpd/cleanup/smtp that exited).
    cpuMs: () => treeCpuMs(pid),
    memory: () => treeMemory(pid),
    kernelPeakRss: () => null,
    async stop() {
      try {
        await postfix('stop');
      } catch {
        stopNow(etc, masterPidFile);
      }
      forget();
    },
  };
}

/**
 * Postfix daemons run as `postfix` and must reach DIR/queue, DIR/data and the CA
 * file, but mkdtemp makes directories 0700. DIR becomes 0755 and every temp
 * directory above it (never anything outside the system temp dir) gains the
 * search bit, which lets a path be followed without letting its parent be listed.
 */
function makeTraversable(dir: string): void {
  chmodSync(dir, 0o755);
  const top = resolve(tmpdir());
  for (let p = dirname(resolve(dir)); p.startsWith(`${top}${sep}`); p = dirname(p)) {
    chmodSync(p, statSync(p).mode & 0o7777 | 0o011);
  }
}

/** Synchronous stop for cleanup paths: `postfix stop`, and if that fails, SIGKILL to the master's process group. */
function stopNow(etc: string, masterPidFile: string): void {
  try {
    execFileSync(POSTFIX, ['-c', etc, 'stop'], { timeout: 15_000, stdio: 'ignore' });
    return;
  } catch {
    // fall through to the hard way
  }
  try {
    const pid = Number(readFileSync(masterPidFile, 'utf8').trim());
    // The master leads its own process group (it calls setsid), so this reaches every daemon.
    if (pid > 1) process.kill(-pid, 'SIGKILL');
  } catch {
    // Not running.
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

/** What the Postfix log says about deliveries: status counts and TLS connections by protocol. */
export function summarizeMaillog(file: string): { status: Record<string, number>; tlsConnections: Record<string, number>; warnings: string[] } {
  const status: Record<string, number> = {};
  const tlsConnections: Record<string, number> = {};
  const warnings: string[] = [];
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { status, tlsConnections, warnings };
  }
  for (const line of text.split('\n')) {
    const s = /postfix\/smtp\[\d+\]: .* status=(\w+)/.exec(line)?.[1];
    if (s) status[s] = (status[s] ?? 0) + 1;
    const tls = /postfix\/smtp\[\d+\]: (?:\w+ )?TLS connection established to .*?: (TLSv[\d.]+)/.exec(line)?.[1];
    if (tls) tlsConnections[tls] = (tlsConnections[tls] ?? 0) + 1;
    if (/ (warning|fatal|panic): /.test(line) && warnings.length < 10) warnings.push(line.slice(0, 300));
  }
  return { status, tlsConnections, warnings };
}
