// GET /healthz: whether this listener answers, for load balancers and monitors.
// It says nothing an outsider could use: no version, no configuration, no counts.
import type { FastifyInstance } from 'fastify';

export interface Health {
  readonly status: 'ok';
  readonly listener: string;
}

export function registerHealth(app: FastifyInstance, listener: string): void {
  const body: Health = { status: 'ok', listener };
  app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' }, listener: { type: 'string' } }, required: ['status', 'listener'], additionalProperties: false } } } }, async () => body);
}
