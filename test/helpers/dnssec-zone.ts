/**
 * dnssec-zone: real DNSSEC for tests. Knot DNS serves the test zones on loopback and
 * Unbound validates them, so a test sees what a relay behind an operator's validating
 * resolver sees: the AD bit for a signed zone, no AD for an unsigned one, SERVFAIL for
 * a bogus one (RFC 4035 §3.2.3, RFC 7672 §2.1.1).
 *
 * - 'signed': signed offline with ldns-signzone (one ECDSA P-256 key as CSK); Unbound
 *   gets its DS as a trust anchor → answers carry AD.
 * - 'unsigned': served as written; Unbound has no anchor for it → no AD (insecure).
 * - 'bogus': signed and anchored like 'signed', then every RRSIG except the DNSKEY
 *   one is corrupted (as if the data were changed after signing): the keys validate,
 *   the data does not → Unbound answers SERVFAIL.
 *
 * Both daemons run in a temp dir on free 127.0.0.1 ports, in the foreground, as
 * children of the test process; Unbound reaches Knot through stub zones only (the
 * root too), so nothing is ever asked outside loopback. Zones must not be nested
 * (no delegations are made). Start once per test file: a start takes ~0.2 s.
 *
 * Zone records are zone-file lines relative to the origin ("mx1 A 127.0.0.1",
 * "@ MX 10 mx1", "_25._tcp.mx1 TLSA 3 1 1 <hex>"); the helper adds SOA, NS and the
 * name server's address (ns-fixture.<origin>).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';

export type ZoneSigning = 'signed' | 'unsigned' | 'bogus';

export interface TestZone {
  /** "example.test" or "example.test." */
  origin: string;
  records: string[];
  signing: ZoneSigning;
}

export interface SignedZones {
  /** The validating resolver (Unbound), 'ip:port' for delivery.dns.servers. */
  resolver: string;
  /** The authoritative server (Knot), 'ip:port': answers without validation, never AD. */
  authoritative: string;
  /** The last lines of both servers' logs (Unbound says there why an answer was bogus). */
  logs(): string;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const KNOTD = '/usr/sbin/knotd';
const UNBOUND = '/usr/sbin/unbound';
const TTL_S = 60;
/** Signatures valid from an hour ago (clock skew) for 30 days. */
const INCEPTION_SKEW_S = 3600;
const VALIDITY_S = 30 * 24 * 3600;
const READY_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;
/** Kept of each daemon's output, for the error when it fails to start. */
const LOG_TAIL_CHARS = 4000;

const execFileAsync = promisify(execFile);

/** Daemons still running, killed if the test process exits without close(). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function fqdn(name: string): string {
  return name.endsWith('.') ? name.toLowerCase() : `${name.toLowerCase()}.`;
}

/** A port free on both UDP and TCP right now (bind, read, release); the daemon may still lose a race for it. */
async function freePort(): Promise<number> {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, HOST, () => resolve(udp.address().port));
    });
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, HOST, () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (ok) {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      return port;
    }
  }
}

function zoneFile(zone: TestZone): string {
  const origin = fqdn(zone.origin);
  return [
    `$ORIGIN ${origin}`,
    `$TTL ${TTL_S}`,
    `@ SOA ns-fixture hostmaster 1 3600 600 86400 ${TTL_S}`,
    '@ NS ns-fixture',
    `ns-fixture A ${HOST}`,
    ...zone.records,
    '',
  ].join('\n');
}

/** Flips bits in every RRSIG signature that does not cover DNSKEY (ldns-signzone writes one RR per line). */
function corruptSignatures(signed: string): string {
  return signed
    .split('\n')
    .map((line) => {
      const fields = line.replace(/;.*$/, '').trim().split(/\s+/);
      // owner ttl class RRSIG covered alg labels origttl expiration inception tag signer signature…
      if (fields[3] !== 'RRSIG' || fields[4] === 'DNSKEY') return line;
      const signature = Buffer.from(fields.slice(12).join(''), 'base64');
      const middle = signature.length >> 1;
      signature.writeUInt8(signature.readUInt8(middle) ^ 0xff, middle);
      return [...fields.slice(0, 12), signature.toString('base64')].join('\t');
    })
    .join('\n');
}

