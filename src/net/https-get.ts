// One HTTPS GET for discovery lookups (MTA-STS policies, WKD keys), where the answer
// decides how mail is protected and so must come from the named host and nowhere else.
//
// Policy:
// - the host's address comes from the configured DNS servers (A, then AAAA) unless the
//   caller resolves it; "no such name/record" is a permanent failure (`no-address`),
//   SERVFAIL, timeouts and refusals are temporary;
// - SNI and the certificate name check use the host name; the chain must lead to the
//   given trust store (the system store when none is given);
// - redirects are never followed: a 3xx is handed back with its Location, no body;
// - only a 200 body is read, capped at `maxBytes` (by Content-Length and while it streams);
// - one deadline covers connect, handshake, headers and body (DNS has its per-query timeout);
// - no agent: no pooled sockets or global options, nothing outlives the request.
// Judging the answer (status, media type, content) is the caller's job.
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { ABSENT_CODES, errorCode, makeResolver } from './dns.ts';

export interface HttpsGetOptions {
  /** "ip" or "ip:port"; empty uses c-ares' defaults (resolv.conf). */
  readonly dnsServers: readonly string[];
  /** DNS per-query timeout, and the deadline of the whole request, in ms. */
  readonly timeoutMs: number;
  /** Largest 200 body accepted, in bytes. */
  readonly maxBytes: number;
  /** Trust store (PEM); the system store when absent. */
  readonly ca?: string | Buffer;
  /** HTTPS port (443; tests change it). */
  readonly port?: number;
  /** Address of the host (null: it has none); by default its A, then AAAA, through `dnsServers`. */
  readonly resolveHost?: (host: string) => string | null | Promise<string | null>;
  /** Accept header. */
  readonly accept?: string;
}

export interface HttpsResponse {
  /** The URL asked, for messages: https://host[:port]/path. */
  readonly url: string;
  readonly status: number;
  /** Content-Type as sent, or null. */
  readonly contentType: string | null;
  /** Location of a redirect, or null. */
  readonly location: string | null;
  /** The body of a 200; empty for every other status (not read). */
  readonly body: Buffer;
}

/**
 * Why a request got no answer. `temporary`: it may pass on its own (DNS failure,
 * connection refused or reset, deadline, cut short); otherwise the setup is wrong.
 */
export type HttpsFailureKind = 'no-address' | 'dns' | 'bad-address' | 'connection' | 'timeout' | 'too-large';

export class HttpsGetError extends Error {
  constructor(
    readonly kind: HttpsFailureKind,
    readonly reason: string,
    readonly temporary: boolean,
  ) {
    super(reason);
    this.name = 'HttpsGetError';
  }
}

const HTTPS_PORT = 443;
/** Connection-level failures that may pass; certificate and protocol errors do not. */
const TEMPORARY_SOCKET_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);


/** The first A, else AAAA, address of `host` through `dnsServers`, or null when it has none. */
export async function resolveHostAddress(host: string, opts: Pick<HttpsGetOptions, 'dnsServers' | 'timeoutMs'>): Promise<string | null> {
  const resolver = makeResolver(opts);
  let temporaryCode: string | null = null;
  for (const lookup of [() => resolver.resolve4(host), () => resolver.resolve6(host)]) {
    try {
      const ips = await lookup();
      if (ips[0]) return ips[0];
    } catch (err) {
      const code = errorCode(err);
      if (!ABSENT_CODES.has(code)) temporaryCode ??= code;
    }
  }
  if (temporaryCode) throw new HttpsGetError('dns', `address lookup of ${host}: ${temporaryCode}`, true);
  return null;
}

function asFailure(err: unknown, url: string): HttpsGetError {
  if (err instanceof HttpsGetError) return err;
  return new HttpsGetError('connection', `${url}: ${(err as Error).message}`, TEMPORARY_SOCKET_CODES.has(errorCode(err)));
}

function readBody(res: IncomingMessage, url: string, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.destroy();
      reject(new HttpsGetError('too-large', `${url}: body of ${declared} bytes exceeds ${maxBytes}`, false));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        res.destroy(new HttpsGetError('too-large', `${url}: body exceeds ${maxBytes} bytes`, false));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('close', () => {
      if (!res.complete) reject(new HttpsGetError('connection', `${url}: response cut short`, true));
    });
  });
}

/** GETs https://`host``path` (path with its query); rejects only with HttpsGetError. */
export async function httpsGet(host: string, path: string, opts: HttpsGetOptions): Promise<HttpsResponse> {
  const port = opts.port ?? HTTPS_PORT;
  const authority = port === HTTPS_PORT ? host : `${host}:${port}`;
  const url = `https://${authority}${path}`;
  const address = opts.resolveHost ? await opts.resolveHost(host) : await resolveHostAddress(host, opts);
  if (address === null) throw new HttpsGetError('no-address', `${host} has no address`, false);
  if (!net.isIP(address)) throw new HttpsGetError('bad-address', `${host} resolved to "${address}", not an IP address`, false);

  return new Promise<HttpsResponse>((resolve, reject) => {
    const req = https.request({
      host: address,
      port,
      path,
      method: 'GET',
      // The certificate is checked against the SNI name (RFC 6125 via tls.checkServerIdentity).
      servername: host,
      headers: { host: authority, 'cache-control': 'no-cache', ...(opts.accept ? { accept: opts.accept } : {}) },
      rejectUnauthorized: true,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      agent: false,
    });
    const timeout = new HttpsGetError('timeout', `${url}: no complete answer within ${opts.timeoutMs} ms`, true);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      req.destroy(timeout);
    }, opts.timeoutMs);
    const settle = (done: () => void) => {
      clearTimeout(timer);
      done();
    };
    req.on('error', (err) => settle(() => reject(asFailure(err, url))));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const head = { url, status, contentType: res.headers['content-type'] ?? null, location: res.headers.location ?? null };
      if (status !== 200) {
        res.resume();
        req.destroy();
        return settle(() => resolve({ ...head, body: Buffer.alloc(0) }));
      }
      readBody(res, url, opts.maxBytes).then(
        (body) => settle(() => resolve({ ...head, body })),
        // A deadline hit while the body streams surfaces as "aborted" on the response.
        (err: unknown) => settle(() => reject(timedOut ? timeout : asFailure(err, url))),
      );
    });
    req.end();
  });
}
