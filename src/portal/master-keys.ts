// The portal's master keys: what wraps each item's data key (vault.ts).
//
// A key is 32 random bytes, kept as one line of base64 (RFC 4648 §4, 44 characters
// with padding) in a file or in an environment variable — never in the YAML. The
// config names each key by id (portal.master_keys) and says which one new items use
// (portal.current_key): explicit, so adding a key never silently changes which is
// current. Items under the other keys stay readable; `sealrelay portal rewrap` moves
// them to the current one. A key file must not be readable by group or others (as
// OpenSSH refuses a private key that is): chmod 600.
//
// Like the rest of the relay this module never reads process.env: the command line
// (cli/) hands it the environment it captured.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { Env } from '../config/load.ts';
import { readSecretFile, readSecretVariable } from '../config/secret-source.ts';
import type { Config } from '../config/schema.ts';
import { gcmOpen, gcmSeal, KEY_BYTES } from './gcm.ts';

/** Strict base64 of 32 bytes: 43 characters and one "=". */
const KEY_TEXT = /^[A-Za-z0-9+/]{43}=$/;

/**
 * A master key that cannot be read or used. `path` is the setting as the config
 * loader places it (["portal", "master_keys", 0, "file"]), `setting` as people read
 * it ("portal.master_keys[k1].file").
 */
export class MasterKeyError extends Error {
  constructor(
    readonly path: readonly (string | number)[],
    readonly setting: string,
    readonly reason: string,
  ) {
    super(`${setting}: ${reason}`);
    this.name = 'MasterKeyError';
  }
}

/** A new master key (32 random bytes). */
export function generateMasterKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/** The text form of a key file or environment variable: base64 and a newline. */
export function formatMasterKey(key: Buffer): string {
  if (key.length !== KEY_BYTES) throw new RangeError(`a master key is ${KEY_BYTES} bytes`);
  return `${key.toString('base64')}\n`;
}

/** The key in its text form (surrounding whitespace ignored); throws a plain Error saying what is wrong, never echoing the text. */
export function parseMasterKey(text: string): Buffer {
  const trimmed = text.trim();
  if (!trimmed) throw new Error('empty: expected 32 bytes in base64 (sealrelay portal keygen makes one)');
  if (!KEY_TEXT.test(trimmed)) throw new Error(`not a master key: expected 32 bytes in base64, one line of 44 characters (sealrelay portal keygen makes one); found ${trimmed.length} characters`);
  return Buffer.from(trimmed, 'base64');
}

/**
 * The master keys, each usable only through wrap/unwrap: the bytes stay in a
 * private field, so logging or printing a Keyring never shows them.
 */
export class Keyring {
  readonly #keys: ReadonlyMap<string, Buffer>;
  /** The key new items are sealed with and rewrap moves items to. */
  readonly currentId: string;

  constructor(keys: readonly { readonly id: string; readonly key: Buffer }[], currentId: string) {
    const map = new Map<string, Buffer>();
    for (const { id, key } of keys) {
      if (map.has(id)) throw new Error(`master key id ${id} appears twice`);
      if (key.length !== KEY_BYTES) throw new Error(`master key ${id} is ${key.length} bytes, not ${KEY_BYTES}`);
      map.set(id, Buffer.from(key));
    }
    if (!map.has(currentId)) throw new Error(`no master key with id ${currentId}`);
    this.#keys = map;
    this.currentId = currentId;
  }

  get ids(): string[] {
    return [...this.#keys.keys()];
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** `secret` wrapped with the current key; `aadFor` binds the key id (and whatever else) to it. */
  wrap(secret: Buffer, aadFor: (keyId: string) => Buffer): { keyId: string; wrapNonce: Buffer; wrappedKey: Buffer } {
    const keyId = this.currentId;
    const { nonce, sealed } = gcmSeal(this.#keys.get(keyId)!, secret, aadFor(keyId));
    return { keyId, wrapNonce: nonce, wrappedKey: sealed };
  }

  /** The secret wrapped with key `keyId`; throws GcmAuthError when it does not authenticate, Error when the key is not configured. */
  unwrap(keyId: string, wrapNonce: Buffer, wrappedKey: Buffer, aad: Buffer): Buffer {
    const key = this.#keys.get(keyId);
    if (!key) throw new Error(`master key ${keyId} is not configured (portal.master_keys)`);
    return gcmOpen(key, wrapNonce, wrappedKey, aad);
  }

  toJSON(): { currentId: string; ids: string[] } {
    return { currentId: this.currentId, ids: this.ids };
  }

  [inspect.custom](): string {
    return `Keyring { current: ${this.currentId}, ids: [${this.ids.join(', ')}] }`;
  }
}

/**
 * Reads every configured master key (files, and variables from `env`) and checks each;
 * throws a MasterKeyError naming the first bad one. Null when none is configured.
 */
export function loadKeyring(portal: Config['portal'], env: Env): Keyring | null {
  return readKeyring({ keys: portal.master_keys, current: portal.current_key, at: ['portal', 'master_keys'], currentAt: ['portal', 'current_key'], noun: 'master key', uses: 'new items use' }, env);
}

/** The queue's body keys (store.encryption), read and checked as the portal's; null when none is configured. */
export function loadBodyKeyring(store: Config['store'], env: Env): Keyring | null {
  const e = store.encryption;
  return readKeyring({ keys: e.keys, current: e.current_key, at: ['store', 'encryption', 'keys'], currentAt: ['store', 'encryption', 'current_key'], noun: 'key', uses: 'new bodies are encrypted with' }, env);
}

/** Keys named by id, each by file or variable, and the current one; errors placed at their setting. */
function readKeyring(
  spec: { keys: Config['portal']['master_keys']; current: string | null; at: readonly string[]; currentAt: readonly string[]; noun: string; uses: string },
  env: Env,
): Keyring | null {
  if (!spec.keys.length) return null;
  const keys = spec.keys.map((k, i) => {
    const field = k.file !== undefined ? 'file' : 'env';
    const fail = (reason: string) => new MasterKeyError([...spec.at, i, field], `${spec.at.join('.')}[${k.id}].${field}`, reason);
    const text = k.file !== undefined ? readSecretFile(k.file, fail) : readSecretVariable(k.env!, env, fail);
    try {
      return { id: k.id, key: parseMasterKey(text) };
    } catch (err) {
      throw fail(`${k.file ?? k.env}: ${(err as Error).message}`);
    }
  });
  const current = spec.current;
  if (current === null || !keys.some((k) => k.id === current)) {
    throw new MasterKeyError(spec.currentAt, spec.currentAt.join('.'), current === null ? `name the ${spec.noun} ${spec.uses}` : `no ${spec.noun} with id ${current}`);
  }
  return new Keyring(keys, current);
}


