/**
 * mx: receiving MX servers for delivery tests, built on smtp-server.
 *
 * Each `kind` is one kind of peer the relay meets on the Internet: a modern STARTTLS
 * MX, one stuck at TLS 1.2, one without STARTTLS, one with a self-signed certificate,
 * one below the TLS floor, a greylister, one that drops the line mid-DATA, one that
 * rejects some recipients. The MX records what it saw on its own socket (protocol,
 * cipher, the certificate it served, the address that took the connection) so a
 * test can hold the relay's DeliveryRecord against an independent witness, as
 * DESIGN.md asks; `receivedHeader` is that witness in Received: form.
 *
 * Servers accept any sender and recipient, offer no AUTH, have no size limit, never
 * look up DNS (no reverse lookups), and close within CLOSE_WAIT_MS.
 *
 * Several MXs of one domain share a port on distinct loopback addresses (startMxSet),
 * because the relay connects to every MX on one configured port. Linux routes all of
 * 127.0.0.0/8 to `lo`; on macOS the extra addresses must be aliased first.
 */
import crypto from 'node:crypto';
import type tls from 'node:tls';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Zone } from './dns-stub.ts';
import { selfSigned, sharedTestCa, type CertAndKey, type TestCa } from './test-ca.ts';

export type MxKind =
  | 'tls13'
  | 'tls12'
  | 'plain'
  | 'selfsigned'
  | 'weak-protocol'
  | 'weak-cipher'
  /** Alias of 'weak-protocol'. */
  | 'weak'
  | 'greylist'
  | 'drop-mid-data'
  | 'reject-rcpt';

/** Misbehaviours; each kind switches one on, and any kind may add them through options. */
export interface MxBehaviour {
  /** RCPT of these addresses (case-insensitive) gets 550 5.1.1. */
  rejectRecipients?: string[];
  /** First RCPT of each (sender, recipient) pair gets 451 4.7.1; later ones pass. */
  greylist?: boolean;
  /** After the first chunk of DATA the socket is destroyed, without any reply. */
  dropMidData?: boolean;
  /** The reply to each message's final dot comes this many ms late (a slow receiver). */
  dataDelayMs?: number;
  /**
   * The reply to each message's final dot waits for releaseData() (after dataDelayMs,
   * if both): a delivery kept in flight for exactly as long as a test needs, untimed.
   */
  holdData?: boolean;
}

export interface MxOptions extends MxBehaviour {
  /** Host name: greeting, certificate CN/SAN. Default 'mx.example.test'. */
  name?: string;
  /** Bind address. Default '127.0.0.1'; use allocLoopbackIp() for parallel-safe tests. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Issuer of the certificate for the TLS kinds. Default: sharedTestCa(). */
  ca?: TestCa;
  /** Escape hatch, merged over the fixture's smtp-server options. */
  serverOptions?: SMTPServerOptions;
}

export interface TlsFacts {
  /** As tls.TLSSocket#getProtocol(): 'TLSv1.3', 'TLSv1.2', 'TLSv1.1', 'TLSv1'. */
  protocol: string;
  /** OpenSSL cipher name, as tls.TLSSocket#getCipher().name. */
  cipher: string;
}

export interface ReceivedMessage {
  /** requireTLS, present only when MAIL FROM carried REQUIRETLS (RFC 8689; offered with serverOptions { hideREQUIRETLS: false }). */
  envelope: { from: string; to: string[]; requireTLS?: true };
  /** The message exactly as it came over DATA (dot-unstuffed, without the final dot). */
  raw: Buffer;
  /** What this MX negotiated on its own socket; null for a plaintext session. */
  tls: TlsFacts | null;
  sessionId: string;
  /** The Received: header this MX would prepend, Postfix style (not part of `raw`). */
  receivedHeader: string;
}

export interface SeenSession {
  id: string;
  remoteAddress: string;
  /** This MX's own end of the connection: which address and port (listener) took it. */
  localAddress: string;
  localPort: number;
  /** EHLO/HELO argument of the latest greeting. */
  heloName: string | null;
  secure: boolean;
  protocol: string | null;
  cipher: string | null;
  /** IANA name of the same cipher, as tls.TLSSocket#getCipher().standardName. */
  standardCipher: string | null;
  /** SHA-256 fingerprint (AB:CD:… like X509Certificate#fingerprint256) of the certificate this socket served. */
  servedCertFingerprint256: string | null;
  /** SNI the client sent, if any. */
  servername: string | null;
  /** Messages accepted on this connection (>1 means the client reused it). */
  transactions: number;
  /** Set by drop-mid-data when it cut this connection. */
  dropped: boolean;
  closed: boolean;
}

