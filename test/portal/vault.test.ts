// The portal vault (src/portal/vault.ts): a message sealed for an item opens again
// whole, and nothing else opens it — another master key, another item's id, an
// altered byte anywhere, a keyInLink item without (or with the wrong) link part.
// Master keys rotate: new items go under the current key, old ones stay readable,
// and rewrap moves them without touching the content. Keys never show when a
// keyring is printed or logged.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { GcmAuthError, gcmOpen } from '../../src/portal/gcm.ts';
import { Keyring } from '../../src/portal/master-keys.ts';
import {
  contentAad,
  deriveDataKey,
  isLinkKey,
  isPortalToken,
  openPortalItem,
  portalTokenHash,
  PortalVaultError,
  rewrapItemKey,
  sealPortalItem,
  wrapAad,
  type PortalItemFacts,
} from '../../src/portal/vault.ts';
import type { SealedContent } from '../../src/store/store.ts';

const facts: PortalItemFacts = {
  queueId: 'Q1',
  seq: 0,
  messageId: '<m@clinic.example>',
  sender: 'lab@clinic.example',
  recipient: 'pat@patient.example',
  createdAt: 1_000,
  expiresAt: 2_000,
};
const MESSAGE = Buffer.from('Subject: Your results\r\nContent-Type: text/plain\r\n\r\nHbA1c 6.1%\r\n');
const k1 = randomBytes(32);
const k2 = randomBytes(32);
const ring1 = new Keyring([{ id: 'k1', key: k1 }], 'k1');
/** After rotation: k2 is current, k1 still configured. */
const ring12 = new Keyring([{ id: 'k1', key: k1 }, { id: 'k2', key: k2 }], 'k2');

/** Opening must fail with `failure`, and never hand back bytes. */
function failsWith(open: () => Buffer, failure: PortalVaultError['failure']): void {
  let opened: Buffer | undefined;
  try {
    opened = open();
  } catch (err) {
    expect(err).toBeInstanceOf(PortalVaultError);
    expect((err as PortalVaultError).failure).toBe(failure);
    return;
  }
  throw new Error(`opened ${opened?.length} bytes; expected ${failure}`);
}

/** `sealed` with one bit of `field` flipped. */
function flipped(sealed: SealedContent, field: 'wrapNonce' | 'wrappedKey' | 'contentNonce' | 'content', at = 0): SealedContent {
  const bytes = Buffer.from(sealed[field]);
  bytes[at] = bytes[at]! ^ 0x01;
  return { ...sealed, [field]: bytes };
}

describe('sealing and opening', () => {
  it('a sealed message opens whole; the item holds the facts, the size and only the token hash', () => {
    const { item, token, linkKey } = sealPortalItem(ring1, facts, MESSAGE);
    expect(linkKey).toBeNull();
    expect(item).toMatchObject({ ...facts, size: MESSAGE.length });
    expect(item.sealed.keyId).toBe('k1');
    expect(item.sealed.keyInLink).toBe(false);
    expect(item.sealed.wrapNonce).toHaveLength(12);
    expect(item.sealed.contentNonce).toHaveLength(12);
    // GCM: ciphertext as long as the message, and a 16-byte tag.
    expect(item.sealed.content).toHaveLength(MESSAGE.length + 16);
    expect(item.sealed.content.includes(Buffer.from('HbA1c'))).toBe(false);
    expect(isPortalToken(token)).toBe(true);
    expect(item.tokenHash.equals(portalTokenHash(token))).toBe(true);
    expect(openPortalItem(ring1, item).equals(MESSAGE)).toBe(true);
  });

  it('every item has its own id, data key, nonces and token', () => {
    const a = sealPortalItem(ring1, facts, MESSAGE);
    const b = sealPortalItem(ring1, facts, MESSAGE);
    expect(a.item.id).not.toBe(b.item.id);
    expect(a.token).not.toBe(b.token);
    expect(a.item.sealed.content.equals(b.item.sealed.content)).toBe(false);
    expect(a.item.sealed.wrappedKey.equals(b.item.sealed.wrappedKey)).toBe(false);
    expect(a.item.sealed.contentNonce.equals(b.item.sealed.contentNonce)).toBe(false);
  });

  it('fails closed: another master key under the same id, a key not configured, another item id, any altered byte', () => {
    const { item } = sealPortalItem(ring1, facts, MESSAGE);
    failsWith(() => openPortalItem(new Keyring([{ id: 'k1', key: randomBytes(32) }], 'k1'), item), 'not-authentic');
    failsWith(() => openPortalItem(new Keyring([{ id: 'k2', key: k1 }], 'k2'), item), 'unknown-key');
    // The same key bytes under another id: the key id is bound to the wrapped key.
    failsWith(() => openPortalItem(new Keyring([{ id: 'k2', key: k1 }], 'k2'), { ...item, sealed: { ...item.sealed, keyId: 'k2' } }), 'not-authentic');
    // Ciphertext and wrapped key moved to another item's row.
    const other = sealPortalItem(ring1, facts, MESSAGE).item;
    failsWith(() => openPortalItem(ring1, { id: other.id, sealed: item.sealed }), 'not-authentic');
    // Only the content moved: the other item's data key does not open it.
    failsWith(() => openPortalItem(ring1, { id: other.id, sealed: { ...other.sealed, contentNonce: item.sealed.contentNonce, content: item.sealed.content } }), 'not-authentic');
    for (const field of ['wrapNonce', 'wrappedKey', 'contentNonce', 'content'] as const) {
      failsWith(() => openPortalItem(ring1, { id: item.id, sealed: flipped(item.sealed, field) }), 'not-authentic');
    }
    // The tag (last 16 bytes) and a truncated ciphertext.
    failsWith(() => openPortalItem(ring1, { id: item.id, sealed: flipped(item.sealed, 'content', item.sealed.content.length - 1) }), 'not-authentic');
    failsWith(() => openPortalItem(ring1, { id: item.id, sealed: { ...item.sealed, content: item.sealed.content.subarray(0, 10) } }), 'not-authentic');
    // Flipping the keyInLink flag in the row does not turn the server part into the data key.
    failsWith(() => openPortalItem(ring1, { id: item.id, sealed: { ...item.sealed, keyInLink: true } }, randomBytes(32).toString('base64url')), 'not-authentic');
    failsWith(() => openPortalItem(ring1, { id: item.id, sealed: null }), 'erased');
    expect(openPortalItem(ring1, item).equals(MESSAGE)).toBe(true);
  });
});

