// The parts of one large message written to the store while it arrives
// (Store.stageBodyPart), numbered from 1 in order; its head follows at the enqueue
// as part 0. Each part's bytes go back to the receive budget once the store has it.
// A failed write is remembered, not thrown: the message is answered as a failed
// commit at its end (the client keeps it and retries), and later parts are dropped.
import type { Store } from '../store/store.ts';
import type { Ticket } from './receive-budget.ts';

export class StagedParts {
  #count = 0;
  #bytes = 0;
  #failure: Error | null = null;
  #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly store: Pick<Store, 'stageBodyPart' | 'discardStaged'>,
    private readonly queueId: string,
    private readonly ticket: Ticket,
  ) {}

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The first write that failed, if any. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Writes the next part; resolves when the store has it (or the write failed). Never rejects. */
  write(part: Buffer): Promise<void> {
    const length = part.length;
    if (this.#failure) {
      this.ticket.release(length);
      return Promise.resolve();
    }
    this.#count += 1;
    this.#bytes += length;
    // The store may take the part's memory: nothing here reads it again.
    const written = this.store.stageBodyPart(this.queueId, this.#count, part).then(
      () => this.ticket.release(length),
      (err: Error) => {
        this.#failure ??= err;
        this.ticket.release(length);
      },
    );
    this.#inFlight.add(written);
    void written.then(() => this.#inFlight.delete(written));
    return written;
  }

  /** Resolves once no write is in flight. */
  async settled(): Promise<void> {
    while (this.#inFlight.size) await Promise.all(this.#inFlight);
  }

  /** Drops what was written (the message will not be enqueued whole from these parts). Rejects with the store's error. */
  async discard(): Promise<void> {
    await this.settled();
    if (this.#count === 0) return;
    this.#count = 0;
    this.#bytes = 0;
    await this.store.discardStaged(this.queueId);
  }
}