/** Signs `file` in `dir`; returns the signed zone text and the DS record for the trust anchor. */
async function sign(dir: string, origin: string, file: string): Promise<{ signed: string; ds: string }> {
  // -k: the key is a KSK (SEP flag); ldns-signzone then signs every RRset with it (a CSK).
  const { stdout } = await execFileAsync('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', origin], { cwd: dir });
  const key = stdout.trim();
  const now = Math.floor(Date.now() / 1000);
  const signedPath = `${file}.signed`;
  await execFileAsync(
    'ldns-signzone',
    ['-i', String(now - INCEPTION_SKEW_S), '-e', String(now + VALIDITY_S), '-o', origin, '-f', signedPath, file, key],
    { cwd: dir },
  );
  const [signed, ds] = await Promise.all([readFile(path.join(dir, signedPath), 'utf8'), readFile(path.join(dir, `${key}.ds`), 'utf8')]);
  return { signed, ds: ds.trim().split(/\s+/).join(' ') };
}

/** dns-packet's decoded reply carries the RCODE, which its types leave out. */
type Reply = dnsPacket.Packet & { rcode?: string };

/** One UDP question; resolves with the reply, or null after `timeoutMs` or a socket error. */
function ask(port: number, name: string, type: dnsPacket.RecordType, timeoutMs: number): Promise<Reply | null> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const id = Math.floor(Math.random() * 65536);
    const done = (reply: Reply | null) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('error', () => done(null));
    socket.on('message', (message) => {
      try {
        const reply = dnsPacket.decode(message);
        if (reply.id === id) done(reply);
      } catch {
        // not for us
      }
    });
    // Connected, so a port nobody listens on yet fails at once (ICMP → ECONNREFUSED) instead of timing out.
    socket.connect(port, HOST, () => {
      socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] }));
    });
  });
}

interface Daemon {
  child: ChildProcess;
  log(): string;
}

function startDaemon(command: string, args: string[]): Daemon {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return { child, log: () => output };
}

