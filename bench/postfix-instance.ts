// postfix-instance: one Postfix instance of the bench's own, in a temp directory,
// started with `postfix -c DIR/etc start`, so the system's /etc/postfix and
// /var/spool/postfix are never read or touched. The relay under test
// (postfix.ts) and the receiving MX (receiver-postfix.ts) are each one of these.
//
// The caller writes what the instance is (main.cf, master.cf); this module makes
// the directories Postfix needs, lets the `postfix` user reach them, starts the
// master, and stops it however the benchmark ends (cleanup.ts): `postfix stop`,
// and SIGKILL to the master's process group when that fails.
//
// It must run as root (the master binds, then drops to mail_owner=postfix). The
// queue directories are made by Postfix itself (post-install create-missing, run
// by `postfix start`) from the system's postfix-files, with the right owners.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { onCleanup } from './cleanup.ts';

const run = promisify(execFile);
export const POSTFIX = '/usr/sbin/postfix';
const POSTCONF = '/usr/sbin/postconf';
const COMMAND_TIMEOUT_MS = 60_000;

/** Why a Postfix instance cannot be run here, or null when it can. */
export function postfixUnavailable(): string | null {
  if (!existsSync(POSTFIX)) return `${POSTFIX} is not installed (npm run test:setup, or apt-get install postfix with "No configuration")`;
  if (process.getuid?.() !== 0) return 'Postfix needs root to start its master (run the bench as root)';
  return null;
}

/** The settings every bench instance shares: its own directories and log, nothing for performance. */
export function instanceMainCf(dir: string, hostname: string): string {
  return `compatibility_level = 3.6
queue_directory = ${join(dir, 'queue')}
data_directory = ${join(dir, 'data')}
mail_owner = postfix
setgid_group = postdrop
maillog_file = ${join(dir, 'maillog')}
# Postfix only writes a maillog_file under one of these prefixes (default /var, /dev/stdout).
maillog_file_prefixes = ${dir}
myhostname = ${hostname}
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
`;
}

/**
 * Debian's master.cf services (master.cf.dist, uncommented ones), chroot off, with
 * smtpd on the chosen loopback port; `extra` lines are appended (e.g. tlsproxy).
 */
export function masterCf(port: number, extra: string[] = []): string {
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
${extra.join('\n')}
`;
}

export interface PostfixInstance {
  /** DIR/etc, the instance's config_directory. */
  readonly etc: string;
  /** The master's pid: the root of the instance's process tree. */
  readonly pid: number;
  readonly version: string;
  readonly logFile: string;
  stop(): Promise<void>;
}

/**
 * Starts an instance whose files live in `dir`. `mainCf` must include
 * instanceMainCf(dir, …); `masterCf` names the smtpd port.
 */
export async function startPostfixInstance(what: string, dir: string, files: { mainCf: string; masterCf: string }): Promise<PostfixInstance> {
  const why = postfixUnavailable();
  if (why) throw new Error(why);
  const etc = join(dir, 'etc');
  mkdirSync(etc, { recursive: true });
  // postfix-script cd's into the queue directory before anything creates it; the rest Postfix makes.
  mkdirSync(join(dir, 'queue'), { recursive: true });
  makeTraversable(dir);
  writeFileSync(join(etc, 'main.cf'), files.mainCf);
  writeFileSync(join(etc, 'master.cf'), files.masterCf);
  const logFile = join(dir, 'maillog');

  const postfix = (command: string) => run(POSTFIX, ['-c', etc, command], { timeout: COMMAND_TIMEOUT_MS });
  const masterPidFile = join(dir, 'queue', 'pid', 'master.pid');
  const forget = onCleanup(what, () => stopNow(etc, masterPidFile));
  try {
    await postfix('start');
  } catch (err) {
    forget();
    stopNow(etc, masterPidFile);
    throw new Error(`${what}: postfix -c ${etc} start failed: ${(err as { stderr?: string }).stderr || (err as Error).message}\n${tail(logFile)}`);
  }
  const pid = Number(readFileSync(masterPidFile, 'utf8').trim());
  const version = (await run(POSTCONF, ['-c', etc, '-h', 'mail_version'], { timeout: COMMAND_TIMEOUT_MS })).stdout.trim();
  return {
    etc,
    pid,
    version,
    logFile,
    async stop() {
      try {
        await postfix('stop');
        await masterGone(pid);
      } catch {
        stopNow(etc, masterPidFile);
      }
      forget();
    },
  };
}

/** `postfix stop` returns before the master has exited; a next instance must not race it. */
async function masterGone(pid: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline) throw new Error(`postfix master ${pid} still running ${timeoutMs} ms after stop`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Postfix daemons run as `postfix` and must reach DIR/queue, DIR/data and the CA
 * file, but mkdtemp makes directories 0700. DIR becomes 0755 and every temp
 * directory above it (never anything outside the system temp dir) gains the
 * search bit, which lets a path be followed without letting its parent be listed.
 */
export function makeTraversable(dir: string): void {
  chmodSync(dir, 0o755);
  const top = resolve(tmpdir());
  for (let p = dirname(resolve(dir)); p.startsWith(`${top}${sep}`); p = dirname(p)) {
    chmodSync(p, (statSync(p).mode & 0o7777) | 0o011);
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

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
