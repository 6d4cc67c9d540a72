// Queue ids: sortable by arrival (time prefix) and unique without coordination
// (random suffix), like Postfix's long queue ids. Safe in file names and logs.
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz';
const RANDOM_CHARS = 7;
/**
 * Random bytes for the suffixes, filled for 512 ids at a time: one call into the CSPRNG
 * per 512 messages instead of one per message (a queue id is made for every message).
 */
const pool = Buffer.alloc(RANDOM_CHARS * 512);
let used = pool.length;

export function newQueueId(now = Date.now()): string {
  let time = '';
  for (let t = now; time.length < 9; t = Math.floor(t / ALPHABET.length)) time = ALPHABET[t % ALPHABET.length] + time;
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let random = '';
  for (const end = used + RANDOM_CHARS; used < end; used++) random += ALPHABET[pool[used]! % ALPHABET.length];
  return time + random;
}
