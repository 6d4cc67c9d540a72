/**
 * sni-https-server: a loopback HTTPS server that stands in for many host names at once.
 *
 * The WKD and MTA-STS test hosts both need one server on 127.0.0.1 port 0 that presents,
 * per SNI name, a certificate issued by a test CA for that name, for another name, or
 * self-signed, so a client's certificate checks can be exercised name by name. This
 * module does the TLS side and the shutdown, plus the few ways of answering both use;
 * the caller decides the certificate kind per name and what each request gets.
 */
import type http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { CertAndKey, TestCa } from './test-ca.ts';

export type CertKind = 'valid' | 'wrong-name' | 'self-signed';

export interface SniHttpsOptions {
  ca: TestCa;
  /** The certificate kind for a (normalized) SNI name, asked on every handshake. */
  certKindFor(servername: string): CertKind;
  /** The name on the `valid` certificate presented to clients that send no SNI. */
  fallbackName: string;
  onRequest(req: http.IncomingMessage, res: http.ServerResponse): void;
}

export interface SniHttpsServer {
  host: '127.0.0.1';
  port: number;
  /** Stops listening and destroys open connections; safe to call more than once. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

/** Lower case, without a trailing dot: how host names are compared here. */
export const normalizeHost = (name: string) => name.toLowerCase().replace(/\.$/, '');

/** The request's Host header without its port, normalized. */
export const requestHost = (req: http.IncomingMessage) => normalizeHost((req.headers.host ?? '').replace(/:\d+$/, ''));

export function notFound(res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
}

/** Ends the response with `body`: whole, or in several writes so a client reading a chunked stream must cap it itself. */
export function endWithBody(res: http.ServerResponse, body: Buffer, chunked: boolean): void {
  if (!chunked) {
    res.end(body);
    return;
  }
  const CHUNK = 8192;
  for (let at = 0; at < body.length; at += CHUNK) res.write(body.subarray(at, at + CHUNK));
  res.end();
}

/** Runs `answer` after `delayMs` (at once without one), or never if the client goes away first. */
export function answerAfter(res: http.ServerResponse, delayMs: number | undefined, answer: () => void): void {
  if (!delayMs) {
    answer();
    return;
  }
  const timer = setTimeout(answer, delayMs);
  res.on('close', () => clearTimeout(timer));
}

export async function startSniHttpsServer(opts: SniHttpsOptions): Promise<SniHttpsServer> {
  const { ca } = opts;
  const contexts = new Map<string, tls.SecureContext>();
  const sockets = new Set<net.Socket>();

  function issue(kind: CertKind, name: string): CertAndKey {
    if (kind === 'self-signed') return ca.selfSigned({ commonName: name });
    return ca.issue({ commonName: kind === 'valid' ? name : `wrong-name.${name}.invalid` });
  }

  /** Contexts are made on first use and kept: signing takes a few ms each. */
  function contextFor(servername: string): tls.SecureContext {
    const name = normalizeHost(servername);
    const kind = opts.certKindFor(name);
    const key = `${kind} ${name}`;
    let context = contexts.get(key);
    if (!context) {
      const { certPem, keyPem } = issue(kind, name);
      context = tls.createSecureContext({ cert: kind === 'self-signed' ? certPem : certPem + ca.certPem, key: keyPem });
      contexts.set(key, context);
    }
    return context;
  }

  const fallback = issue('valid', opts.fallbackName);
  const server = https.createServer({
    cert: fallback.certPem,
    key: fallback.keyPem,
    SNICallback: (servername, callback) => {
      try {
        callback(null, contextFor(servername));
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // Clients that reject the certificate are the point of many tests, not a server fault.
  server.on('tlsClientError', () => undefined);
  server.on('request', opts.onRequest);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    host: HOST,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
