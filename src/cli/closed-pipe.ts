// A closed pipe ends the command quietly. `sealrelay queue list | head` stops
// once head has read enough, as a Unix tool killed by SIGPIPE would: Node ignores
// SIGPIPE and reports EPIPE as an error event on the stream instead, which, with
// nobody listening, dies with a stack trace. main.ts installs this once, for every command.

/** Stdout closed: nobody reads the rest, so stop now with the exit code so far. Stderr closed: carry on without it. */
export function endQuietlyOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit();
  });
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    // Nowhere left to complain to; the exit code still tells how the command went.
    if (err.code !== 'EPIPE') throw err;
  });
}
