// The running relay erases portal items past their expiry by itself, every
// portal.expiry_sweep_seconds, with nobody running `sealrelay portal expire`: an
// item that expires while it runs loses its ciphertext, an item still in date keeps
// it, and the erasure is recorded. The relay is started as `sealrelay start` starts
// it (startRelay); items are written beside it the way the CLI would.
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { Keyring } from '../../src/portal/master-keys.ts';
import { sealPortalItem, type PortalItemFacts } from '../../src/portal/vault.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startTestRelay, testConfig } from '../helpers/relay.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }], 'k1');
const facts = (over: Partial<PortalItemFacts>): PortalItemFacts => ({
  queueId: 'QEXP',
  seq: 0,
  messageId: null,
  sender: 'lab@clinic.example',
  recipient: 'pat@patient.example',
  createdAt: Date.now() - 60_000,
  expiresAt: Date.now() + 86_400_000,
  ...over,
});

it('the relay sweeps expired portal items while it runs, and only those', async () => {
  const relay = await startTestRelay(testConfig({ portal: { expiry_sweep_seconds: 1 } }));
  const side = new SqliteStore(relay.config.store.path);
  try {
    // Expiring a few seconds after the relay started (and swept once at start): only a later, periodic sweep can erase it.
    const expired = sealPortalItem(keyring, facts({ expiresAt: Date.now() + 3000 }), Buffer.from('Subject: x\r\n\r\nold\r\n')).item;
    const current = sealPortalItem(keyring, facts({ seq: 1 }), Buffer.from('Subject: y\r\n\r\nnew\r\n')).item;
    await side.putPortalItem(expired);
    await side.putPortalItem(current);
    const deadline = Date.now() + 20_000;
    while ((await side.getPortalItem(expired.id))?.sealed !== null) {
      if (Date.now() > deadline) throw new Error('the relay never erased the expired item');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await side.getPortalItem(expired.id)).toMatchObject({ erasedAt: expect.any(Number), sealed: null });
    expect((await side.getPortalItem(current.id))?.sealed).toEqual(current.sealed);
    expect((await side.queryLog({ message: 'QEXP' })).map((r) => [r.seq, r.outcome])).toEqual([[0, 'portal-expired']]);
  } finally {
    await side.close();
    await relay.close();
  }
});
