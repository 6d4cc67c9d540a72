// Verifying the audit trail's hash chain (entry.ts): every entry from seq 1 on, in
// order, each following the one before (its `prev` is that entry's hash) and
// hashing to its own `hash`. The first entry that fails is reported by seq, with
// what is wrong: missing (deleted), not following its predecessor (inserted,
// reordered), or altered (any field edited).
//
// A chain cannot show that its newest entries were cut off, nor that someone who
// can write the database rewrote it whole with fresh hashes. The head — the last
// seq and its hash — commits to everything before it: kept somewhere else (a
// ticket, another host, printed) and given back as `expectHead`, an entry with
// that seq must still be there with that hash, which catches both.
import { entryHash, GENESIS, type AuditEntry } from './entry.ts';

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export type ChainVerdict =
  | { readonly ok: true; readonly entries: number; readonly head: ChainHead | null }
  | { readonly ok: false; readonly entries: number; readonly badSeq: number; readonly reason: string };

/** Entries after `afterSeq` in seq order, at most `limit` (Store.listAudit). */
export type AuditPages = (afterSeq: number, limit: number) => Promise<readonly AuditEntry[]>;

const PAGE = 5000;

/** Walks the whole chain page by page; with `expectHead`, that entry must be found with that hash. */
export async function verifyAuditChain(read: AuditPages, expectHead?: ChainHead): Promise<ChainVerdict> {
  let expected = 1;
  let prev = GENESIS;
  let entries = 0;
  let headSeen = false;
  for (;;) {
    const page = await read(expected - 1, PAGE);
    for (const e of page) {
      const bad = (reason: string, seq = e.seq) => ({ ok: false as const, entries, badSeq: seq, reason });
      if (e.seq !== expected) return bad(`entry ${expected} is missing (the next one is ${e.seq})`, expected);
      if (e.prev !== prev) return bad(`entry ${e.seq} does not follow entry ${e.seq - 1} (inserted, removed or reordered)`);
      if (entryHash(e) !== e.hash) return bad(`entry ${e.seq} was altered (its hash does not match its content)`);
      if (expectHead?.seq === e.seq) {
        if (e.hash !== expectHead.hash) return bad(`entry ${e.seq} is not the expected head: the trail up to it was rewritten`);
        headSeen = true;
      }
      entries++;
      expected++;
      prev = e.hash;
    }
    if (page.length < PAGE) break;
  }
  const last = expected - 1;
  if (expectHead && !headSeen) {
    return { ok: false, entries, badSeq: last + 1, reason: `the trail ends at entry ${last}, before the expected head ${expectHead.seq}: its newest entries were removed` };
  }
  return { ok: true, entries, head: last ? { seq: last, hash: prev } : null };
}

/** "SEQ:HASH" as `audit verify` prints and --expect-head takes it; throws a TypeError otherwise. */
export function parseHead(text: string): ChainHead {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim().toLowerCase());
  if (!m || Number(m[1]) < 1) throw new TypeError('expected SEQ:HASH as `sealrelay audit verify` prints it (e.g. 42:3f…, 64 hex digits)');
  return { seq: Number(m[1]), hash: m[2]! };
}

export const formatHead = (head: ChainHead): string => `${head.seq}:${head.hash}`;
