// One webhook request: POST a JSON body, and say what the receiver answered. Only the
// status counts (2xx: delivered); the receiver's body is read and thrown away, never
// kept or logged. Redirects are not followed (node:http never does): a 3xx is a
// failure to retry, as the receiver's URL is the operator's to fix. One deadline
// covers connect, TLS, sending and the status line. Sockets are kept alive per
// endpoint origin (a busy endpoint gets a request per event). Certificates are
// checked against Node's CA bundle (NODE_EXTRA_CA_CERTS adds a private CA).
import http from 'node:http';
import https from 'node:https';

export type PostResult = { readonly status: number } | { readonly status: null; readonly error: string };

export interface Poster {
  post(url: string, headers: Readonly<Record<string, string>>, body: string, timeoutMs: number): Promise<PostResult>;
  /** Closes the idle sockets. */
  close(): void;
}

/** Idle sockets kept per origin: enough for an endpoint's concurrency. */
const MAX_FREE_SOCKETS = 16;

export function createPoster(): Poster {
  const agents = { http: new http.Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS }), https: new https.Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS }) };
  return {
    post(url, headers, body, timeoutMs) {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      const payload = Buffer.from(body);
      return new Promise<PostResult>((resolve) => {
        let settled = false;
        const done = (result: PostResult) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(result);
        };
        const req = (secure ? https : http).request(
          target,
          { method: 'POST', agent: secure ? agents.https : agents.http, headers: { ...headers, 'Content-Length': String(payload.length) } },
          (res) => {
            // Drained so the socket can serve the next request; the content is not ours to keep.
            res.resume();
            res.on('end', () => done({ status: res.statusCode ?? 0 }));
            res.on('error', () => done({ status: res.statusCode ?? 0 }));
          },
        );
        const timer = setTimeout(() => {
          done({ status: null, error: `no answer within ${timeoutMs / 1000} s` });
          req.destroy();
        }, timeoutMs);
        req.on('error', (err: NodeJS.ErrnoException) => done({ status: null, error: reasonOf(err) }));
        req.end(payload);
      });
    },
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** A short reason of ours: the error code and what it means, never anything the peer sent. */
function reasonOf(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ENOTFOUND':
      return 'no such host';
    case 'EAI_AGAIN':
      return 'DNS lookup failed (temporary)';
    case 'ETIMEDOUT':
      return 'connection timed out';
    default:
      return err.code ? `${err.code}: ${err.message}` : err.message;
  }
}
