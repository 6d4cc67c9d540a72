// The MAIL FROM free-space check reads the store's file system with statfs at most
// once a second, however many sessions ask (free-space.ts), and refuses what would
// leave less than ingress.queue_minfree_bytes behind.
import { mkdtempSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FreeSpace, spaceRefusal } from '../../src/ingress/free-space.ts';

it('callers within a second share one statfs reading; a later caller gets a new one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-free-'));
  let now = 1_000_000;
  const space = new FreeSpace(dir, () => now);
  const first = space.bytes();
  const burst = Array.from({ length: 100 }, () => space.bytes());
  expect(burst.every((p) => p === first)).toBe(true);
  now += 999;
  expect(space.bytes()).toBe(first);
  now += 1;
  const next = space.bytes();
  expect(next).not.toBe(first);
  // The reading is the file system's own.
  const s = await statfs(dir);
  expect(Math.abs((await next)! - s.bavail * s.bsize)).toBeLessThan(64 * 1024 * 1024);
});

it('a directory that cannot be read is "unknown", never a refusal', async () => {
  const space = new FreeSpace(join(tmpdir(), 'sealrelay-no-such-dir', 'x'));
  expect(await space.bytes()).toBeNull();
  expect(spaceRefusal(null, 1, 1)).toBeNull();
});

it('refuses when free space is under the threshold plus the declared size, with 452 4.3.1', () => {
  expect(spaceRefusal(100, 60, 40)).toBeNull();
  const refused = spaceRefusal(99, 60, 40);
  expect([refused?.code, refused?.enhanced, refused?.message, refused?.stage]).toEqual([452, '4.3.1', 'Insufficient system storage', 'mail']);
  expect(spaceRefusal(0, 0, 0)).toBeNull();
});