describe('what each layer is bound to (read with the master key, as an auditor or an intruder holding it would)', () => {
  it('the ciphertext opens with its data key under its own item id only', () => {
    const { item } = sealPortalItem(ring1, facts, MESSAGE);
    const s = item.sealed;
    const dataKey = ring1.unwrap('k1', s.wrapNonce, s.wrappedKey, wrapAad('k1', item.id, false));
    expect(gcmOpen(dataKey, s.contentNonce, s.content, contentAad(item.id)).equals(MESSAGE)).toBe(true);
    expect(() => gcmOpen(dataKey, s.contentNonce, s.content, contentAad('another-item'))).toThrow(GcmAuthError);
  });

  it('a keyInLink data key is derived for its own item id only', () => {
    const { item, linkKey } = sealPortalItem(ring1, facts, MESSAGE, { keyInLink: true });
    const s = item.sealed;
    const serverPart = ring1.unwrap('k1', s.wrapNonce, s.wrappedKey, wrapAad('k1', item.id, true));
    const link = Buffer.from(linkKey!, 'base64url');
    expect(gcmOpen(deriveDataKey(item.id, serverPart, link), s.contentNonce, s.content, contentAad(item.id)).equals(MESSAGE)).toBe(true);
    expect(deriveDataKey('another-item', serverPart, link).equals(deriveDataKey(item.id, serverPart, link))).toBe(false);
  });
});

describe('keyInLink', () => {
  it('opens only with the link part, which is given out once and appears nowhere in the item', () => {
    const { item, linkKey, token } = sealPortalItem(ring1, facts, MESSAGE, { keyInLink: true });
    expect(item.sealed.keyInLink).toBe(true);
    expect(linkKey).not.toBeNull();
    expect(isLinkKey(linkKey!)).toBe(true);
    expect(linkKey).not.toBe(token);
    const link = Buffer.from(linkKey!, 'base64url');
    expect(link.length).toBeGreaterThanOrEqual(16);
    const stored = Buffer.concat([Buffer.from(JSON.stringify({ ...item, sealed: null })), ...Object.values(item.sealed).filter(Buffer.isBuffer), item.tokenHash]);
    expect(stored.includes(link)).toBe(false);
    expect(stored.includes(Buffer.from(linkKey!))).toBe(false);

    expect(openPortalItem(ring1, item, linkKey).equals(MESSAGE)).toBe(true);
    // The database and the master key alone: no way in.
    failsWith(() => openPortalItem(ring1, item), 'link-key-needed');
    failsWith(() => openPortalItem(ring1, item, 'short'), 'link-key-needed');
    failsWith(() => openPortalItem(ring1, item, randomBytes(32).toString('base64url')), 'not-authentic');
    // Another item's link part, and the server part tried as the whole key.
    const other = sealPortalItem(ring1, facts, MESSAGE, { keyInLink: true });
    failsWith(() => openPortalItem(ring1, item, other.linkKey), 'not-authentic');
    failsWith(() => openPortalItem(ring1, { id: item.id, sealed: { ...item.sealed, keyInLink: false } }), 'not-authentic');
  });

  it('a link part for one item does not open the same ciphertext filed under another id', () => {
    const { item, linkKey } = sealPortalItem(ring1, facts, MESSAGE, { keyInLink: true });
    const other = sealPortalItem(ring1, facts, MESSAGE, { keyInLink: true }).item;
    failsWith(() => openPortalItem(ring1, { id: other.id, sealed: item.sealed }, linkKey), 'not-authentic');
  });
});

