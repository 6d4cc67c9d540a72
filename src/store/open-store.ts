// Picks the Store implementation named by the config.
import type { Config } from '../config/schema.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

export function openStore(config: Config['store']): Store {
  switch (config.driver) {
    case 'sqlite':
      return new SqliteStore(config.path);
  }
}
