// cleanup: whatever the benchmark starts is stopped however it ends.
//
// Each child process and temp directory registers a synchronous undo here. The
// undos run on normal exit, on SIGINT/SIGTERM (Ctrl-C in the middle of a run)
// and after an uncaught error, newest first, so a relay is stopped before the
// directory holding its store is removed. They must be synchronous: an 'exit'
// handler cannot wait for promises.

type Undo = () => void;

const undos = new Map<number, { what: string; undo: Undo }>();
let nextId = 1;
let installed = false;

/** Registers `undo`; call the returned function once the thing is cleaned up normally. */
export function onCleanup(what: string, undo: Undo): () => void {
  install();
  const id = nextId++;
  undos.set(id, { what, undo });
  return () => undos.delete(id);
}

export function runCleanups(): void {
  const all = [...undos.entries()].reverse();
  undos.clear();
  for (const [, { what, undo }] of all) {
    try {
      undo();
    } catch (err) {
      console.error(`bench: cleanup of ${what} failed: ${(err as Error).message}`);
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runCleanups);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      console.error(`bench: ${signal}, stopping everything it started`);
      runCleanups();
      process.exit(code);
    });
  }
}
