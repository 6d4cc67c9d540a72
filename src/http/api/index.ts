// The REST API under /api/v1 on the api listener, as one fastify plugin on a server
// from createHttpServer (security headers, rate limits and the CSRF check come from
// there; the API's routes are bearer-token routes, exempt from CSRF: see csrf.ts).
//
//   scope  routes
//   send   POST /messages
//   read   GET /messages, /messages/:id, /messages/:id/evidence, /queue, /domains/:domain, /reports
//   admin  POST /queue/:id/hold, /queue/:id/release, DELETE /queue/:id
//   none   GET /openapi.json (the document describing all of the above)
//
// Every route has a JSON Schema for what it takes and answers; requests are
// validated strictly (validation.ts) and the OpenAPI document is generated from the
// same schemas by @fastify/swagger. Errors are JSON (errors.ts).
import swagger from '@fastify/swagger';
import type { FastifyInstance, preHandlerAsyncHookHandler } from 'fastify';
import type { ApiScope } from '../../store/store.ts';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import type { HttpServer } from '../server.ts';
import { ApiAuth } from './auth.ts';
import type { ApiContext, ApiWebDeps } from './context.ts';
import { ApiError, errorSchema, registerApiErrors } from './errors.ts';
import { registerMessages } from './messages.ts';
import { registerQueue } from './queue.ts';
import { registerReports } from './reports.ts';
import { apiValidatorCompiler } from './validation.ts';

export type { ApiRequestRecord, ApiWebDeps } from './context.ts';

export const API_PREFIX = '/api/v1';
/** The document's version: the API's, not the relay's (a relay release that changes no route leaves docs/openapi.json as it is). */
const API_VERSION = '1.0.0';
/** Idempotency-Keys past api.idempotency_hours are deleted this often. */
const PRUNE_EVERY_MS = 60 * 60_000;

/** What the API gives the rest of its listener: its token check, for routes outside /api/v1 (/metrics). */
export interface ApiGuards {
  /** A preHandler that lets a request through only with a live token of `scope`, answering 401/403/429 in plain text otherwise. */
  guard(scope: ApiScope): preHandlerAsyncHookHandler;
}

export function registerApi(server: HttpServer, deps: ApiWebDeps, opts: { config: () => Config; logger: Logger; now: () => number }): ApiGuards {
  const ctx: ApiContext = { store: deps.store, kick: deps.kick, config: opts.config, logger: opts.logger, now: opts.now };
  const auth = new ApiAuth(
    deps.store,
    server.limits.limiter,
    () => {
      const api = opts.config().api;
      return { name: 'api-auth-ip', limit: api.auth_failure_limit, windowMs: api.auth_failure_window_seconds * 1000, lockoutMs: api.auth_failure_window_seconds * 1000 };
    },
    opts.logger,
    opts.now,
  );

  server.app.register(
    async (app: FastifyInstance) => {
      app.setValidatorCompiler(apiValidatorCompiler);
      app.addSchema({ $id: 'ApiError', ...errorSchema });
      await app.register(swagger, {
        openapi: {
          openapi: '3.0.3',
          info: { title: 'SealRelay API', version: API_VERSION, description: 'Send mail through the relay and read how it travelled. Authenticate with `Authorization: Bearer <token>` (`sealrelay token add`).' },
          components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token: sr_<id>_<secret>' } } },
          security: [{ bearer: [] }],
        },
        hideUntagged: true,
        // Shared schemas keep their own names in components.schemas (ApiError, not def-0).
        refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
      });
      registerApiErrors(app, opts.logger);
      app.decorateRequest('apiToken', null);
      app.addHook('onRequest', async (request) => {
        const scope = request.routeOptions.config.apiScope;
        if (scope) request.apiToken = await auth.authenticate(request, scope);
      });
      // The one place each API request ends: where the audit trail writes its entry.
      if (deps.onRequestDone) {
        const done = deps.onRequestDone;
        app.addHook('onResponse', async (request, reply) => {
          done({ at: opts.now(), token: request.apiToken?.name ?? null, method: request.method, route: request.routeOptions.url ?? null, status: reply.statusCode, ip: request.ip });
        });
      }
      registerMessages(app, ctx);
      registerQueue(app, ctx);
      registerReports(app, ctx);
      app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

      const pruning = setInterval(() => {
        const before = opts.now() - opts.config().api.idempotency_hours * 3_600_000;
        deps.store.pruneIdempotencyKeys(before).catch((err: Error) => opts.logger.warn({ event: 'store.error', err: err.message }, 'could not prune old Idempotency-Keys'));
      }, PRUNE_EVERY_MS);
      pruning.unref();
      app.addHook('onClose', async () => clearInterval(pruning));
    },
    { prefix: API_PREFIX },
  );

  const guards: ApiGuards = {
    guard: (scope) => async (request, reply) => {
      try {
        await auth.authenticate(request, scope);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        await reply.code(err.statusCode).headers(err.headers).type('text/plain; charset=utf-8').send(`${err.message}\n`);
      }
    },
  };

  // For the GET side-effect test (safe-requests.ts): tokens (their last use is bookkeeping, left out), the queue and the log.
  server.stateProbes.add('api', async () => ({
    tokens: (await deps.store.listApiTokens()).map(({ lastUsedAt: _seen, ...t }) => t),
    queue: (await deps.store.listQueue()).map((q) => ({ id: q.queueId, recipients: q.recipients.map((r) => `${r.seq} ${r.state} ${r.attempts}`) })),
    log: (await deps.store.queryLog({})).length,
  }));
  return guards;
}
