// Queued message bodies encrypted at rest: each part (store.ts NewMessage, staged
// parts) sealed with AES-256-GCM under the current key of store.encryption, with a
// fresh nonce, the queue id, part number and key id bound in as associated data —
// so a part moved to another message or place, or altered, does not open. What it
// protects against: a copied disk, database file or backup (sealrelay store backup),
// read without the key. Not against someone who holds the key or runs code as the
// relay: the relay must read bodies to deliver them.
//
// Parts written without a key (before encryption was turned on) stay plaintext and
// readable; parts under a key no longer configured cannot be read, and the relay
// refuses to start rather than find out message by message (keysInUse).
import { TAG_BYTES } from '../../portal/gcm.ts';
import type { Keyring } from '../../portal/master-keys.ts';

/** A body part as stored: ciphertext with its tag (or plaintext when keyId is null). */
export interface StoredPart {
  readonly data: Buffer;
  readonly keyId: string | null;
  readonly nonce: Buffer | null;
}

export class BodyCipher {
  constructor(private readonly keys: Keyring | null) {}

  get encrypting(): boolean {
    return this.keys !== null;
  }

  seal(queueId: string, part: number, data: Buffer): StoredPart {
    if (!this.keys) return { data, keyId: null, nonce: null };
    // The keyring's wrap is AES-256-GCM under its current key with a fresh nonce: the key bytes never leave it.
    const { keyId, wrapNonce, wrappedKey } = this.keys.wrap(data, (id) => aad(queueId, part, id));
    return { data: wrappedKey, keyId, nonce: wrapNonce };
  }

  open(queueId: string, part: number, stored: StoredPart): Buffer {
    if (stored.keyId === null) return stored.data;
    if (!this.keys?.has(stored.keyId)) {
      throw new Error(`${queueId}: its body is encrypted with key ${stored.keyId}, which store.encryption.keys does not list`);
    }
    return this.keys.unwrap(stored.keyId, stored.nonce ?? Buffer.alloc(0), stored.data, aad(queueId, part, stored.keyId));
  }
}

/** Bytes a sealed part takes beyond its plaintext. */
export const SEAL_OVERHEAD = TAG_BYTES;

function aad(queueId: string, part: number, keyId: string): Buffer {
  return Buffer.from(`sealrelay-body\0${queueId}\0${part}\0${keyId}`, 'utf8');
}
