// receiver: the receiving MX of the benchmark, run as its own child process
// (receiver-process.ts starts it) so that it competes for the two cores like the
// reference's receiving Postfix does, instead of hiding inside the load
// generator's event loop.
//
// It accepts every sender and recipient, offers STARTTLS with a certificate from
// the bench's throwaway CA and refuses anything below TLS 1.3 (the hop under test
// is "TLS 1.3 on the delivery hop"). Per message it notes when the final dot was
// read and the X-Bench-Id header the load generator put in, so the parent can
// compute end-to-end latency per message. Per connection it notes the negotiated
// TLS version, so the results show how many connections carried the load (one per
// message for stock Postfix, far fewer with connection reuse).
//
// Talks to the parent over the IPC channel only:
//   child → parent  {type:'ready', port}            once listening
//                   {type:'reached', n, at}          when the n-th message has landed
//                   {type:'report', report}          answer to 'report'
//   parent → child  {type:'expect', n} | {type:'reset'} | {type:'report'} | {type:'stop'}
// argv: CERT_FILE KEY_FILE
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { SMTPServer } from 'smtp-server';
import { epochMs } from './clock.ts';

export type ReceiverRequest = { type: 'expect'; n: number } | { type: 'reset' } | { type: 'report' } | { type: 'stop' };

export interface ReceiverReport {
  landed: number;
  bytes: number;
  /** Connections opened to the receiver since the last reset. */
  connections: number;
  /** Connections that carried at least one message. */
  connectionsWithMail: number;
  /** Negotiated TLS version → connections that carried mail (e.g. {"TLSv1.3": 12}); "none" for plaintext ones. */
  tlsConnections: Record<string, number>;
  /** Messages that arrived without TLS (must be 0 for the hop to count as encrypted). */
  plaintextMessages: number;
  firstLandedAt: number | null;
  lastLandedAt: number | null;
  /** [X-Bench-Id, epoch ms landed]; messages without the header are counted but not listed. */
  landings: [string, number][];
}

export type ReceiverMessage = { type: 'ready'; port: number } | { type: 'reached'; n: number; at: number } | { type: 'report'; report: ReceiverReport };

/** The header is among the first lines; stop looking after this many bytes of a message. */
const HEADER_SCAN_BYTES = 16 * 1024;
const ID_HEADER = /^X-Bench-Id:[ \t]*(\S+)/im;

function send(message: ReceiverMessage): void {
  process.send?.(message);
}

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile || !process.send) {
  console.error('receiver: run me through receiver-process.ts (argv: CERT_FILE KEY_FILE, with an IPC channel)');
  process.exit(64);
}

let stats = fresh();
let expected: number | null = null;
/** Messages per connection since the last reset, by smtp-server session id. */
const mailPerConnection = new Map<string, number>();
/**
 * TLS version of every connection seen, kept across resets: a relay that reuses
 * connections opened during the warm-up carries measured mail over them.
 */
const protocolBySession = new Map<string, string>();

function fresh(): ReceiverReport {
  return {
    landed: 0,
    bytes: 0,
    connections: 0,
    connectionsWithMail: 0,
    tlsConnections: {},
    plaintextMessages: 0,
    firstLandedAt: null,
    lastLandedAt: null,
    landings: [],
  };
}

const server = new SMTPServer({
  name: 'mx.bench.test',
  banner: 'bench receiver',
  key: readFileSync(keyFile),
  cert: readFileSync(certFile),
  minVersion: 'TLSv1.3',
  authOptional: true,
  disabledCommands: ['AUTH'],
  disableReverseLookup: true,
  logger: false,
  // The relays under test hold connections open between messages; never cut them short mid-run.
  socketTimeout: 120_000,
  onConnect(_session, callback) {
    stats.connections++;
    callback();
  },
  onSecure(socket, session, callback) {
    protocolBySession.set(session.id, (socket as TLSSocket).getProtocol?.() ?? 'unknown');
    callback();
  },
  onClose(session) {
    // Only connections still open can carry more mail; a closed one is already counted.
    if (!mailPerConnection.has(session.id)) protocolBySession.delete(session.id);
  },
  onData(stream, session, callback) {
    let head = '';
    let id: string | null = null;
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (id === null && head.length < HEADER_SCAN_BYTES) {
        head += chunk.toString('latin1');
        id = ID_HEADER.exec(head)?.[1] ?? null;
      }
    });
    stream.on('end', () => {
      const at = epochMs();
      stats.landed++;
      stats.bytes += bytes;
      stats.firstLandedAt ??= at;
      stats.lastLandedAt = at;
      if (id !== null) stats.landings.push([id, at]);
      if (!session.secure) stats.plaintextMessages++;
      const seen = mailPerConnection.get(session.id) ?? 0;
      if (seen === 0) {
        stats.connectionsWithMail++;
        const protocol = protocolBySession.get(session.id) ?? 'none';
        stats.tlsConnections[protocol] = (stats.tlsConnections[protocol] ?? 0) + 1;
      }
      mailPerConnection.set(session.id, seen + 1);
      if (expected !== null && stats.landed >= expected) {
        send({ type: 'reached', n: expected, at });
        expected = null;
      }
      callback(null, 'Ok: landed');
    });
  },
});

server.on('error', (err) => console.error(`receiver: ${err.message}`));

process.on('message', (request: ReceiverRequest) => {
  switch (request.type) {
    case 'expect':
      if (stats.landed >= request.n) send({ type: 'reached', n: request.n, at: stats.lastLandedAt ?? epochMs() });
      else expected = request.n;
      break;
    case 'reset':
      stats = fresh();
      expected = null;
      mailPerConnection.clear();
      break;
    case 'report':
      send({ type: 'report', report: stats });
      break;
    case 'stop':
      server.close(() => process.exit(0));
      // Connections the relay keeps open would hold close() up; do not wait for them.
      setTimeout(() => process.exit(0), 1000).unref();
      break;
  }
});
// An orphaned receiver must not outlive the benchmark.
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  const address = server.server.address();
  send({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
});