export interface StartedMx {
  kind: MxKind;
  name: string;
  host: string;
  port: number;
  /** Certificate the MX presents on STARTTLS; null for 'plain'. */
  certPem: string | null;
  received: ReceivedMessage[];
  sessions: SeenSession[];
  /** DATA transfers begun, and the most that were under way at once (replies pending included). */
  readonly data: { begun: number; mostAtOnce: number };
  /** Sends the replies holdData kept back; later messages are answered at once. */
  releaseData(): void;
  /** Errors smtp-server reported (failed handshakes, resets): expected in negative tests. */
  errors: Error[];
  /** Resolves with all received messages once there are at least `n`. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  close(): Promise<void>;
}

/**
 * TLS 1.0 and 1.1 only, with OpenSSL's default (strong, e.g. ECDHE-RSA-AES256-SHA)
 * ciphers: just the protocol is below the floor. OpenSSL 3 refuses TLS < 1.2 above
 * security level 0, so a peer needs `@SECLEVEL=0` and minVersion 'TLSv1' to connect;
 * such a lenient client ends up on TLSv1.1 with ECDHE-RSA-AES256-SHA.
 */
const WEAK_PROTOCOL: tls.SecureContextOptions = {
  minVersion: 'TLSv1',
  maxVersion: 'TLSv1.1',
  ciphers: 'DEFAULT:@SECLEVEL=0',
};

/**
 * TLS 1.2 with only NULL-encryption suites (0-bit: integrity, no confidentiality).
 * Node's bundled OpenSSL 3 has no 3DES, RC4, DES or export suites any more
 * ("no cipher match"), so NULL is the only sub-128-bit cipher left to offer. A client
 * must ask for it, e.g. ciphers 'ALL:eNULL:@SECLEVEL=0' ('DEFAULT:eNULL' does not work:
 * DEFAULT carries !eNULL, which nothing later undoes), and then gets ECDHE-RSA-NULL-SHA.
 */
const WEAK_CIPHER: tls.SecureContextOptions = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.2',
  ciphers: 'ECDHE-RSA-NULL-SHA:NULL-SHA256:NULL-SHA:@SECLEVEL=0',
};

interface Preset {
  certificate: 'ca' | 'self-signed' | 'none';
  tls?: tls.SecureContextOptions;
  behaviour?: MxBehaviour;
}

const PRESETS: Record<MxKind, Preset> = {
  // Node's defaults: TLS 1.3 with a modern client.
  tls13: { certificate: 'ca' },
  tls12: { certificate: 'ca', tls: { maxVersion: 'TLSv1.2' } },
  plain: { certificate: 'none' },
  selfsigned: { certificate: 'self-signed' },
  'weak-protocol': { certificate: 'ca', tls: WEAK_PROTOCOL },
  weak: { certificate: 'ca', tls: WEAK_PROTOCOL },
  'weak-cipher': { certificate: 'ca', tls: WEAK_CIPHER },
  greylist: { certificate: 'ca', behaviour: { greylist: true } },
  'drop-mid-data': { certificate: 'ca', behaviour: { dropMidData: true } },
  // The list itself comes from opts.rejectRecipients.
  'reject-rcpt': { certificate: 'ca' },
};

/** How long close() waits for the listener to finish after destroying the connections. */
const CLOSE_WAIT_MS = 1000;
const DEFAULT_WAIT_MS = 5000;
const DEFAULT_NAME = 'mx.example.test';

