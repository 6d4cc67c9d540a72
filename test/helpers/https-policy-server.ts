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
import { answerAfter, endWithBody, normalizeHost, notFound, requestHost, startSniHttpsServer, type CertKind } from './sni-https-server.ts';
import { sharedTestCa, type TestCa } from './test-ca.ts';

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
  cert?: CertKind;
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

const DEFAULT_CONTENT_TYPE = 'text/plain; charset=utf-8';

/** A policy file as RFC 8461 §3.2 writes it (CRLF line ends). */
export function policyText(policy: { mode: string; mx: string[]; maxAge: number; version?: string }): string {
  return [`version: ${policy.version ?? 'STSv1'}`, `mode: ${policy.mode}`, ...policy.mx.map((mx) => `mx: ${mx}`), `max_age: ${policy.maxAge}`, ''].join('\r\n');
}

export async function startPolicyServer(opts: { ca?: TestCa } = {}): Promise<PolicyServer> {
  const ca = opts.ca ?? sharedTestCa();
  const responses = new Map<string, PolicyResponse>();
  const counts = new Map<string, number>();

  const server = await startSniHttpsServer({
    ca,
    certKindFor: (name) => responses.get(name.replace(/^mta-sts\./, ''))?.cert ?? 'valid',
    // For clients that send no SNI (the fetch always sends it).
    fallbackName: 'mta-sts.default.invalid',
    onRequest(req, res) {
      const domain = requestHost(req).replace(/^mta-sts\./, '');
      counts.set(domain, (counts.get(domain) ?? 0) + 1);
      const response = responses.get(domain);
      answerAfter(res, response?.delayMs, () => {
        if (!response || req.url !== POLICY_PATH) {
          notFound(res);
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
          answerAfter(res, response.bodyDelayMs, () => res.end(body.subarray(half)));
        } else {
          endWithBody(res, body, response.contentLength === false);
        }
      });
    },
  });

  return {
    host: server.host,
    port: server.port,
    caPem: ca.certPem,
    set(domain, response) {
      responses.set(normalizeHost(domain), typeof response === 'string' ? { body: response } : response);
    },
    remove(domain) {
      responses.delete(normalizeHost(domain));
    },
    requests: (domain) => counts.get(normalizeHost(domain)) ?? 0,
    close: server.close,
  };
}
