// A portal item's passphrase (a rule's portal.passphrase): the sender gives it to
// the recipient another way (a phone call, a letter), and the portal asks for it
// after the one-time code. Kept only as an scrypt hash (RFC 7914), one Buffer with
// the salt first: salt (16 bytes) ‖ key (32 bytes). Checked in constant time.
//
// Cost: N = 2^15, r = 8, p = 1 (32 MiB, some tens of milliseconds): hashed once per
// item when sealing and once per try, and tries are few (rate-limited), so the cost
// falls on whoever steals the database, not on the relay.
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
/** Longer input is refused before hashing (the config allows 200 characters). */
const MAX_PASSPHRASE_CHARS = 1024;

/** The passphrase hashed with a fresh salt: salt ‖ scrypt key. */
export function hashPassphrase(text: string): Buffer {
  if (text.length > MAX_PASSPHRASE_CHARS) throw new RangeError('passphrase too long');
  const salt = randomBytes(SALT_BYTES);
  return Buffer.concat([salt, derive(text, salt)]);
}

/** Whether `text` is the passphrase `hash` was made from; false for a malformed hash or oversized input. */
export function checkPassphrase(text: string, hash: Buffer): boolean {
  if (typeof text !== 'string' || text.length > MAX_PASSPHRASE_CHARS || hash.length !== SALT_BYTES + KEY_BYTES) return false;
  const key = derive(text, hash.subarray(0, SALT_BYTES));
  return timingSafeEqual(key, hash.subarray(SALT_BYTES));
}

function derive(text: string, salt: Buffer): Buffer {
  // NFC: the same passphrase typed on two keyboards may arrive composed differently.
  return scryptSync(text.normalize('NFC'), salt, KEY_BYTES, SCRYPT);
}
