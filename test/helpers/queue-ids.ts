/**
 * queue-ids: every queue id a relay's store file knows, to count the messages the
 * relay made itself (bounces). A bounce is queued in the same commit as the record
 * that bounced, so once that record is seen, any bounce is either still queued or
 * named by a record of its own.
 */
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

/** Queue ids of the messages still queued and of every record (read in that order: a message leaves the queue in the commit that writes its last record). */
export async function queueIdsIn(storePath: string): Promise<Set<string>> {
  const reader = new SqliteStore(storePath);
  try {
    const queued = (await reader.listQueue()).map((e) => e.queueId);
    const recorded = (await reader.queryLog({})).map((r) => r.queueId);
    return new Set([...queued, ...recorded]);
  } finally {
    await reader.close();
  }
}

/** Queue ids in `after` that are neither in `before` nor among `mine`: the messages the relay queued meanwhile. */
export function madeSince(before: Set<string>, after: Set<string>, mine: readonly string[]): string[] {
  return [...after].filter((id) => !before.has(id) && !mine.includes(id));
}
