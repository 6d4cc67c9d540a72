#!/usr/bin/env node
// A throwaway receiving mail server for trying SealRelay on one machine (README,
// "A first delivery on one machine"): smtp-server on 127.0.0.1 that offers STARTTLS
// with smtp-server's own self-signed localhost certificate, accepts every message,
// keeps nothing, and prints one line per message with the TLS it negotiated itself —
// the receiver's own view, to compare with what `sealrelay log` records.
// Usage: node scripts/local-mx.mjs [PORT]   (default 2527; 0 picks a free port)
import { SMTPServer } from 'smtp-server';

const say = (line) => process.stdout.write(`${line}\n`);
const complain = (line) => process.stderr.write(`${line}\n`);

const arg = process.argv[2] ?? '2527';
const port = Number(arg);
if (!/^\d+$/.test(arg) || port > 65535) {
  complain(`usage: node scripts/local-mx.mjs [PORT]  (not a port: "${arg}")`);
  process.exit(64);
}

const server = new SMTPServer({
  name: 'mx.localhost',
  authOptional: true,
  disabledCommands: ['AUTH'],
  // No key or certificate given: smtp-server offers STARTTLS with its built-in one.
  onData(stream, session, callback) {
    let bytes = 0;
    stream.on('data', (chunk) => (bytes += chunk.length));
    stream.on('end', () => {
      const tls = session.secure && session.tlsOptions ? `${session.tlsOptions.version} ${session.tlsOptions.standardName ?? session.tlsOptions.name}` : 'no TLS (plaintext)';
      const to = session.envelope.rcptTo.map((r) => r.address).join(', ');
      // Only the envelope and the size: a message body is never printed.
      say(`local-mx: received ${bytes} bytes from <${session.envelope.mailFrom ? session.envelope.mailFrom.address : ''}> to ${to} over ${tls}`);
      callback(null, 'Ok: received by local-mx');
    });
  },
});
server.on('error', (err) => complain(`local-mx: ${err.message}`));
server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.server.address();
  say(`local-mx: listening on 127.0.0.1:${bound} (STARTTLS offered; messages are counted, not kept)`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
