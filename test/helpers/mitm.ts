/**
 * mitm: a STARTTLS-stripping man-in-the-middle for downgrade tests (issue 4).
 *
 * A TCP proxy put in front of a TLS-capable MX (usually by giving the proxy's loopback
 * address to the MX name in the DNS stub, on the MX set's port). In 'strip' mode it
 * does what a real attacker on the path does (RFC 3207 section 6): it removes the
 * STARTTLS keyword from every EHLO reply, keeping the reply valid RFC 5321 (section
 * 4.2.1: every line but the last is "250-", the last is "250 "), and when the client
 * sends STARTTLS anyway it answers 502 itself, so the session can never leave
 * plaintext and the MX records it as a plaintext session. In 'pass' mode it relays
 * bytes untouched (TLS included), for control tests through the same path.
 *
 * In 'strip' mode both directions are read by lines: server replies are held until
 * complete (a reply split over any number of TCP chunks is rewritten as a whole), and
 * client lines are told apart as commands or DATA body (body starts after a 354 and
 * ends at the "." line) so that a body line reading "STARTTLS" is not taken for the
 * command. BDAT (RFC 3030) is not parsed; the test MX does not offer CHUNKING.
 */
import net from 'node:net';
import { allocLoopbackIp } from './mx.ts';

export type MitmMode = 'strip' | 'pass';

export interface StripTlsProxyOptions {
  upstreamHost: string;
  upstreamPort: number;
  /** Bind address. Default: a fresh allocLoopbackIp() (retried on EADDRINUSE). */
  host?: string;
  /** Default 0. Pass an MX set's port so the proxy can stand in for an MX in DNS. */
  port?: number;
  /** Default 'strip'. Can be changed later with setMode(). */
  mode?: MitmMode;
}

export interface StripTlsProxy {
  host: string;
  port: number;
  /** The mode new connections get (an open connection keeps the mode it started with). */
  readonly mode: MitmMode;
  setMode(mode: MitmMode): void;
  /** Client connections accepted so far. */
  readonly connections: number;
  /** EHLO replies from which STARTTLS was removed. */
  readonly strippedEhlo: number;
  /** STARTTLS commands answered with 502 by the proxy and never forwarded. */
  readonly refusedStarttls: number;
  close(): Promise<void>;
}

/** The proxy's own answer to a STARTTLS it refuses to forward (RFC 5321 section 4.2.4). */
export const REFUSE_STARTTLS_REPLY = '502 5.5.1 Command not implemented\r\n';
/** How long close() waits for the listener after destroying the sockets. */
const CLOSE_WAIT_MS = 1000;
const BIND_ATTEMPTS = 10;
/** A reply line: three digits, then "-" (more lines follow), " " or nothing (last line). */
const REPLY_LINE = /^(\d{3})([ -]|\r?\n?$)/;
/** The STARTTLS keyword line of an EHLO reply (RFC 3207 section 4), after the "250-"/"250 " prefix. */
const STARTTLS_KEYWORD = /^STARTTLS(\s|$)/i;
const STARTTLS_COMMAND = /^STARTTLS\s*$/i;

/** Splits `buffered + chunk` into complete lines (each with its line ending) and the unfinished rest. */
function splitLines(buffered: string, chunk: Buffer): { lines: string[]; rest: string } {
  // latin1 maps bytes 1:1 to chars, so 8-bit bodies survive the round trip unchanged.
  const text = buffered + chunk.toString('latin1');
  const lines: string[] = [];
  let start = 0;
  for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
    lines.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
  return { lines, rest: text.slice(start) };
}

/**
 * Removes STARTTLS from a complete reply if it is an EHLO reply advertising it; the
 * first line (the server's name) is never removed, and the new last line gets "250 ".
 * Returns null when there is nothing to strip.
 */
export function stripStarttls(reply: string[]): string[] | null {
  const first = reply[0];
  if (!first?.startsWith('250')) return null;
  const kept = reply.filter((line, i) => i === 0 || !STARTTLS_KEYWORD.test(line.slice(4)));
  if (kept.length === reply.length) return null;
  const last = kept.length - 1;
  kept[last] = `${kept[last]!.slice(0, 3)} ${kept[last]!.slice(4)}`;
  return kept;
}

/** What the client is owed next, in order: a server reply, or the proxy's own 502. */
type Owed = 'server' | 'refusal';

interface Counters {
  strippedEhlo: number;
  refusedStarttls: number;
}

