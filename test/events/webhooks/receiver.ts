/**
 * receiver: a real webhook receiver on 127.0.0.1 (node:http), as a customer would run
 * one. It keeps every request exactly as it arrived (headers, raw body) and answers
 * with what the test's `answer` says: a status, or `hold` (no answer until release()).
 * stop() closes it so that connections are refused; start() opens it again on the
 * same port (a dead endpoint that comes back).
 */
import { createHmac } from 'node:crypto';
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The raw body, as sent (what the signature covers). */
  readonly body: string;
  /** The status this receiver answered; null while held (or never answered). */
  status: number | null;
}

/** A status; a redirect (status and Location); or no answer until release(). */
export type Answer = number | { readonly status: number; readonly location: string } | 'hold';

export interface Receiver {
  readonly port: number;
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Decides each answer; the default is 200. */
  answer: (req: ReceivedRequest, index: number) => Answer;
  /** Answers every held request with `status`. */
  release(status?: number): void;
  /** Closes the server and every connection: the port refuses from now on. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Waits until `predicate` holds for the requests so far. */
  waitFor(predicate: (requests: ReceivedRequest[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** The requests answered 2xx, in the order they arrived. */
  accepted(): ReceivedRequest[];
}

export async function startReceiver(path = '/hooks/sealrelay', port = 0): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const held: { req: ReceivedRequest; res: ServerResponse }[] = [];
  let server: http.Server | null = null;
  const listen = (on: number) =>
    new Promise<number>((resolve, reject) => {
      const s = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const got: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status: null };
          requests.push(got);
          const answer = receiver.answer(got, requests.length - 1);
          if (answer === 'hold') held.push({ req: got, res });
          else reply(got, res, answer);
        });
      });
      s.keepAliveTimeout = 1000;
      s.once('error', reject);
      s.listen(on, '127.0.0.1', () => {
        server = s;
        resolve((s.address() as AddressInfo).port);
      });
    });
  const reply = (got: ReceivedRequest, res: ServerResponse, answer: Exclude<Answer, 'hold'>) => {
    const status = typeof answer === 'number' ? answer : answer.status;
    got.status = status;
    res.writeHead(status, { 'Content-Type': 'text/plain', ...(typeof answer === 'number' ? {} : { Location: answer.location }) }).end(status < 300 ? 'ok' : 'not now');
  };
  const bound = await listen(port);
  const receiver: Receiver = {
    port: bound,
    url: `http://127.0.0.1:${bound}${path}`,
    requests,
    answer: () => 200,
    release(status = 200) {
      for (const { req, res } of held.splice(0)) if (!res.destroyed) reply(req, res, status);
    },
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      held.splice(0);
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
    async start() {
      if (!server) await listen(bound);
    },
    async waitFor(predicate, timeoutMs = 20_000, what = 'webhook requests') {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(requests)) {
        if (Date.now() > deadline) throw new Error(`${what}: never came; ${requests.length} request(s): ${JSON.stringify(requests.map((r) => [r.headers['sealrelay-event-id'], r.status]))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    accepted: () => requests.filter((r) => r.status !== null && r.status >= 200 && r.status < 300),
  };
  return receiver;
}

/**
 * The test's own check of a signature, written from the header's description with
 * node:crypto (not the code under test): `t` and every `v1`, HMAC-SHA256 of "t.body".
 */
export function independentlyVerified(req: Pick<ReceivedRequest, 'headers' | 'body'>, secret: string): { t: number; keyIds: string[]; ok: boolean } {
  const header = String(req.headers['sealrelay-signature'] ?? '');
  const fields = header.split(',').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] as const);
  const t = Number(fields.find(([k]) => k === 't')?.[1]);
  const expected = createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${t}.${req.body}`, 'utf8').digest('hex');
  return { t, keyIds: fields.filter(([k]) => k === 'k').map(([, v]) => v), ok: fields.some(([k, v]) => k === 'v1' && v === expected) };
}

/** The event each request carried, parsed. */
export function payloadOf(req: Pick<ReceivedRequest, 'body'>): Record<string, unknown> & { id: string; type: string; queue_id: string; seq: number } {
  return JSON.parse(req.body) as Record<string, unknown> & { id: string; type: string; queue_id: string; seq: number };
}
