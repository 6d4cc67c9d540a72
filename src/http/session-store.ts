// Where server-side sessions live. The interface is what a shared store
// (PostgreSQL, for several relays behind one name) implements later; the memory
// store serves one node. Sessions are kept under the SHA-256 of their id, never the
// id itself: whoever reads the store (a backup, a debug dump) gets no live cookie.

/** What a session may remember: flat, JSON-serialisable values (a principal, a level, an item id). */
export type SessionData = Readonly<Record<string, string | number | boolean | null>>;

export interface StoredSession {
  /** Hex SHA-256 of the cookie's id. */
  readonly idHash: string;
  readonly data: SessionData;
  /** Epoch ms; the absolute timeout counts from here. */
  readonly createdAt: number;
  /** Epoch ms; the idle timeout counts from here. */
  readonly lastSeenAt: number;
}

export interface SessionStore {
  get(idHash: string): Promise<StoredSession | null>;
  put(session: StoredSession): Promise<void>;
  touch(idHash: string, lastSeenAt: number): Promise<void>;
  delete(idHash: string): Promise<void>;
  /** Removes sessions idle since before `idleBefore` or created before `createdBefore`. */
  deleteExpired(idleBefore: number, createdBefore: number): Promise<void>;
  /** Every session without its times (the GET side-effect probe); a shared store may leave it out. */
  describe?(): Promise<{ idHash: string; data: SessionData }[]>;
}

/** Sessions held at once by the memory store; past it the longest-idle are dropped (their users sign in again). */
export const MEMORY_SESSIONS_MAX = 100_000;

export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, StoredSession>();
  readonly #max: number;

  constructor(opts: { max?: number } = {}) {
    this.#max = opts.max ?? MEMORY_SESSIONS_MAX;
  }

  async get(idHash: string): Promise<StoredSession | null> {
    return this.#sessions.get(idHash) ?? null;
  }

  async put(session: StoredSession): Promise<void> {
    this.#sessions.delete(session.idHash);
    while (this.#sessions.size >= this.#max) this.#dropLongestIdle();
    this.#sessions.set(session.idHash, session);
  }

  async touch(idHash: string, lastSeenAt: number): Promise<void> {
    const s = this.#sessions.get(idHash);
    if (s) this.#sessions.set(idHash, { ...s, lastSeenAt });
  }

  async delete(idHash: string): Promise<void> {
    this.#sessions.delete(idHash);
  }

  async deleteExpired(idleBefore: number, createdBefore: number): Promise<void> {
    for (const [id, s] of this.#sessions) if (s.lastSeenAt < idleBefore || s.createdAt < createdBefore) this.#sessions.delete(id);
  }

  async describe(): Promise<{ idHash: string; data: SessionData }[]> {
    return [...this.#sessions.values()].map(({ idHash, data }) => ({ idHash, data })).sort((a, b) => a.idHash.localeCompare(b.idHash));
  }

  #dropLongestIdle(): void {
    let oldest: StoredSession | null = null;
    for (const s of this.#sessions.values()) if (!oldest || s.lastSeenAt < oldest.lastSeenAt) oldest = s;
    if (oldest) this.#sessions.delete(oldest.idHash);
  }
}
