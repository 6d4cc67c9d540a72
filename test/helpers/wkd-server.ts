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
import { answerAfter, endWithBody, normalizeHost, notFound, requestHost, startSniHttpsServer, type CertKind } from './sni-https-server.ts';
import { sharedTestCa, type TestCa } from './test-ca.ts';

export type { CertKind } from './sni-https-server.ts';

export interface WkdResponse {
  body?: Uint8Array | string;
  /** HTTP status, default 200. */
  status?: number;
  /** false sends the body chunked, without Content-Length (default true). */
  contentLength?: boolean;
  /** Answer only after this many ms. */
  delayMs?: number;
}

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

export async function startWkdServer(opts: { ca?: TestCa } = {}): Promise<WkdServer> {
  const ca = opts.ca ?? sharedTestCa();
  const responses = new Map<string, WkdResponse>();
  const certKinds = new Map<string, CertKind>();
  const requests: WkdRequest[] = [];

  const server = await startSniHttpsServer({
    ca,
    certKindFor: (name) => certKinds.get(name) ?? 'valid',
    // For clients that send no SNI (the lookup always sends it).
    fallbackName: 'wkd.default.invalid',
    onRequest(req, res) {
      const host = requestHost(req);
      const [path = '', query = ''] = (req.url ?? '').split('?', 2);
      requests.push({ host, path, query });
      const response = responses.get(`${host}${path}`);
      answerAfter(res, response?.delayMs, () => {
        if (!response) {
          notFound(res);
          return;
        }
        const body = Buffer.from(response.body ?? '');
        const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
        if (response.contentLength !== false) headers['content-length'] = body.length;
        res.writeHead(response.status ?? 200, headers);
        endWithBody(res, body, response.contentLength === false);
      });
    },
  });

  return {
    host: server.host,
    port: server.port,
    caPem: ca.certPem,
    requests,
    serve(host, path, response) {
      responses.set(`${normalizeHost(host)}${path}`, response instanceof Uint8Array ? { body: response } : response);
    },
    certificate(host, kind) {
      certKinds.set(normalizeHost(host), kind);
    },
    close: server.close,
  };
}
