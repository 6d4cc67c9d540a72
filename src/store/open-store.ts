// Picks the Store implementation named by the config.
import type { Config } from '../config/schema.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import type { Env } from '../config/load.ts';
import { bodyKeySource, ThreadedSqliteStore } from './sqlite/threaded-store.ts';
import type { Keyring } from '../portal/master-keys.ts';
import type { Store } from './store.ts';

/** For tools (the CLI): the store on the calling thread; with `bodyKeys` (store.encryption's, loaded), a body it writes is sealed as the relay's are. */
export function openStore(config: Config['store'], opts: { bodyKeys?: Keyring | null } = {}): Store {
  switch (config.driver) {
    case 'sqlite':
      return new SqliteStore(config.path, opts.bodyKeys ? { bodyKeys: opts.bodyKeys } : {});
  }
}

/**
 * For the long-running relay: SQLite in its own thread, so commits never stall SMTP
 * sessions; one relay per file. With store.encryption's keys (loaded in the store
 * thread from `env`), bodies are sealed at rest.
 */
export async function openRelayStore(config: Config['store'], onError?: (message: string) => void, env: Env = {}): Promise<ThreadedSqliteStore> {
  switch (config.driver) {
    case 'sqlite':
      return ThreadedSqliteStore.open(config.path, onError, { exclusive: true, ...(config.encryption.keys.length ? { bodyKeys: bodyKeySource(config, env) } : {}) });
  }
}
