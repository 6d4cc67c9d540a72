// Message bytes held by ingress at once, across every session: from the first byte
// of DATA until they are written to the store (a large message's parts as they
// arrive, its head at the commit) or the message is refused. Without a bound,
// many clients sending at once could hold any amount of memory between them.
//
// A message's size is known only at its end, so bytes are granted as they arrive.
// Messages in DATA form a line in arrival order: the first in line always gets its
// bytes (so the line always moves, and no set of half-received messages can wait on
// each other forever); the others get theirs while the total stays within the
// limit, else they wait, and their sessions stop being read, which TCP passes back
// to the client as backpressure. At most the limit plus one maximum-size message is
// held at once.
interface Waiter {
  readonly ticket: Ticket;
  readonly bytes: number;
  readonly resume: () => void;
}

export class ReceiveBudget {
  #limit: number;
  #held = 0;
  readonly #line: Ticket[] = [];
  #waiting: Waiter[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** A reload may change the limit; messages in DATA keep what they hold. */
  set limit(limit: number) {
    this.#limit = limit;
    this.#wake();
  }

  /** Bytes held, messages in DATA and messages waiting for bytes (tests and logs watch it). */
  get usage(): { bytes: number; messages: number; waiting: number } {
    return { bytes: this.#held, messages: this.#line.length, waiting: this.#waiting.length };
  }

  /** A message enters DATA. */
  open(): Ticket {
    const ticket = new Ticket(this);
    this.#line.push(ticket);
    return ticket;
  }

  /** @internal Ticket.take */
  take(ticket: Ticket, bytes: number): Promise<void> | null {
    if (this.#fits(ticket, bytes)) {
      this.#grant(ticket, bytes);
      return null;
    }
    return new Promise((resume) => this.#waiting.push({ ticket, bytes, resume }));
  }

  /** @internal Ticket.release */
  release(ticket: Ticket, bytes: number): void {
    const given = Math.min(bytes, ticket.bytes);
    ticket.bytes -= given;
    this.#held -= given;
    this.#wake();
  }

  /** @internal Ticket.close */
  close(ticket: Ticket): void {
    const at = this.#line.indexOf(ticket);
    if (at < 0) return;
    this.#line.splice(at, 1);
    this.#held -= ticket.bytes;
    // A waiter whose message closed (client gone) is let go without bytes.
    const gone = this.#waiting.filter((w) => w.ticket === ticket);
    this.#waiting = this.#waiting.filter((w) => w.ticket !== ticket);
    for (const w of gone) w.resume();
    this.#wake();
  }

  #fits(ticket: Ticket, bytes: number): boolean {
    return this.#line[0] === ticket || this.#held + bytes <= this.#limit;
  }

  #grant(ticket: Ticket, bytes: number): void {
    ticket.bytes += bytes;
    this.#held += bytes;
  }

  /** Waiters in arrival order; the first in line always fits, so the line never stalls. */
  #wake(): void {
    const still: Waiter[] = [];
    for (const w of this.#waiting) {
      if (this.#fits(w.ticket, w.bytes)) {
        this.#grant(w.ticket, w.bytes);
        w.resume();
      } else still.push(w);
    }
    this.#waiting = still;
  }
}

/** One message's share of the budget, from DATA until it is committed or refused. */
export class Ticket {
  bytes = 0;
  #closed = false;

  constructor(private readonly budget: ReceiveBudget) {}

  /** Asks for `bytes` more: null when granted now, else a promise that resolves when they are. */
  take(bytes: number): Promise<void> | null {
    if (this.#closed) return null;
    return this.budget.take(this, bytes);
  }

  /** Gives back bytes no longer held in memory (a part written to the store). */
  release(bytes: number): void {
    if (!this.#closed) this.budget.release(this, bytes);
  }

  /** Gives every byte back (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.budget.close(this);
  }
}
