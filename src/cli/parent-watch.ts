// Under a package script (`npm start`), npm runs the command through a shell
// (`sh -c ...`) and, told to stop, forwards SIGTERM and SIGINT to that shell
// only. The shell dies of it without passing it on, so the relay would be left
// running, orphaned, holding its ports. Under npm, then, a command lives no
// longer than its parent: when the parent goes away, it gets the SIGTERM that
// was meant for it, and `sealrelay start` stops as it always does on SIGTERM.
//
// Only under npm (main.ts decides): a relay started in the background from a
// shell (`nohup sealrelay start &`) must outlive that shell. And not when a stop
// was already asked for (the whole process group signalled at once, as systemd
// and a terminal's Ctrl-C do): a second signal would cut the graceful stop short.

/** How often the parent is looked at, in ms: a stop asked of npm reaches the relay within this. */
const PARENT_POLL_MS = 500;
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export function stopWithParent(pollMs = PARENT_POLL_MS): void {
  const parent = process.ppid;
  // Already the child of init: there is no parent to outlive.
  if (parent <= 1) return;
  let stopAsked = false;
  const note = (signal: NodeJS.Signals) => {
    stopAsked = true;
    // Alone, this listener would swallow the signal: let it do what it does without us (end the process).
    if (process.listenerCount(signal) === 1) {
      for (const s of STOP_SIGNALS) process.off(s, note);
      process.kill(process.pid, signal);
    }
  };
  for (const s of STOP_SIGNALS) process.on(s, note);
  const timer = setInterval(() => {
    // process.ppid is read anew each time: an orphan has been handed to init (or a subreaper).
    if (process.ppid === parent) return;
    clearInterval(timer);
    if (!stopAsked) process.kill(process.pid, 'SIGTERM');
  }, pollMs);
  // Never what keeps a command running.
  timer.unref();
}
