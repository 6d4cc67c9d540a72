/**
 * https-policy-server: an MTA-STS policy host for tests, HTTPS on 127.0.0.1 port 0.
 *
 * One server stands in for every `mta-sts.<domain>` host: it picks the certificate by
 * SNI (issued by a test CA for mta-sts.<domain>, or for another name on request) and
 * the answer by the Host header, so a test points `resolveHost` (or an A record in the
 * DNS stub) at 127.0.0.1 and the `port` option at `server.port`.
 *
 * Per domain it serves a policy text with `text/plain`, or a chosen failure: a status
 * (404, 500, a 3xx redirect with Location), a wrong content type, a body larger than
 * asked for (with or without Content-Length), a delay (before the answer or in the
 * middle of the body), or a certificate for the wrong
 * name or self-signed. It counts the requests per domain, so a test can tell a cache
 * hit from a refetch. Domains it does not know get 404.
 */
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { sharedTestCa, type CertAndKey, type TestCa } from './test-ca.ts';

export const POLICY_PATH = '/.well-known/mta-sts.txt';

export interface PolicyResponse {
  /** Body; a string is sent as UTF-8. */
  body?: string | Buffer;
  /** HTTP status, default 200. */
  status?: number;
  /** Location header (for redirects). */
  location?: string;
  /** Content-Type; default "text/plain; charset=utf-8"; null sends none. */
  contentType?: string | null;
  /** false sends the body chunked, without Content-Length (default true). */
  contentLength?: boolean;
  /** Answer only after this many ms. */
  delayMs?: number;
  /** Send the headers and the first half of the body, the rest after this many ms. */
  bodyDelayMs?: number;
  /** The certificate presented for mta-sts.<domain>: default `valid`. */
  cert?: 'valid' | 'wrong-name' | 'self-signed';
}

export interface PolicyServer {
  host: '127.0.0.1';
  port: number;
  /** The CA that issued the certificates: pass as the fetch's `ca`. */
  caPem: string;
  /** Sets what `https://mta-sts.<domain>/.well-known/mta-sts.txt` answers. */
  set(domain: string, response: string | PolicyResponse): void;
  /** Forgets a domain: it answers 404 from now on. */
  remove(domain: string): void;
  /** Requests for the policy of `domain` so far (any status). */
  requests(domain: string): number;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const DEFAULT_CONTENT_TYPE = 'text/plain; charset=utf-8';

/** A policy file as RFC 8461 §3.2 writes it (CRLF line ends). */
export function policyText(policy: { mode: string; mx: string[]; maxAge: number; version?: string }): string {
  return [`version: ${policy.version ?? 'STSv1'}`, `mode: ${policy.mode}`, ...policy.mx.map((mx) => `mx: ${mx}`), `max_age: ${policy.maxAge}`, ''].join('\r\n');
}

const normalize = (name: string) => name.toLowerCase().replace(/\.$/, '');

export async function startPolicyServer(opts: { ca?: TestCa } = {}): Promise<PolicyServer> {
  const ca = opts.ca ?? sharedTestCa();
  const responses = new Map<string, PolicyResponse>();
  const counts = new Map<string, number>();
  const certs = new Map<string, CertAndKey>();
  const contexts = new Map<string, tls.SecureContext>();
  const sockets = new Set<net.Socket>();

  /** Certificates are issued on first use and kept: signing takes a few ms each. */
  function certFor(kind: NonNullable<PolicyResponse['cert']>, servername: string): CertAndKey {
    const key = `${kind} ${servername}`;
    let cert = certs.get(key);
    if (!cert) {
      if (kind === 'valid') cert = ca.issue({ commonName: servername });
      else if (kind === 'self-signed') cert = ca.selfSigned({ commonName: servername });
      else cert = ca.issue({ commonName: `wrong-name.${servername}.invalid` });
      certs.set(key, cert);
    }
    return cert;
  }

  function contextFor(servername: string): tls.SecureContext {
    const name = normalize(servername);
    const domain = name.replace(/^mta-sts\./, '');
    const kind = responses.get(domain)?.cert ?? 'valid';
    const key = `${kind} ${name}`;
    let context = contexts.get(key);
    if (!context) {
      const { certPem, keyPem } = certFor(kind, name);
      context = tls.createSecureContext({ cert: kind === 'self-signed' ? certPem : certPem + ca.certPem, key: keyPem });
      contexts.set(key, context);
    }
    return context;
  }

  // A default certificate for clients that send no SNI (the fetch always sends it).
  const fallback = certFor('valid', 'mta-sts.default.invalid');
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
    const domain = normalize((req.headers.host ?? '').replace(/:\d+$/, '')).replace(/^mta-sts\./, '');
    counts.set(domain, (counts.get(domain) ?? 0) + 1);
    const response = responses.get(domain);
    const answer = () => {
      if (!response || req.url !== POLICY_PATH) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const body = Buffer.from(response.body ?? '');
      const headers: Record<string, string | number> = {};
      const contentType = response.contentType === undefined ? DEFAULT_CONTENT_TYPE : response.contentType;
      if (contentType !== null) headers['content-type'] = contentType;
      if (response.location) headers.location = response.location;
      if (response.contentLength !== false) headers['content-length'] = body.length;
      res.writeHead(response.status ?? 200, headers);
      if (response.bodyDelayMs) {
        const half = Math.floor(body.length / 2);
        res.write(body.subarray(0, half));
        const timer = setTimeout(() => res.end(body.subarray(half)), response.bodyDelayMs);
        res.on('close', () => clearTimeout(timer));
      } else if (response.contentLength === false) {
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
    set(domain, response) {
      responses.set(normalize(domain), typeof response === 'string' ? { body: response } : response);
    },
    remove(domain) {
      responses.delete(normalize(domain));
    },
    requests: (domain) => counts.get(normalize(domain)) ?? 0,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