/** An SMTP error reply; smtp-server prints `responseCode message`, so the enhanced code leads the text. */
function smtpError(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

function certificateFor(preset: Preset, name: string, host: string, ca: TestCa | undefined): CertAndKey | null {
  const request = { commonName: name, altNames: [name, host] };
  if (preset.certificate === 'none') return null;
  if (preset.certificate === 'self-signed') return selfSigned(request);
  return (ca ?? sharedTestCa()).issue(request);
}

function receivedHeader(session: SMTPServerSession, facts: SeenSession, name: string, to: string[]): string {
  const using = facts.secure ? `\r\n\t(using ${facts.protocol} with cipher ${facts.cipher})` : '';
  return (
    `Received: from ${facts.heloName ?? 'unknown'} ([${session.remoteAddress}])${using}` +
    `\r\n\tby ${name} (SealRelay test MX) with ${session.transmissionType} id ${session.id}` +
    `\r\n\tfor <${to.join('>, <')}>; ${new Date().toUTCString()}`
  );
}

export async function startMx(kind: MxKind, opts: MxOptions = {}): Promise<StartedMx> {
  const preset = PRESETS[kind];
  const name = opts.name ?? DEFAULT_NAME;
  const host = opts.host ?? '127.0.0.1';
  const behaviour: MxBehaviour = {
    rejectRecipients: opts.rejectRecipients ?? preset.behaviour?.rejectRecipients,
    greylist: opts.greylist ?? preset.behaviour?.greylist,
    dropMidData: opts.dropMidData ?? preset.behaviour?.dropMidData,
    dataDelayMs: opts.dataDelayMs ?? preset.behaviour?.dataDelayMs,
    holdData: opts.holdData ?? preset.behaviour?.holdData,
  };
  const rejected = new Set((behaviour.rejectRecipients ?? []).map((a) => a.toLowerCase()));
  const greylistSeen = new Set<string>();
  const certificate = certificateFor(preset, name, host, opts.ca);

  const received: ReceivedMessage[] = [];
  const data = { begun: 0, mostAtOnce: 0 };
  /** Replies kept back by holdData, until releaseData(); null once released. */
  let heldReplies: (() => void)[] | null = behaviour.holdData ? [] : null;
  let dataUnderWay = 0;
  const sessions: SeenSession[] = [];
  const byId = new Map<string, SeenSession>();
  const errors: Error[] = [];
  const waiters = new Set<() => void>();
  const seen = (session: SMTPServerSession): SeenSession => {
    let facts = byId.get(session.id);
    if (!facts) {
      facts = {
        id: session.id,
        remoteAddress: session.remoteAddress,
        localAddress: session.localAddress,
        localPort: session.localPort,
        heloName: null,
        secure: false,
        protocol: null,
        cipher: null,
        standardCipher: null,
        servedCertFingerprint256: null,
        servername: null,
        transactions: 0,
        dropped: false,
        closed: false,
      };
      byId.set(session.id, facts);
      sessions.push(facts);
    }
    return facts;
  };

  const server: SMTPServer = new SMTPServer({
    name,
    banner: 'SealRelay test MX',
    logger: false,
    authOptional: true,
    // An MX on port 25 takes mail without AUTH; 'plain' also refuses STARTTLS outright
    // (hideSTARTTLS alone would still upgrade a client that tries it blindly).
    disabledCommands: certificate ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    maxAllowedUnauthenticatedCommands: false,
    closeTimeout: CLOSE_WAIT_MS,
    ...(certificate ? { key: certificate.keyPem, cert: certificate.certPem } : {}),
    ...preset.tls,
    onConnect(session, callback) {
      seen(session);
      callback();
    },
    onSecure(socket, session, callback) {
      const facts = seen(session);
      const tlsSocket = socket as tls.TLSSocket;
      facts.secure = true;
      facts.protocol = tlsSocket.getProtocol();
      const cipher = tlsSocket.getCipher();
      facts.cipher = cipher.name;
      facts.standardCipher = cipher.standardName;
      // Read back from the socket, not from the PEM we configured: what was really served.
      facts.servedCertFingerprint256 = tlsSocket.getX509Certificate()?.fingerprint256 ?? null;
      facts.servername = typeof session.servername === 'string' ? session.servername : null;
      callback();
    },
    onMailFrom(_address, session, callback) {
      seen(session).heloName = session.hostNameAppearsAs || null;
      callback();
    },
    onRcptTo(address, session, callback) {
      const rcpt = address.address.toLowerCase();
      if (rejected.has(rcpt)) {
        return callback(smtpError(550, `5.1.1 <${address.address}>: Recipient address rejected: User unknown`));
      }
      if (behaviour.greylist) {
        // Greylisting keys on the (sender, recipient) pair: every address is
        // deferred once, whatever connection or transaction the retry comes in.
        const mailFrom = session.envelope.mailFrom;
        const key = `${mailFrom ? mailFrom.address.toLowerCase() : ''}\n${rcpt}`;
        if (!greylistSeen.has(key)) {
          greylistSeen.add(key);
          return callback(smtpError(451, `4.7.1 <${address.address}>: Recipient address rejected: Greylisted, try again later`));
        }
      }
      callback();
    },
    onData(stream, session, callback) {
      const facts = seen(session);
      if (behaviour.dropMidData) {
        stream.once('data', () => {
          facts.dropped = true;
          // The connection's top socket (TLS once upgraded); no reply is ever sent.
          for (const connection of server.connections) if (connection.id === session.id) connection._socket.destroy();
        });
        return;
      }
      data.begun++;
      data.mostAtOnce = Math.max(data.mostAtOnce, ++dataUnderWay);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.once('end', () => setTimeout(() => (heldReplies ? heldReplies.push(accept) : accept()), behaviour.dataDelayMs ?? 0));
      const accept = () => {
        dataUnderWay--;
        const mailFrom = session.envelope.mailFrom;
        const to = session.envelope.rcptTo.map((r) => r.address);
        facts.transactions++;
        received.push({
          envelope: { from: mailFrom ? mailFrom.address : '', to, ...(session.envelope.requireTLS ? { requireTLS: true as const } : {}) },
          raw: Buffer.concat(chunks),
          tls: facts.secure ? { protocol: facts.protocol!, cipher: facts.cipher! } : null,
          sessionId: session.id,
          receivedHeader: receivedHeader(session, facts, name, to),
        });
        for (const waiter of waiters) waiter();
        callback(null, `2.0.0 Ok: queued as ${crypto.randomBytes(5).toString('hex').toUpperCase()}`);
      };
    },
    onClose(session) {
      const facts = byId.get(session.id);
      if (facts) facts.closed = true;
    },
    ...opts.serverOptions,
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // From here on errors are per connection (failed handshakes, resets): keep them for
  // assertions; an unhandled 'error' event would crash the test process.
  server.on('error', (err) => errors.push(err));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  let closing: Promise<void> | undefined;
  return {
    kind,
    name,
    host,
    port,
    certPem: certificate?.certPem ?? null,
    received,
    sessions,
    data,
    releaseData() {
      const waiting = heldReplies ?? [];
      heldReplies = null;
      for (const accept of waiting) accept();
    },
    errors,
    waitFor(n, timeoutMs = DEFAULT_WAIT_MS) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (received.length < n) return;
          done();
          resolve(received.slice());
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${kind} MX ${name} (${host}:${port}): ${received.length} of ${n} messages after ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        // Bounded: tests must not wait for smtp-server's 30 s grace or a client's QUIT.
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const connection of server.connections) connection._socket.destroy();
      });
      return closing;
    },
  };
}

