// A budget of bytes in work at once, for the memory that large messages take.
// Encryption holds several copies of a message while it runs (openpgp.js about six),
// and one pgp message to a hundred recipients is a hundred encryptions: unbounded, a
// few large messages would take the delivery thread's heap down, and with it — the
// job being retried after the crash — the thread again and again. The scheduler uses
// one too, for the messages its jobs hold. Work that needs `bytes` waits until they
// fit, first come first served (a large message is never starved by small ones);
// work larger than the whole budget runs alone.
export class ByteBudget {
  private inUse = 0;
  private running = 0;
  private readonly waiting: { bytes: number; start: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new RangeError('a byte budget must be positive');
  }

  async run<T>(bytes: number, work: () => Promise<T> | T): Promise<T> {
    await this.acquire(bytes);
    try {
      return await work();
    } finally {
      this.release(bytes);
    }
  }

  /** Bytes and jobs in work now, and jobs waiting (tests watch it). */
  get usage(): { bytes: number; running: number; waiting: number } {
    return { bytes: this.inUse, running: this.running, waiting: this.waiting.length };
  }

  private fits(bytes: number): boolean {
    return this.running === 0 || this.inUse + bytes <= this.limit;
  }

  private acquire(bytes: number): Promise<void> {
    if (!this.waiting.length && this.fits(bytes)) {
      this.take(bytes);
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiting.push({
        bytes,
        start: () => {
          this.take(bytes);
          resolve();
        },
      }),
    );
  }

  private take(bytes: number): void {
    this.inUse += bytes;
    this.running++;
  }

  private release(bytes: number): void {
    this.inUse -= bytes;
    this.running--;
    while (this.waiting.length && this.fits(this.waiting[0]!.bytes)) this.waiting.shift()!.start();
  }
}
