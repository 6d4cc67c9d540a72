// watchForEdits: an edit made after the caller's read is reported however soon it
// comes (fs.watchFile missed one made before its own first look), later edits are
// reported once each, and nothing is reported when nothing changed.
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { lookAt, watchForEdits } from '../../src/config/file-watch.ts';

const stops: (() => void)[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempFile(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-watch-'));
  dirs.push(dir);
  const file = join(dir, 'sealrelay.yaml');
  writeFileSync(file, content);
  return file;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it('an edit between the read and the start of watching is reported at once', () => {
  const file = tempFile('a: 1\n');
  const read = lookAt(file);
  writeFileSync(file, 'a: 12\n'); // the relay is still starting
  let changes = 0;
  stops.push(watchForEdits(file, read, 60_000, () => changes++));
  expect(changes).toBe(1);
});

it('later edits are reported by the poll, once each; no edit, no report', async () => {
  const file = tempFile('a: 1\n');
  let changes = 0;
  stops.push(watchForEdits(file, lookAt(file), 20, () => changes++));
  await new Promise((r) => setTimeout(r, 100));
  expect(changes).toBe(0);
  writeFileSync(file, 'a: 22\n');
  await until(() => changes === 1, 'the first edit');
  writeFileSync(file, 'a: 333\n');
  await until(() => changes === 2, 'the second edit');
  await new Promise((r) => setTimeout(r, 100));
  expect(changes).toBe(2);
});

it('a file that appears or disappears is a change; stop() ends the watch', async () => {
  const file = tempFile('x');
  unlinkSync(file);
  let changes = 0;
  const stop = watchForEdits(file, null, 20, () => changes++);
  stops.push(stop);
  expect(changes).toBe(0); // missing then, missing now
  writeFileSync(file, 'users: {}\n');
  await until(() => changes === 1, 'the file appearing');
  unlinkSync(file);
  await until(() => changes === 2, 'the file going away');
  stop();
  writeFileSync(file, 'again');
  await new Promise((r) => setTimeout(r, 100));
  expect(changes).toBe(2);
});