const handedOut = new Set<string>();
/**
 * A random loopback address 127.a.b.c with a in 16..239, keeping clear of 127.0.0.1,
 * 127.0.0.53 (systemd-resolved) and 127.0.1.1 (Debian's host name), so parallel test
 * files rarely collide. Unique within this process.
 */
export function allocLoopbackIp(): string {
  for (;;) {
    const ip = `127.${16 + crypto.randomInt(224)}.${crypto.randomInt(256)}.${2 + crypto.randomInt(252)}`;
    if (!handedOut.has(ip)) {
      handedOut.add(ip);
      return ip;
    }
  }
}

export interface MxSpec extends Omit<MxOptions, 'host' | 'port'> {
  kind: MxKind;
  name: string;
}

export interface MxSet {
  /** The port every MX of the set listens on. */
  port: number;
  mxs: StartedMx[];
  byName(name: string): StartedMx;
  close(): Promise<void>;
}

const BIND_ATTEMPTS = 10;

/**
 * Starts the MXs on one shared port, each on its own loopback address: the first on
 * port 0, the others on that port; an address already holding the port is replaced.
 */
export async function startMxSet(specs: MxSpec[]): Promise<MxSet> {
  const mxs: StartedMx[] = [];
  try {
    let port = 0;
    for (const { kind, ...opts } of specs) {
      for (let attempt = 1; ; attempt++) {
        try {
          const mx = await startMx(kind, { ...opts, host: allocLoopbackIp(), port });
          mxs.push(mx);
          port = mx.port;
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= BIND_ATTEMPTS) throw err;
        }
      }
    }
    return {
      port,
      mxs,
      byName(name) {
        const mx = mxs.find((m) => m.name === name);
        if (!mx) throw new Error(`no MX named ${name} in this set`);
        return mx;
      },
      close: async () => {
        await Promise.all(mxs.map((mx) => mx.close()));
      },
    };
  } catch (err) {
    await Promise.all(mxs.map((mx) => mx.close()));
    throw err;
  }
}

/**
 * Zone entries for a domain served by these MXs: an MX record each, preferences
 * 10, 20, 30… in the given order, and an A record per MX host name.
 */
export function mxZone(domain: string, mxs: Array<Pick<StartedMx, 'name' | 'host'>>): Zone {
  const zone: Zone = { [domain]: { MX: mxs.map((mx, i) => ({ preference: 10 * (i + 1), exchange: mx.name })) } };
  for (const mx of mxs) zone[mx.name] = { A: [...(zone[mx.name]?.A ?? []), mx.host] };
  return zone;
}
