// One relay per SQLite file: the owner lock refuses a second holder, in this
// process or another, and a holder that dies (SIGKILL) leaves nothing stale.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { startRelay } from '../../src/relay.ts';
import { createLogger } from '../../src/log.ts';
import { lockStoreFile, StoreInUseError } from '../../src/store/sqlite/owner-lock.ts';
import { startTestRelay, submit, testConfig } from '../helpers/relay.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const tempDb = () => join(mkdtempSync(join(tmpdir(), 'sealrelay-lock-')), 'data', 'q.db');

it('a second lock on the same file is refused until the first is released', () => {
  const path = tempDb();
  const first = lockStoreFile(path);
  expect(() => lockStoreFile(path)).toThrow(StoreInUseError);
  expect(() => lockStoreFile(path)).toThrow(/another relay is running on .*q\.db/);
  // Another store file is another matter.
  lockStoreFile(tempDb()).release();
  first.release();
  first.release(); // idempotent
  lockStoreFile(path).release();
});

it('a lock held by another process is refused; when that process is killed the lock is free', async () => {
  const path = tempDb();
  const holder = spawn(process.execPath, ['--import', 'tsx', '-e', `import('./src/store/sqlite/owner-lock.ts').then((m) => { m.lockStoreFile(${JSON.stringify(path)}); console.log('locked'); setInterval(() => {}, 1000); })`], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
      holder.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    expect(() => lockStoreFile(path)).toThrow(StoreInUseError);
  } finally {
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
  }
  lockStoreFile(path).release();
});

it('a second relay on the same store refuses to start and leaves the first untouched', async () => {
  // Nothing is delivered here: the recipient's domain is routed to a closed port.
  const config = testConfig({ delivery: { routes: { 'nowhere.test': '127.0.0.1:9' }, retry: { first_seconds: 3600 } } });
  const first = await startTestRelay(config);
  try {
    await expect(startRelay({ config, logger: createLogger('silent') })).rejects.toThrow(StoreInUseError);
    // The first still takes mail.
    expect(await submit({ port: first.port, from: 'a@x.test', to: ['b@nowhere.test'] })).toMatch(/^250 .*queued as/);
  } finally {
    await first.close();
  }
  // Closed: the file is free again.
  const again = await startRelay({ config, logger: createLogger('silent') });
  await again.close();
});
