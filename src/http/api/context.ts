// What the API's routes share: the store, the delivery kick, the config as it is now.
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import type { ApiScope, ApiTokenInfo, Store } from '../../store/store.ts';

/** What src/relay.ts hands the API: the store and a way to wake delivery for mail just queued. */
export interface ApiWebDeps {
  readonly store: Store;
  readonly kick: () => void;
  /** Called as each API request ends: where the audit trail (src/events/audit/) writes its entry. */
  readonly onRequestDone?: (record: ApiRequestRecord) => void;
}

/** One API request as it ended, for the audit trail (src/events/audit/) to record. */
export interface ApiRequestRecord {
  readonly at: number;
  /** The token's name; null when none authenticated the request. */
  readonly token: string | null;
  readonly method: string;
  /** The route's pattern (never the URL: ids and queries stay out). */
  readonly route: string | null;
  readonly status: number;
  readonly ip: string;
}


export interface ApiContext extends ApiWebDeps {
  readonly config: () => Config;
  readonly logger: Logger;
  readonly now: () => number;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a token needs for the route (auth.ts); absent: no token asked (the OpenAPI document). */
    apiScope?: ApiScope;
  }
  interface FastifyRequest {
    /** The token that authenticated the request (auth.ts), without its hash. */
    apiToken: ApiTokenInfo | null;
  }
}
