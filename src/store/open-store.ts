// Picks the Store implementation named by the config.
import type { Config } from '../config/schema.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from './sqlite/threaded-store.ts';
import type { Store } from './store.ts';

/** For tools (the CLI): the store on the calling thread. */
export function openStore(config: Config['store']): Store {
  switch (config.driver) {
    case 'sqlite':
      return new SqliteStore(config.path);
  }
}

/** For the long-running relay: SQLite in its own thread, so commits never stall SMTP sessions; one relay per file. */
export async function openRelayStore(config: Config['store'], onError?: (message: string) => void): Promise<ThreadedSqliteStore> {
  switch (config.driver) {
    case 'sqlite':
      return ThreadedSqliteStore.open(config.path, onError, { exclusive: true });
  }
}
