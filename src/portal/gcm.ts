// AES-256-GCM, the one cipher of the portal vault (node:crypto): a random 96-bit
// nonce per encryption (NIST SP 800-38D §8.2.2: with random nonces, at most 2^32
// encryptions per key — every data key here encrypts once, and a master key wraps
// one data key per item) and a 128-bit tag, stored after the ciphertext.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** The ciphertext did not authenticate: wrong key, wrong associated data, or tampered bytes. GCM cannot tell which. */
export class GcmAuthError extends Error {
  constructor() {
    super('not authentic (wrong key, wrong item, or altered data)');
    this.name = 'GcmAuthError';
  }
}

/** `plaintext` encrypted under `key` with `aad` bound to it: a fresh nonce, and the ciphertext with its tag last. */
export function gcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): { nonce: Buffer; sealed: Buffer } {
  if (key.length !== KEY_BYTES) throw new RangeError(`AES-256-GCM needs a ${KEY_BYTES}-byte key`);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce, sealed };
}

/** The plaintext of `sealed` (ciphertext, tag last); throws GcmAuthError unless key, nonce, aad and bytes are all as sealed. */
export function gcmOpen(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (key.length !== KEY_BYTES || nonce.length !== NONCE_BYTES || sealed.length < TAG_BYTES) throw new GcmAuthError();
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const body = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    // final() is where the tag is checked: nothing decrypted is returned before it passes.
    // GCM is a stream mode: final() adds no bytes, so the body is returned without a copy.
    const rest = decipher.final();
    return rest.length ? Buffer.concat([body, rest]) : body;
  } catch {
    body.fill(0);
    throw new GcmAuthError();
  }
}