describe('rotation and rewrap', () => {
  it('new items use the current key; items under an older configured key stay readable', () => {
    const old = sealPortalItem(ring1, facts, MESSAGE).item;
    const fresh = sealPortalItem(ring12, facts, MESSAGE).item;
    expect(old.sealed.keyId).toBe('k1');
    expect(fresh.sealed.keyId).toBe('k2');
    expect(openPortalItem(ring12, old).equals(MESSAGE)).toBe(true);
    expect(openPortalItem(ring12, fresh).equals(MESSAGE)).toBe(true);
    failsWith(() => openPortalItem(ring1, fresh), 'unknown-key');
  });

  it('rewrap moves the data key to the current master key; the content is untouched and opens without the old key', () => {
    for (const keyInLink of [false, true]) {
      const { item, linkKey } = sealPortalItem(ring1, facts, MESSAGE, { keyInLink });
      const wrapped = { id: item.id, keyInLink, keyId: item.sealed.keyId, wrapNonce: item.sealed.wrapNonce, wrappedKey: item.sealed.wrappedKey };
      const next = rewrapItemKey(ring12, wrapped)!;
      expect(next).toMatchObject({ id: item.id, keyInLink, keyId: 'k2', fromKeyId: 'k1' });
      expect(next.wrappedKey.equals(item.sealed.wrappedKey)).toBe(false);
      const moved = { id: item.id, sealed: { ...item.sealed, keyId: next.keyId, wrapNonce: next.wrapNonce, wrappedKey: next.wrappedKey } };
      const onlyK2 = new Keyring([{ id: 'k2', key: k2 }], 'k2');
      expect(openPortalItem(onlyK2, moved, linkKey).equals(MESSAGE)).toBe(true);
      // Already under the current key: nothing to do.
      expect(rewrapItemKey(ring12, { ...wrapped, keyId: next.keyId, wrapNonce: next.wrapNonce, wrappedKey: next.wrappedKey })).toBeNull();
    }
  });

  it('rewrap fails closed: an unconfigured old key, an altered wrapped key, or one moved from another item', () => {
    const { item } = sealPortalItem(ring1, facts, MESSAGE);
    const wrapped = { id: item.id, keyInLink: false, keyId: 'k1', wrapNonce: item.sealed.wrapNonce, wrappedKey: item.sealed.wrappedKey };
    expect(() => rewrapItemKey(new Keyring([{ id: 'k2', key: k2 }], 'k2'), wrapped)).toThrow(expect.objectContaining({ failure: 'unknown-key' }));
    expect(() => rewrapItemKey(ring12, { ...wrapped, wrappedKey: flipped(item.sealed, 'wrappedKey').wrappedKey })).toThrow(expect.objectContaining({ failure: 'not-authentic' }));
    expect(() => rewrapItemKey(ring12, { ...wrapped, id: 'another' })).toThrow(expect.objectContaining({ failure: 'not-authentic' }));
    expect(() => rewrapItemKey(ring12, { ...wrapped, keyInLink: true })).toThrow(expect.objectContaining({ failure: 'not-authentic' }));
  });
});

describe('the keyring keeps its keys to itself', () => {
  it('printing, logging or serialising a keyring shows ids, never key bytes', () => {
    const shown = [inspect(ring12, { showHidden: true, depth: 10 }), JSON.stringify(ring12), String(Object.entries(ring12)), `${JSON.stringify({ ring: ring12 })}`].join('\n');
    expect(shown).toContain('k2');
    for (const key of [k1, k2]) {
      // Base64, hex, hex as Node prints a Buffer ("<Buffer 4f 3a …>"), and as a list of numbers.
      const spacedHex = [...key.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      for (const form of [key.toString('base64'), key.toString('hex'), key.toString('base64url'), spacedHex, [...key.subarray(0, 8)].join(',')]) expect(shown).not.toContain(form);
    }
  });

  it('refuses keys of the wrong size, duplicate ids and a current key it does not hold', () => {
    expect(() => new Keyring([{ id: 'a', key: randomBytes(16) }], 'a')).toThrow(/16 bytes, not 32/);
    expect(() => new Keyring([{ id: 'a', key: k1 }, { id: 'a', key: k2 }], 'a')).toThrow(/appears twice/);
    expect(() => new Keyring([{ id: 'a', key: k1 }], 'b')).toThrow(/no master key with id b/);
  });
});
