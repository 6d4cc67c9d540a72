// The OpenAPI document as the api listener serves it: an api listener built as the
// relay builds it (its own throwaway certificate and an in-memory store, never
// listening), asked for /api/v1/openapi.json. `npm run openapi` keeps the copy in
// docs/openapi.json.
import { configSchema } from '../../config/schema.ts';
import { generateSelfSigned } from '../../ingress/dev-cert.ts';
import { createLogger } from '../../log.ts';
import { SqliteStore } from '../../store/sqlite/sqlite-store.ts';
import { buildWebServer } from '../listeners.ts';
import { API_PREFIX } from './index.ts';

export async function servedOpenApiDocument(): Promise<unknown> {
  const store = new SqliteStore(':memory:');
  const server = await buildWebServer('api', {
    config: configSchema.parse({ ingress: { listeners: {} } }),
    logger: createLogger('silent'),
    tls: generateSelfSigned('localhost'),
    api: { store, kick: () => undefined },
  });
  try {
    const res = await server.app.inject({ method: 'GET', url: `${API_PREFIX}/openapi.json` });
    if (res.statusCode !== 200) throw new Error(`${API_PREFIX}/openapi.json answered ${res.statusCode}`);
    return res.json();
  } finally {
    await server.close();
    await store.close();
  }
}