function relay(from: net.Socket, to: net.Socket, transform?: (chunk: Buffer) => string): void {
  from.on('data', (chunk: Buffer) => {
    const out = transform ? transform(chunk) : chunk;
    if (out.length && !to.destroyed && !to.writableEnded && !to.write(typeof out === 'string' ? Buffer.from(out, 'latin1') : out)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
}

/** Wires one client connection to its upstream connection in 'strip' mode. */
function strip(client: net.Socket, upstream: net.Socket, counters: Counters): void {
  const owed: Owed[] = ['server']; // the greeting
  let clientRest = '';
  let inBody = false;
  let serverRest = '';
  let reply: string[] = [];

  const send = (socket: net.Socket, text: string) => {
    if (!socket.destroyed && !socket.writableEnded) socket.write(Buffer.from(text, 'latin1'));
  };
  const payRefusals = () => {
    while (owed[0] === 'refusal') {
      owed.shift();
      counters.refusedStarttls++;
      send(client, REFUSE_STARTTLS_REPLY);
    }
  };

  relay(client, upstream, (chunk) => {
    const { lines, rest } = splitLines(clientRest, chunk);
    clientRest = rest;
    let forward = '';
    for (const line of lines) {
      if (inBody) {
        // RFC 5321 section 4.1.1.4: the body ends at a line holding a single ".".
        if (line === '.\r\n' || line === '.\n') {
          inBody = false;
          owed.push('server');
        }
        forward += line;
      } else if (STARTTLS_COMMAND.test(line)) {
        // Pipelined commands before it are answered first (RFC 2920 section 3.1).
        owed.push('refusal');
        payRefusals();
      } else {
        owed.push('server');
        forward += line;
      }
    }
    return forward;
  });

  relay(upstream, client, (chunk) => {
    const { lines, rest } = splitLines(serverRest, chunk);
    serverRest = rest;
    let forward = '';
    for (const line of lines) {
      reply.push(line);
      const m = REPLY_LINE.exec(line);
      // A continuation line waits for the rest of its reply; anything unparsable ends the reply.
      if (m && m[2] === '-') continue;
      const complete = reply;
      reply = [];
      const stripped = stripStarttls(complete);
      if (stripped) counters.strippedEhlo++;
      // The client may send the body only after this 354 (RFC 5321 section 3.3).
      if (m?.[1] === '354') inBody = true;
      forward += (stripped ?? complete).join('');
      if (owed[0] === 'server') owed.shift();
      if (owed[0] === 'refusal') {
        // Keep the order: this reply first, then the owed 502.
        send(client, forward);
        forward = '';
        payRefusals();
      }
    }
    return forward;
  });

  // Whatever is left unfinished when a side ends is passed on as it is.
  client.on('end', () => {
    if (clientRest) send(upstream, clientRest);
    clientRest = '';
  });
  upstream.on('end', () => {
    const unfinished = reply.join('') + serverRest;
    if (unfinished) send(client, unfinished);
    reply = [];
    serverRest = '';
  });
}

async function listen(server: net.Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startStripTlsProxy(opts: StripTlsProxyOptions): Promise<StripTlsProxy> {
  let mode: MitmMode = opts.mode ?? 'strip';
  let connections = 0;
  const counters: Counters = { strippedEhlo: 0, refusedStarttls: 0 };
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };

  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect({ host: opts.upstreamHost, port: opts.upstreamPort });
    track(client);
    track(upstream);
    // Wired first, so that strip()'s own 'end' handlers flush before the other side is ended.
    if (mode === 'pass') {
      relay(client, upstream);
      relay(upstream, client);
    } else {
      strip(client, upstream, counters);
    }
    // Either side failing takes the other down; either side finishing ends the other
    // (end() flushes what is still queued, so a last "221" still reaches the client).
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('end', () => {
        if (!b.destroyed) b.end();
      });
      a.on('close', () => {
        if (!b.destroyed) b.end();
      });
    }
  });

  let host = opts.host ?? allocLoopbackIp();
  for (let attempt = 1; ; attempt++) {
    try {
      await listen(server, host, opts.port ?? 0);
      break;
    } catch (err) {
      // A random loopback address may already hold the wanted port: take another one.
      const retry = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && !opts.host && opts.port && attempt < BIND_ATTEMPTS;
      if (!retry) throw err;
      host = allocLoopbackIp();
    }
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    get mode() {
      return mode;
    },
    setMode(next) {
      mode = next;
    },
    get connections() {
      return connections;
    },
    get strippedEhlo() {
      return counters.strippedEhlo;
    },
    get refusedStarttls() {
      return counters.refusedStarttls;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
