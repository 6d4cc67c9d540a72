// The key that signs tracking and unsubscribe links (links.ts): 32 random bytes in
// base64, in a file (chmod 600) or an environment variable, like the portal's master
// keys (portal/master-keys.ts: same text form, `sealrelay portal keygen` makes one).
// Never in the YAML; the command line hands over the environment it captured.
import type { Env } from '../../config/load.ts';
import { readSecretFile, readSecretVariable } from '../../config/secret-source.ts';
import type { Config } from '../../config/schema.ts';
import { parseMasterKey } from '../../portal/master-keys.ts';

/** tracking.key read and checked; null when none is configured. Throws an Error naming the setting, never echoing the key. */
export function loadTrackingKey(tracking: Config['tracking'], env: Env): Buffer | null {
  const k = tracking.key;
  if (!k) return null;
  const setting = k.file !== undefined ? `tracking.key.file (${k.file})` : `tracking.key.env (${k.env})`;
  const fail = (reason: string) => new Error(`${setting}: ${reason}`);
  const text = k.file !== undefined ? readSecretFile(k.file, fail) : readSecretVariable(k.env!, env, fail);
  try {
    return parseMasterKey(text);
  } catch (err) {
    throw fail((err as Error).message);
  }
}
