// /api/v1/queue and /api/v1/domains: what waits (read), the operator's actions on
// it (admin: hold, release, delete, recorded as `token:<name>` in the delivery log
// as `sealrelay queue` records the OS user), and what the relay knows of a domain.
import type { FastifyInstance } from 'fastify';
import type { OperatorAction, Store } from '../../store/store.ts';
import type { ApiContext } from './context.ts';
import { ApiError } from './errors.ts';
import { domainParams, domainSchema, errorResponses, queueActionSchema, queueIdParams, queueQuery, queueSchema } from './schemas.ts';
import { tokenAuthUser } from './tokens.ts';

const ACTIONS: readonly { path: string; method: 'POST' | 'DELETE'; action: Exclude<OperatorAction, 'flush'>; summary: string; run: (store: Store, id: string, operator: string) => Promise<number> }[] = [
  { path: '/queue/:id/hold', method: 'POST', action: 'hold', summary: 'Hold a message: not tried until released', run: (s, id, op) => s.hold(id, op) },
  { path: '/queue/:id/release', method: 'POST', action: 'release', summary: 'Release a held message: due at once', run: (s, id, op) => s.releaseHold(id, op) },
  { path: '/queue/:id', method: 'DELETE', action: 'delete', summary: 'Delete a message without delivering or bouncing it', run: (s, id, op) => s.deleteEntry(id, op) },
];

export function registerQueue(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: { limit: number } }>(
    '/queue',
    {
      config: { apiScope: 'read' },
      schema: { summary: 'The queue: messages waiting, oldest first, and totals', tags: ['queue'], querystring: queueQuery, response: { 200: queueSchema, ...errorResponses([400, 401, 403, 429]) } },
    },
    async (request) => {
      const [messages, stats] = await Promise.all([ctx.store.listQueue({ limit: request.query.limit }), ctx.store.queueStats()]);
      return { messages, stats };
    },
  );

  for (const a of ACTIONS) {
    app.route<{ Params: { id: string } }>({
      method: a.method,
      url: a.path,
      config: { csrf: 'bearer-token', apiScope: 'admin' },
      schema: { summary: a.summary, tags: ['queue'], params: queueIdParams, response: { 200: queueActionSchema, ...errorResponses([400, 401, 403, 404, 429]) } },
      handler: async (request) => {
        const { id } = request.params;
        if (!(await ctx.store.getQueueEntry(id))) throw new ApiError(404, 'not_found', `no message ${id} in the queue`, 'id');
        const recipients = await a.run(ctx.store, id, tokenAuthUser(request.apiToken!.name));
        return { queueId: id, action: a.action, recipients };
      },
    });
  }

  app.get<{ Params: { domain: string } }>(
    '/domains/:domain',
    {
      config: { apiScope: 'read' },
      schema: { summary: 'What the relay knows of a recipient domain', tags: ['domains'], params: domainParams, response: { 200: domainSchema, ...errorResponses([400, 401, 403, 429]) } },
    },
    async (request) => {
      const domain = request.params.domain.toLowerCase();
      const [knowledge, policy] = await Promise.all([ctx.store.getDomain(domain), ctx.store.getMtaStsPolicy(domain)]);
      return { domain, knowledge, mtaSts: policy === null ? null : (JSON.parse(policy) as object) };
    },
  );
}
