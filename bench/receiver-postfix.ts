// receiver-postfix: the receiving MX of the benchmark as it is in the field — a
// real Postfix (Debian's package, its own instance in a temp directory, see
// postfix-instance.ts) that takes the bench domain as a virtual mailbox domain and
// writes every message to a Maildir on disk (virtual(8), fsync and all). Its cost
// per message (smtpd, cleanup, qmgr, virtual, the TLS handshake) competes for the
// same two cores as the relay under test, as a receiving server does in the
// issue's reference figures.
//
//   - TLS 1.3 only (smtpd_tls_protocols = >=TLSv1.3), STARTTLS offered with the
//     bench CA's certificate for 127.0.0.1; plaintext is accepted but counted.
//   - Every recipient at the bench domain goes to one Maildir, DIR/mail/maildir,
//     owned by `nobody` (virtual_uid_maps); nothing else is delivered.
//   - Everything else is stock: smtpd's process limits, in_flow_delay, the qmgr.
//     smtpd_tls_loglevel = 1 and smtpd_tls_received_header = yes are set so the
//     log and each message say how it arrived (the independent witness).
//
// "Landed" means written into the Maildir (the file's ctime: virtual links it
// from tmp/ into new/ and unlinks the tmp/ name once the message is on disk).
// The count is read from new/ while a run waits for it (a readdir every 100 ms);
// the per-message facts (X-Bench-Id, how it arrived) are read from the files after
// the run, outside the measured window. Connections and their TLS version come
// from smtpd's log lines.
import { chownSync, mkdirSync, readFileSync, readdirSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.ts';
import { instanceMainCf, masterCf, startPostfixInstance } from './postfix-instance.ts';
import { treeCpuMs } from './proc-stats.ts';
import type { ReceiverReport } from './receiver.ts';
import type { Receiver, ReceiverTls } from './receiver-process.ts';

/** How often new/ is counted while a run waits for its messages to land. */
const POLL_MS = 100;
/** The X-Bench-Id and the receiver's own Received field are in the first lines. */
const HEADER_SCAN_BYTES = 16 * 1024;
const ID_HEADER = /^X-Bench-Id:[ \t]*(\S+)/im;
/** The first Received field is ours (smtpd_tls_received_header): "(using TLSv1.3 with cipher …)". */
const RECEIVED_TLS = /^Received:[^\n]*(?:\n[ \t][^\n]*)*?\(using (TLSv[\d.]+) with cipher/im;

export interface PostfixReceiverOptions {
  dir: string;
  tls: ReceiverTls;
  domain: string;
}

export function receiverMainCf(dir: string, opts: PostfixReceiverOptions, owner: { uid: number; gid: number }): string {
  return `# Written by bench/receiver-postfix.ts: the receiving MX of one benchmark run.
${instanceMainCf(dir, 'mx.bench.test')}
myorigin = $myhostname

# An MX for the bench domain only, delivering to one Maildir.
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
smtpd_relay_restrictions = reject_unauth_destination
virtual_mailbox_domains = ${opts.domain}
virtual_mailbox_base = ${join(dir, 'mail')}
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:${owner.uid}
virtual_gid_maps = static:${owner.gid}

# TLS 1.3 only, with the certificate the relays verify.
smtpd_tls_cert_file = ${opts.tls.certFile}
smtpd_tls_key_file = ${opts.tls.keyFile}
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.3
smtpd_tls_mandatory_protocols = >=TLSv1.3
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
`;
}

export async function startPostfixReceiver(opts: PostfixReceiverOptions): Promise<Receiver> {
  const owner = { uid: systemId('/etc/passwd', 'nobody'), gid: systemId('/etc/group', 'nogroup') };
  const maildir = join(opts.dir, 'mail', 'maildir');
  for (const sub of ['', 'tmp', 'new', 'cur']) {
    mkdirSync(join(maildir, sub), { recursive: true });
    chownSync(join(maildir, sub), owner.uid, owner.gid);
  }
  chownSync(join(opts.dir, 'mail'), owner.uid, owner.gid);
  const newDir = join(maildir, 'new');

  const port = await freePort();
  const instance = await startPostfixInstance('receiving postfix', opts.dir, {
    mainCf: receiverMainCf(opts.dir, opts, owner),
    masterCf: masterCf(port),
  });

  /** Files in new/ before the last reset (the warm-up's): not this run's. */
  let before = new Set<string>();
  /** Byte offset of the maillog at the last reset. */
  let logOffset = 0;
  const arrived = () => readdirSync(newDir).filter((name) => !before.has(name));
  const landedAt = (names: string[]) => names.map((name) => statSync(join(newDir, name)).ctimeMs).sort((a, b) => a - b);

  return {
    name: `postfix ${instance.version} (Maildir)`,
    port,
    pid: instance.pid,
    cpuMs: () => treeCpuMs(instance.pid),
    async landed(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const names = arrived();
        if (names.length >= n) return landedAt(names)[n - 1]!;
        if (Date.now() > deadline) return null;
        await sleep(POLL_MS);
      }
    },
    reset() {
      before = new Set(readdirSync(newDir));
      logOffset = fileSize(instance.logFile);
    },
    async report() {
      const report = readMaildir(newDir, arrived());
      return { ...report, ...readSmtpdLog(instance.logFile, logOffset) };
    },
    stop: () => instance.stop(),
  };
}

/** Per message: when it landed, its size, its X-Bench-Id and whether it came over TLS. */
function readMaildir(dir: string, names: string[]): Omit<ReceiverReport, 'connections' | 'connectionsWithMail' | 'tlsConnections'> {
  const landings: [string, number][] = [];
  let bytes = 0;
  let plaintextMessages = 0;
  let first: number | null = null;
  let last: number | null = null;
  const head = Buffer.alloc(HEADER_SCAN_BYTES);
  for (const name of names) {
    const file = join(dir, name);
    const st = statSync(file);
    bytes += st.size;
    first = first === null ? st.ctimeMs : Math.min(first, st.ctimeMs);
    last = last === null ? st.ctimeMs : Math.max(last, st.ctimeMs);
    const fd = openSync(file, 'r');
    let text: string;
    try {
      text = head.toString('latin1', 0, readSync(fd, head, 0, HEADER_SCAN_BYTES, 0));
    } finally {
      closeSync(fd);
    }
    const id = ID_HEADER.exec(text)?.[1];
    if (id) landings.push([id, st.ctimeMs]);
    if (!RECEIVED_TLS.test(text.replace(/\r\n/g, '\n'))) plaintextMessages++;
  }
  return { landed: names.length, bytes, plaintextMessages, firstLandedAt: first, lastLandedAt: last, landings };
}

/**
 * Connections from smtpd's log: each smtpd process serves one connection at a
 * time ("connect from" … "disconnect from"), so its pid ties the TLS line and
 * the messages ("QUEUEID: client=") to a connection. Only messages logged after
 * `offset` (the last reset) count; a connection opened before it (a relay keeping
 * a warm-up connection open) still counts when it carried such messages.
 */
function readSmtpdLog(file: string, offset: number): Pick<ReceiverReport, 'connections' | 'connectionsWithMail' | 'tlsConnections'> {
  let text = '';
  try {
    text = readFileSync(file, 'latin1');
  } catch {
    return { connections: 0, connectionsWithMail: 0, tlsConnections: {} };
  }
  interface Connection {
    protocol: string;
    mail: number;
  }
  const current = new Map<string, Connection>();
  const all: Connection[] = [];
  let connections = 0;
  let at = 0;
  for (const line of text.split('\n')) {
    const inWindow = at >= offset;
    at += line.length + 1;
    const m = /postfix\/smtpd\[(\d+)\]: (.*)$/.exec(line);
    if (!m) continue;
    const [, pid, rest] = m as unknown as [string, string, string];
    if (rest.startsWith('connect from ')) {
      const c = { protocol: 'none', mail: 0 };
      current.set(pid, c);
      all.push(c);
      if (inWindow) connections++;
      continue;
    }
    const c = current.get(pid);
    if (!c) continue;
    const tls = /TLS connection established from .*?: (TLSv[\d.]+)/.exec(rest)?.[1];
    if (tls) c.protocol = tls;
    else if (inWindow && /^[0-9A-Za-z]+: client=/.test(rest)) c.mail++;
  }
  const tlsConnections: Record<string, number> = {};
  let connectionsWithMail = 0;
  for (const c of all) {
    if (!c.mail) continue;
    connectionsWithMail++;
    tlsConnections[c.protocol] = (tlsConnections[c.protocol] ?? 0) + 1;
  }
  return { connections, connectionsWithMail, tlsConnections };
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** uid or gid of a system account, from /etc/passwd or /etc/group. */
function systemId(file: string, name: string): number {
  const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  const id = Number(line?.split(':')[2]);
  if (!Number.isInteger(id)) throw new Error(`no ${name} in ${file}: the receiving Postfix delivers as ${name}`);
  return id;
}
