// `sealrelay queue show` says when a message came with REQUIRETLS (RFC 8689), and
// says nothing of it for one that did not.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeSandbox, message, runCli, withStore, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeEach(async () => {
  box = makeSandbox();
  await withStore(box.storePath, async (store) => {
    await store.enqueue(message('QR', ['pat@example.org'], Date.now(), { requireTls: true }));
    await store.enqueue(message('QN', ['pat@example.org'], Date.now()));
  });
});
afterEach(() => box.cleanup());

it('queue show names the REQUIRETLS demand of a message that has it, and only then', async () => {
  const demanded = await runCli(['--config', box.configFile, 'queue', 'show', 'QR']);
  expect(demanded.code).toBe(0);
  expect(demanded.stdout).toMatch(/^requiretls:\s+yes \(verified TLS to a next hop that advertises REQUIRETLS, or a bounce\)$/m);
  const plain = await runCli(['--config', box.configFile, 'queue', 'show', 'QN']);
  expect(plain.code).toBe(0);
  expect(plain.stdout).not.toMatch(/requiretls/i);
  expect(JSON.parse((await runCli(['--config', box.configFile, 'queue', 'show', 'QR', '--json'])).stdout).entry.requireTls).toBe(true);
});
