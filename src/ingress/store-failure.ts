// Whether a failed commit failed for want of room. The client is told either way
// that the failure is temporary and keeps the message; a store out of room says so
// (replies.storeFailed: 452 4.3.1 Insufficient system storage, RFC 3463 X.3.1, as
// Postfix does), anything else is the generic 451 4.3.0.

/** Error codes that mean "no room": SQLite's (better-sqlite3 names them), and the file system's (full, over quota). */
const OUT_OF_SPACE = new Set(['SQLITE_FULL', 'ENOSPC', 'EDQUOT']);

export function isOutOfSpace(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && OUT_OF_SPACE.has(code);
}
