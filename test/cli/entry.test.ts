// bin/sealrelay.js runs the build in dist/ when it is current, and the TypeScript
// sources otherwise: a copy of the entry point in a temp tree with stand-in modules
// that say which one ran.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function tree(): { dir: string; run: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-entry-'));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
  mkdirSync(join(dir, 'src', 'cli'), { recursive: true });
  copyFileSync(join(ROOT, 'bin', 'sealrelay.js'), join(dir, 'bin', 'sealrelay.js'));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'dist', 'cli', 'main.js'), "console.log('compiled');\n");
  writeFileSync(join(dir, 'src', 'cli', 'main.ts'), "const from: string = 'source';\nconsole.log(from);\n");
  return { dir, run: () => execFileSync(process.execPath, [join(dir, 'bin', 'sealrelay.js')], { encoding: 'utf8' }).trim() };
}

const at = (path: string, seconds: number) => utimesSync(path, seconds, seconds);

it('runs dist/ when the build is newer than every source, the sources when one is newer or there is no build', () => {
  const { dir, run } = tree();
  try {
    const now = Date.now() / 1000;
    // Directories count too: a file added to src/ after the build changes its directory's time.
    at(join(dir, 'src', 'cli', 'main.ts'), now - 60);
    at(join(dir, 'src', 'cli'), now - 60);
    writeFileSync(join(dir, 'dist', '.built'), '');
    at(join(dir, 'dist', '.built'), now - 30);
    expect(run()).toBe('compiled');
    // an edit after the build: the sources run
    at(join(dir, 'src', 'cli', 'main.ts'), now);
    expect(run()).toBe('source');
    // no finished build (no stamp): the sources run
    rmSync(join(dir, 'dist', '.built'));
    expect(run()).toBe('source');
    // an image with the build and no sources: the build runs
    writeFileSync(join(dir, 'dist', '.built'), '');
    rmSync(join(dir, 'src'), { recursive: true });
    expect(run()).toBe('compiled');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
