// The API's errors: always JSON, `{ error, message, field? }`, where `error` is a
// stable code a program can switch on, `message` says what to do in words, and
// `field` names the part of the request at fault (a body field as "to[0]" or
// "attachments[1].filename", a header as "Idempotency-Key", a query parameter by
// its name). Schema failures (ajv) are mapped to the field they are about. Faults
// are logged by route pattern and the request's reference, never with the body.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '../../log.ts';
import { TooManyRequests } from '../errors.ts';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiProblem {
  readonly error: string;
  readonly message: string;
  readonly field?: string;
}

/** The schema every error response has (for the OpenAPI document). */
export const errorSchema = {
  type: 'object',
  required: ['error', 'message'],
  additionalProperties: false,
  properties: {
    error: { type: 'string', description: 'A stable code: unauthorized, forbidden, invalid_request, too_large, not_found, …' },
    message: { type: 'string' },
    field: { type: 'string', description: 'The part of the request at fault: a body field ("to[0]"), a header or a query parameter.' },
  },
} as const;

/** One ajv error, as fastify passes it on. */
interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
}

/** "/attachments/1/filename" → "attachments[1].filename"; a header or query parameter by its own name. */
export function fieldName(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  return parts.reduce((name, p) => (/^\d+$/.test(p) ? `${name}[${p}]` : name ? `${name}.${p}` : p), '');
}

/** The problem a schema failure describes, naming its field. */
export function schemaProblem(errors: readonly SchemaError[], context: string): ApiProblem {
  const e = errors[0]!;
  const where = context === 'body' ? 'body' : context === 'querystring' ? 'query' : context;
  if (e.keyword === 'required') {
    const field = fieldName(e.instancePath, String(e.params.missingProperty));
    return { error: 'invalid_request', message: `${field} is required`, field };
  }
  if (e.keyword === 'additionalProperties') {
    const field = fieldName(e.instancePath, String(e.params.additionalProperty));
    return { error: 'invalid_request', message: `${field} is not a field of this request`, field };
  }
  const field = fieldName(e.instancePath) || where;
  if (e.keyword === 'pattern' && /\\r|\\n|\\u000a|\\u000d/i.test(String(e.params.pattern))) {
    return { error: 'invalid_request', message: `${field} must be one line without control characters`, field };
  }
  return { error: 'invalid_request', message: `${field} ${e.message ?? 'is not valid'}`, field };
}

function send(reply: FastifyReply, status: number, problem: ApiProblem): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(problem);
}

/** JSON errors and 404s for every route under the API's prefix. */
export function registerApiErrors(app: FastifyInstance, logger: Logger): void {
  app.setNotFoundHandler((request, reply) => {
    return send(reply, 404, { error: 'not_found', message: 'No such API route. The API is described at /api/v1/openapi.json.' });
  });
  app.setErrorHandler((err: FastifyError & { validation?: SchemaError[]; validationContext?: string }, request, reply) => {
    const route = request.routeOptions.url ?? null;
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
      return send(reply, err.statusCode, { error: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) });
    }
    if (err.validation?.length) return send(reply, 400, schemaProblem(err.validation, err.validationContext ?? 'body'));
    if (err instanceof TooManyRequests) {
      reply.header('retry-after', String(err.retryAfterSeconds));
      logger.info({ event: 'http.rate_limited', method: request.method, route, reference: request.id, ip: request.ip }, 'API request refused by a rate limit');
      return send(reply, 429, { error: 'too_many_requests', message: `Too many failed authentications from this address; try again in ${err.retryAfterSeconds} s.` });
    }
    const status = err.statusCode ?? 500;
    if (status === 413) return send(reply, 413, { error: 'too_large', message: 'The request body is larger than this API accepts.', field: 'body' });
    if (status === 415) return send(reply, 415, { error: 'unsupported_media_type', message: 'Send the body as application/json.', field: 'Content-Type' });
    if (status >= 400 && status < 500) {
      // fastify's own: a body that is not JSON, an empty JSON body, a bad header.
      const badJson = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY';
      return send(reply, status, badJson ? { error: 'invalid_json', message: 'The body is not valid JSON.', field: 'body' } : { error: 'invalid_request', message: 'The request could not be read.' });
    }
    logger.error({ event: 'http.error', method: request.method, route, status: 500, reference: request.id, err: err.message }, `${request.method} ${route ?? '(no route)'} failed`);
    return send(reply, 500, { error: 'internal', message: `Something went wrong on our side; quote reference ${request.id}.` });
  });
}
