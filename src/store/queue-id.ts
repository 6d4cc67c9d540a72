// Queue ids: sortable by arrival (time prefix) and unique without coordination
// (random suffix), like Postfix's long queue ids. Safe in file names and logs.
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz';

export function newQueueId(now = Date.now()): string {
  let time = '';
  for (let t = now; time.length < 9; t = Math.floor(t / ALPHABET.length)) time = ALPHABET[t % ALPHABET.length] + time;
  const random = Array.from(randomBytes(7), (b) => ALPHABET[b % ALPHABET.length]).join('');
  return time + random;
}
