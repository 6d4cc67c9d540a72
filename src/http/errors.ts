// Every failure answers with a page (or, for API clients, JSON) that says plainly
// what happened and what to do next, never a stack trace or an internal message.
// Server faults are logged with the route's pattern (not the URL: portal URLs
// carry tokens) and a reference the page shows, so a report can be matched to a
// log line.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.ts';
import { CsrfError } from './csrf.ts';
import { html } from '../html.ts';
import { sendPage } from './layout.ts';
import { StateChangeOnSafeRequest } from './safe-requests.ts';

/** A failure with a status and the words to show for it. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(title);
    this.name = 'HttpError';
  }
}

/** 429: the caller must wait until `retryAt` (epoch ms). */
export class TooManyRequests extends HttpError {
  /** For the Retry-After header. */
  readonly retryAfterSeconds: number;
  constructor(
    readonly retryAt: number,
    now: number,
  ) {
    super(429, 'Too many attempts', `To keep this safe, further attempts are paused. You can try again after ${clock(retryAt)} (${waitText(retryAt - now)}).`);
    this.name = 'TooManyRequests';
    this.retryAfterSeconds = Math.max(1, Math.ceil((retryAt - now) / 1000));
  }
}

interface Explained {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
}

const NOT_FOUND: Explained = {
  status: 404,
  title: 'Page not found',
  detail: 'The address may be mistyped, or the page may no longer exist. If you followed a link from an email, check that the whole link was copied.',
};
const FORM_REFUSED: Explained = {
  status: 403,
  title: 'This form can no longer be sent',
  detail: 'For your safety, a form works only from the page that showed it, and only for a limited time. Go back, reload the page and send the form again.',
};
const BAD_REQUEST: Explained = { status: 400, title: 'We could not read that request', detail: 'What was sent was not in the expected form. Go back and try again.' };
const TOO_LARGE: Explained = { status: 413, title: 'That was too large to send', detail: 'Send less at once, or send a smaller file.' };
const UNAVAILABLE: Explained = { status: 503, title: 'The service is restarting', detail: 'Try again in a minute.' };

function explain(err: FastifyError | Error, reference: string): Explained {
  if (err instanceof HttpError) return { status: err.statusCode, title: err.title, detail: err.detail };
  if (err instanceof CsrfError) return FORM_REFUSED;
  const status = (err as FastifyError).statusCode ?? 500;
  if (status === 404) return NOT_FOUND;
  if (status === 413) return TOO_LARGE;
  if (status === 503) return UNAVAILABLE;
  if (status >= 400 && status < 500 && !(err instanceof StateChangeOnSafeRequest)) return { ...BAD_REQUEST, status };
  return {
    status: 500,
    title: 'Something went wrong on our side',
    detail: `Nothing you did caused this. Try again in a few minutes. If it keeps happening, contact the sender and quote reference ${reference}.`,
  };
}

/** API clients and /healthz get JSON; browsers get a page. */
function wantsJson(request: FastifyRequest): boolean {
  const url = request.routeOptions.url ?? request.url;
  if (url.startsWith('/api/') || url === '/healthz') return true;
  const accept = request.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: Explained): FastifyReply {
  if (wantsJson(request)) return reply.code(problem.status).send({ error: problem });
  return sendPage(request, reply, { title: problem.title, main: html`<h1>${problem.title}</h1><p>${problem.detail}</p>` }, problem.status);
}

export function registerErrorPages(app: FastifyInstance, logger: Logger): void {
  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, NOT_FOUND));
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const problem = explain(err, request.id);
    const where = { method: request.method, route: request.routeOptions.url ?? null, status: problem.status, reference: request.id };
    if (problem.status >= 500) logger.error({ event: 'http.error', ...where, err: err.message }, `${request.method} ${where.route ?? '(no route)'} failed`);
    else if (err instanceof CsrfError) logger.warn({ event: 'http.csrf_refused', ...where, reason: err.reason, ip: request.ip }, 'a state-changing request failed the CSRF check');
    else if (err instanceof TooManyRequests) logger.info({ event: 'http.rate_limited', ...where, ip: request.ip }, 'request refused by a rate limit');
    if (err instanceof TooManyRequests) reply.header('retry-after', String(err.retryAfterSeconds));
    return sendProblem(request, reply, problem);
  });
}

/** "14:05 UTC" — recipients may be anywhere; UTC says so instead of guessing their zone. */
function clock(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(11, 16)} UTC`;
}

function waitText(ms: number): string {
  const minutes = Math.ceil(ms / 60_000);
  if (minutes <= 1) return 'in about a minute';
  if (minutes < 120) return `in about ${minutes} minutes`;
  return `in about ${Math.round(minutes / 60)} hours`;
}
