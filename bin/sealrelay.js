#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=16384 node --expose-gc
// (Run directly, the relay gets what `npm start` gives it: glibc's mmap threshold
// fixed low and --expose-gc, so message memory is given back: README "Memory".)
// Entry point of the `sealrelay` command. It runs the compiled JavaScript in dist/
// (`npm run build`; `npm start` and `npm test` build first). dist/ is a cache of
// src/: where src/ is present and a source file is newer than the build, or there
// is no build, the TypeScript sources run through tsx instead, so an edit is never
// hidden behind an old build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/.built', import.meta.url);
const sources = fileURLToPath(new URL('../src/', import.meta.url));

function buildIsCurrent() {
  if (!existsSync(built)) return false;
  if (!existsSync(sources)) return true;
  const builtAt = statSync(built).mtimeMs;
  return readdirSync(sources, { recursive: true }).every((file) => statSync(`${sources}/${file}`).mtimeMs <= builtAt);
}

if (buildIsCurrent()) {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