async function stopDaemon(daemon: Daemon): Promise<void> {
  const { child } = daemon;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/**
 * Waits until `ready()` holds, the daemon exits, or it reports a lost port race.
 * Returns 'ready' or 'port-taken'; throws with the daemon's log otherwise.
 */
async function waitReady(daemon: Daemon, what: string, ready: () => Promise<boolean>, fatal?: RegExp): Promise<'ready' | 'port-taken'> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited = false;
  daemon.child.once('exit', () => (exited = true));
  for (;;) {
    if (/address already in use/i.test(daemon.log())) return 'port-taken';
    if (exited) throw new Error(`${what} exited before it was ready:\n${daemon.log()}`);
    if (fatal?.test(daemon.log())) throw new Error(`${what} failed:\n${daemon.log()}`);
    if (await ready()) return 'ready';
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${READY_TIMEOUT_MS} ms:\n${daemon.log()}`);
    // The query itself waits up to its timeout; a refused port fails at once, so pause briefly.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts a daemon on a free port, choosing another one when it loses the port to someone else. */
async function startOnFreePort(
  what: string,
  launch: (port: number) => Promise<Daemon>,
  ready: (port: number) => Promise<boolean>,
  fatal?: RegExp,
): Promise<{ daemon: Daemon; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const daemon = await launch(port);
    try {
      if ((await waitReady(daemon, what, () => ready(port), fatal)) === 'ready') return { daemon, port };
    } catch (err) {
      await stopDaemon(daemon);
      throw err;
    }
    await stopDaemon(daemon);
    if (attempt >= PORT_ATTEMPTS) throw new Error(`${what}: no free port after ${attempt} attempts:\n${daemon.log()}`);
  }
}

function knotConfig(dir: string, port: number, zones: readonly { origin: string; file: string }[]): string {
  return `# Knot DNS for one test: serves the zone files as they are (already signed or not).
server:
    rundir: "${dir}"
    listen: ${HOST}@${port}
    # One worker each keeps startup short; a test asks few questions.
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

database:
    storage: "${dir}"

log:
  - target: stderr
    any: info

template:
  - id: default
    storage: "${dir}"
    # Serve the file as written: no journal, no writing back, no signing by Knot.
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off

zone:
${zones.map((z) => `  - domain: "${z.origin}"\n    file: "${z.file}"`).join('\n')}
`;
}

function unboundConfig(dir: string, port: number, knotPort: number, zones: readonly { origin: string; ds: string | null }[]): string {
  const stub = (name: string) => `stub-zone:\n    name: "${name}"\n    stub-addr: ${HOST}@${knotPort}\n`;
  return `# Unbound for one test: validates the test zones, asks only the local Knot.
server:
    interface: ${HOST}
    port: ${port}
    do-ip6: no
    # Foreground child of the test: no chroot, no user switch, no syslog, no pid file elsewhere.
    chroot: ""
    username: ""
    directory: "${dir}"
    pidfile: "${dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    # Says why an answer is bogus, in the log shown when a test fails.
    val-log-level: 2
    num-threads: 1
    outgoing-range: 64
    # Knot is on loopback, which Unbound refuses to ask by default.
    do-not-query-localhost: no
    qname-minimisation: no
    prefetch: no
    # Only the anchors below: no root key, so an unanchored zone is insecure.
    module-config: "validator iterator"
${zones
  .map((z) => `    # Unbound's built-in local zones (test., invalid., ...) would answer instead of Knot.\n    local-zone: "${z.origin}" transparent\n` + (z.ds ? `    trust-anchor: "${z.ds}"\n` : ''))
  .join('')}
remote-control:
    control-enable: no

# Every name, the root included, goes to Knot: no root hints are ever used, nothing
# leaves loopback; names outside the test zones get REFUSED there and fail here.
${stub('.')}${zones.map((z) => stub(z.origin)).join('')}`;
}

export async function startSignedZones(opts: { zones: TestZone[] }): Promise<SignedZones> {
  const zones = opts.zones.map((z) => ({ ...z, origin: fqdn(z.origin) }));
  for (const a of zones) {
    for (const b of zones) {
      if (a !== b && (a.origin === b.origin || b.origin.endsWith(`.${a.origin}`))) {
        throw new Error(`startSignedZones: zones ${a.origin} and ${b.origin} overlap (no delegations are made)`);
      }
    }
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sealrelay-dnssec-'));
  const daemons: Daemon[] = [];
  const close = async () => {
    await Promise.all(daemons.map(stopDaemon));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const prepared = await Promise.all(
      zones.map(async (zone, index) => {
        const file = `zone${index}.db`;
        await writeFile(path.join(dir, file), zoneFile(zone));
        if (zone.signing === 'unsigned') return { origin: zone.origin, file, ds: null };
        const { signed, ds } = await sign(dir, zone.origin, file);
        const served = `${file}.served`;
        await writeFile(path.join(dir, served), zone.signing === 'bogus' ? corruptSignatures(signed) : signed);
        return { origin: zone.origin, file: served, ds };
      }),
    );

    const knot = await startOnFreePort(
      'knotd',
      async (port) => {
        const conf = path.join(dir, 'knot.conf');
        await writeFile(conf, knotConfig(dir, port, prepared));
        const daemon = startDaemon(KNOTD, ['-c', conf]);
        daemons.push(daemon);
        return daemon;
      },
      // Ready when every zone is loaded: its SOA answered authoritatively.
      async (port) => {
        for (const z of prepared) {
          const reply = await ask(port, z.origin, 'SOA', 1000);
          if (!reply || reply.rcode !== 'NOERROR' || !reply.answers?.length) return false;
        }
        return true;
      },
      // A record line Knot cannot parse: say so now rather than time out.
      /failed to load zone/,
    );

    const unbound = await startOnFreePort(
      'unbound',
      async (port) => {
        const conf = path.join(dir, 'unbound.conf');
        await writeFile(conf, unboundConfig(dir, port, knot.port, prepared));
        const daemon = startDaemon(UNBOUND, ['-d', '-c', conf]);
        daemons.push(daemon);
        return daemon;
      },
      // Ready when it answers at all (a bogus zone answers SERVFAIL, which is an answer).
      async (port) => (await ask(port, prepared[0]?.origin ?? '.', 'SOA', 2000)) !== null,
    );

    return {
      resolver: `${HOST}:${unbound.port}`,
      authoritative: `${HOST}:${knot.port}`,
      logs: () => `--- knotd ---\n${knot.daemon.log()}\n--- unbound ---\n${unbound.daemon.log()}`,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
