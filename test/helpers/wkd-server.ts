/**
 * wkd-server: an OpenPGP Web Key Directory host for tests, HTTPS on 127.0.0.1 port 0.
 *
 * One server stands in for every `openpgpkey.<domain>` (advanced method) and `<domain>`
 * (direct method) host: it picks the certificate by SNI (issued by a test CA for that
 * name, or for another name, or self-signed, on request) and the answer by the Host
 * header and the path, so a test points an A record in the DNS stub at 127.0.0.1 and
 * the lookup's `port` at `server.port`. Keys are served as given (binary), by hash,
 * with application/octet-stream; anything not served answers 404. Every request is
 * recorded with its query, so a test can tell which method was used.
 */
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { sharedTestCa, type CertAndKey, type TestCa } from './test-ca.ts';

export interface WkdResponse {
  body?: Uint8Array | string;
  /** HTTP status, default 200. */
  status?: number;
  /** false sends the body chunked, without Content-Length (default true). */
  contentLength?: boolean;
  /** Answer only after this many ms. */
  delayMs?: number;
}

export type CertKind = 'valid' | 'wrong-name' | 'self-signed';

export interface WkdRequest {
  host: string;
  path: string;
  /** The query string without "?", e.g. "l=joe". */
  query: string;
}

export interface WkdServer {
  host: '127.0.0.1';
  port: number;
  /** The CA that issued the certificates: pass as the lookup's `ca`. */
  caPem: string;
  /** What GET https://`host``path` answers, whatever the query. */
  serve(host: string, path: string, response: WkdResponse | Uint8Array): void;
  /** The certificate presented for `host` (default `valid`). */
  certificate(host: string, kind: CertKind): void;
  /** Every request so far, in order. */
  requests: WkdRequest[];
  close(): Promise<void>;
}

/** Path of a key by the advanced method, on openpgpkey.<domain>. */
export const advancedPath = (domain: string, hash: string) => `/.well-known/openpgpkey/${domain}/hu/${hash}`;
/** Path of a key by the direct method, on <domain>. */
export const directPath = (hash: string) => `/.well-known/openpgpkey/hu/${hash}`;

const HOST = '127.0.0.1';
const normalize = (name: string) => name.toLowerCase().replace(/\.$/, '');

export async function startWkdServer(opts: { ca?: TestCa } = {}): Promise<WkdServer> {
  const ca = opts.ca ?? sharedTestCa();
  const responses = new Map<string, WkdResponse>();
  const certKinds = new Map<string, CertKind>();
  const contexts = new Map<string, tls.SecureContext>();
  const sockets = new Set<net.Socket>();
  const requests: WkdRequest[] = [];

  function issue(kind: CertKind, name: string): CertAndKey {
    if (kind === 'self-signed') return ca.selfSigned({ commonName: name });
    return ca.issue({ commonName: kind === 'valid' ? name : `wrong-name.${name}.invalid` });
  }

  /** Contexts are made on first use and kept: signing takes a few ms each. */
  function contextFor(servername: string): tls.SecureContext {
    const name = normalize(servername);
    const kind = certKinds.get(name) ?? 'valid';
    const key = `${kind} ${name}`;
    let context = contexts.get(key);
    if (!context) {
      const { certPem, keyPem } = issue(kind, name);
      context = tls.createSecureContext({ cert: kind === 'self-signed' ? certPem : certPem + ca.certPem, key: keyPem });
      contexts.set(key, context);
    }
    return context;
  }

  // For clients that send no SNI (the lookup always sends it).
  const fallback = issue('valid', 'wkd.default.invalid');
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
  server.on('tlsClientError', () => undefined);

  server.on('request', (req, res) => {
    const host = normalize((req.headers.host ?? '').replace(/:\d+$/, ''));
    const [path = '', query = ''] = (req.url ?? '').split('?', 2);
    requests.push({ host, path, query });
    const response = responses.get(`${host}${path}`);
    const answer = () => {
      if (!response) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const body = Buffer.from(response.body ?? '');
      const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
      if (response.contentLength !== false) headers['content-length'] = body.length;
      res.writeHead(response.status ?? 200, headers);
      if (response.contentLength === false) {
        // Several writes so the client sees a chunked stream it must cap itself.
        const CHUNK = 8192;
        for (let at = 0; at < body.length; at += CHUNK) res.write(body.subarray(at, at + CHUNK));
        res.end();
      } else {
        res.end(body);
      }
    };
    if (response?.delayMs) {
      const timer = setTimeout(answer, response.delayMs);
      res.on('close', () => clearTimeout(timer));
    } else {
      answer();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    host: HOST,
    port,
    caPem: ca.certPem,
    requests,
    serve(host, path, response) {
      responses.set(`${normalize(host)}${path}`, response instanceof Uint8Array ? { body: response } : response);
    },
    certificate(host, kind) {
      certKinds.set(normalize(host), kind);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
