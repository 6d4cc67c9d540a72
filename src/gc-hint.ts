// Message bytes pass through each of the relay's threads as large buffers and
// strings (ingress reads a message, the store thread writes and reads its parts,
// delivery signs and sends it). V8 frees their memory only when a garbage
// collection finds them dead, and it times its collections by the JavaScript
// objects a thread allocates, not by the memory those buffers hold: a thread may
// keep 64 MB and more of dead message bytes, and an idle relay keeps them for good
// (memory bench: twenty 25 MB messages left +58 MB held without these collections,
// +15 MB with them). So each thread counts the message bytes it has let go, and collects once
// the large messages among them pass COLLECT_AFTER_BYTES, or once it has been quiet
// for QUIET_MS after letting go of QUIET_MIN_BYTES or more.
//
// Small messages never force a collection while traffic flows: V8's own collections
// keep up with them, and a forced full collection is not free — it lets V8 drop the
// optimised code of every hot function whose object shapes it finds dead, which is
// then compiled again (measured with 10 KB messages at full speed: each forced
// collection dropped 35–116 optimised functions per thread, and compiling them again
// took roughly half a second of CPU; there was one per 32 MiB per thread).
//
// Collecting on demand needs node --expose-gc (npm start, the Docker image and the
// systemd unit run the relay so); without it this does nothing, and the memory is
// given back whenever V8 gets to it.
const COLLECT_AFTER_BYTES = 32 * 1024 * 1024;
const QUIET_MS = 1000;
const QUIET_MIN_BYTES = 4 * 1024 * 1024;
/** Messages at least this large count towards COLLECT_AFTER_BYTES; every message counts towards the quiet collection. */
const LARGE_MESSAGE_BYTES = 256 * 1024;

// A full collection: gc() without options (Node 20's V8 reads an options object as a request for a minor one).
type Collect = () => unknown;

/** Bytes let go since the last collection: all messages, and the large ones alone. */
let released = 0;
let releasedLarge = 0;
let soon: NodeJS.Immediate | null = null;
let quiet: NodeJS.Timeout | null = null;

/** Notes that `bytes` of message data in this thread are no longer referenced. */
export function releasedMessageBytes(bytes: number): void {
  const collect = (globalThis as { gc?: Collect }).gc;
  if (!collect || !(bytes > 0)) return;
  released += bytes;
  if (bytes >= LARGE_MESSAGE_BYTES) releasedLarge += bytes;
  const run = () => {
    released = releasedLarge = 0;
    if (soon) clearImmediate(soon);
    if (quiet) clearTimeout(quiet);
    soon = quiet = null;
    collect();
  };
  // After the current task in either case: the caller's own references are gone by then.
  if (releasedLarge >= COLLECT_AFTER_BYTES) soon ??= setImmediate(run).unref();
  else if (released >= QUIET_MIN_BYTES) {
    if (quiet) quiet.refresh();
    else quiet = setTimeout(run, QUIET_MS).unref();
  }
}
