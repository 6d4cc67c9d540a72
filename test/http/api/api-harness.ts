// The api listener as the relay builds it (buildWebServer with the API's deps), on a
// real SQLite store in a temp dir, requested through fastify's inject; the clock is
// the test's to move. Tokens are made as `sealrelay token add` makes them.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import type { ApiRequestRecord } from '../../../src/http/api/index.ts';
import { makeApiToken } from '../../../src/http/api/tokens.ts';
import { buildWebServer } from '../../../src/http/listeners.ts';
import type { HttpServer } from '../../../src/http/server.ts';
import { createLogger } from '../../../src/log.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import type { ApiScope } from '../../../src/store/store.ts';
import { testClock, testWebCertificate, type TestClock } from '../../helpers/web-server.ts';

export interface ApiHarness {
  readonly server: HttpServer;
  readonly store: SqliteStore;
  readonly config: Config;
  readonly clock: TestClock;
  /** How many times the API woke delivery. */
  readonly kicks: { count: number };
  readonly audit: ApiRequestRecord[];
  token(name: string, scopes: readonly ApiScope[], expiresAt?: number | null): Promise<string>;
  request(method: 'GET' | 'HEAD' | 'POST' | 'DELETE' | 'PUT', url: string, opts?: { token?: string; json?: unknown; payload?: string; headers?: Record<string, string>; ip?: string }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function startApi(over: Record<string, unknown> = {}, log?: Writable): Promise<ApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-api-'));
  const config = configSchema.parse({ server: { hostname: 'relay.api.test' }, ingress: { listeners: {} }, store: { path: join(dir, 'api.db') }, ...over });
  const store = new SqliteStore(config.store.path);
  const clock = testClock(Date.now());
  const kicks = { count: 0 };
  const audit: ApiRequestRecord[] = [];
  const pair = testWebCertificate();
  const server = await buildWebServer('api', {
    config,
    logger: createLogger(log ? 'info' : 'silent', log),
    tls: { cert: pair.certPem, key: pair.keyPem },
    now: clock.now,
    api: { store, kick: () => void kicks.count++, onRequestDone: (r) => void audit.push(r) },
  });
  await server.app.ready();
  return {
    server,
    store,
    config,
    clock,
    kicks,
    audit,
    async token(name, scopes, expiresAt = null) {
      const made = makeApiToken({ name, scopes, now: clock.now(), expiresAt });
      await store.createApiToken(made.record);
      return made.token;
    },
    request(method, url, opts = {}) {
      return server.app.inject({
        method,
        url,
        remoteAddress: opts.ip ?? '127.0.0.1',
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(opts.json !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
        ...(opts.json !== undefined ? { payload: JSON.stringify(opts.json) } : opts.payload !== undefined ? { payload: opts.payload } : {}),
      });
    },
    async close() {
      await server.close();
      await store.close();
    },
  };
}

/** A small valid message. */
export function sample(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { from: 'Lab <lab@hospital.test>', to: ['pat@clinic.test'], subject: 'Results', text: 'Your results are ready.', ...over };
}
