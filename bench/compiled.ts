// compiled: bench children that run relay code as the relay runs it — compiled
// JavaScript, no TypeScript loader. tsx costs a process tens of MB of RSS (its
// loader thread, and a copy in every worker thread that registers it), which would
// sit in a figure the README quotes; `npm start` and the Docker image run dist/.
//
// The children's entry modules, with the relay modules they import and the threads
// those start (store-worker), are compiled from the current sources into a
// directory of their own with the project's compiler options (type checking is
// `npm run typecheck`'s job: --noCheck here), so the shared dist/ is neither needed
// nor touched and no stale build can be measured.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
/** Modules started by URL rather than imported: tsc only follows imports. */
const THREAD_ENTRIES = ['src/store/sqlite/store-worker.ts'];

/** Compiles `entries` (paths from the repository root, e.g. bench/portal-server.ts) into `dir`; returns each one's compiled path. */
export function compileBenchChildren(dir: string, entries: readonly string[]): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  const tsconfig = join(dir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.json'),
      compilerOptions: { noEmit: false, noCheck: true, types: [], outDir: join(dir, 'out'), rootDir: ROOT, rewriteRelativeImportExtensions: true, incremental: false },
      files: [...entries, ...THREAD_ENTRIES].map((e) => join(ROOT, e)),
      include: [],
    }),
  );
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', tsconfig], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
  // The compiled modules find their packages and run as ES modules, as in the repository.
  const modules = join(dir, 'out', 'node_modules');
  if (!existsSync(modules)) symlinkSync(join(ROOT, 'node_modules'), modules);
  writeFileSync(join(dir, 'out', 'package.json'), JSON.stringify({ type: 'module', private: true }));
  return Object.fromEntries(entries.map((e) => [e, join(dir, 'out', e.replace(/\.ts$/, '.js'))]));
}
