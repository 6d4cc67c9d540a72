// Delivery connections kept open for more queued work to the same host.
//
// A session is reused only for the same host, port and TLS profile (floor,
// verification, whether TLS is allowed), so a connection set up under a weaker
// policy never carries a message that needs a stronger one. At most
// `perHost` sessions are open to one host at a time; callers beyond that wait.
// Idle sessions are closed after `idleMs` (Postfix smtp_connection_cache_time_limit).

export interface PooledSession {
  /** False once the peer or a failure made the connection unfit for another transaction. */
  readonly usable: boolean;
  readonly transactions: number;
  /** RSET before reuse; rejects when the connection is no longer fit. */
  reset(): Promise<void>;
  close(): void;
}

export interface PoolLimits {
  /** Sessions open to one host at once. */
  readonly perHost: number;
  /** How long an idle session is kept for more work. */
  readonly idleMs: number;
  /** Transactions one session carries before it is replaced. */
  readonly maxTransactions: number;
}

interface HostSlot<S extends PooledSession> {
  open: number;
  idle: { session: S; timer: NodeJS.Timeout }[];
  waiters: (() => void)[];
}

export class SessionPool<S extends PooledSession> {
  private readonly slots = new Map<string, HostSlot<S>>();
  private closed = false;

  constructor(private opts: PoolLimits) {}

  /** New limits (a config reload): they apply to the next session taken or given back. */
  configure(limits: PoolLimits): void {
    this.opts = limits;
    // Callers waiting for a slot look again: a higher perHost may let them in now.
    for (const slot of this.slots.values()) for (const wake of slot.waiters.splice(0)) wake();
  }

  /**
   * Runs `use` with a session for `key`: an idle one when there is one, else a
   * new one from `open`. The session goes back to the pool when `use` resolves and
   * it is still usable; it is closed when `use` throws.
   */
  async with<T>(key: string, open: () => Promise<S>, use: (session: S) => Promise<T>): Promise<T> {
    const slot = this.slot(key);
    const session = await this.acquire(slot, open);
    let ok = false;
    try {
      const result = await use(session);
      ok = true;
      return result;
    } finally {
      this.release(key, slot, session, ok);
    }
  }

  private slot(key: string): HostSlot<S> {
    let slot = this.slots.get(key);
    if (!slot) this.slots.set(key, (slot = { open: 0, idle: [], waiters: [] }));
    return slot;
  }

  private async acquire(slot: HostSlot<S>, open: () => Promise<S>): Promise<S> {
    for (;;) {
      while (slot.idle.length) {
        const { session, timer } = slot.idle.pop()!;
        clearTimeout(timer);
        try {
          if (!session.usable) throw new Error('unusable');
          await session.reset();
          return session;
        } catch {
          session.close();
          slot.open--;
        }
      }
      if (slot.open < this.opts.perHost) {
        slot.open++;
        try {
          return await open();
        } catch (err) {
          slot.open--;
          this.wakeOne(slot);
          throw err;
        }
      }
      await new Promise<void>((resolve) => slot.waiters.push(resolve));
    }
  }

  private release(key: string, slot: HostSlot<S>, session: S, ok: boolean): void {
    const keep = ok && !this.closed && session.usable && session.transactions < this.opts.maxTransactions && this.opts.idleMs > 0;
    if (keep) {
      const timer = setTimeout(() => {
        const i = slot.idle.findIndex((e) => e.session === session);
        if (i >= 0) slot.idle.splice(i, 1);
        session.close();
        slot.open--;
        this.wakeOne(slot);
        if (!slot.open && !slot.waiters.length) this.slots.delete(key);
      }, this.opts.idleMs);
      timer.unref();
      slot.idle.push({ session, timer });
    } else {
      session.close();
      slot.open--;
    }
    this.wakeOne(slot);
  }

  private wakeOne(slot: HostSlot<S>): void {
    slot.waiters.shift()?.();
  }

  /** Closes idle sessions; sessions in use close when their callers finish. */
  close(): void {
    this.closed = true;
    for (const slot of this.slots.values()) {
      for (const { session, timer } of slot.idle.splice(0)) {
        clearTimeout(timer);
        session.close();
        slot.open--;
      }
    }
  }
}
