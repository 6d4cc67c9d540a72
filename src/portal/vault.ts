// The portal vault: how a message is sealed at rest and opened again.
//
// Each item (one message for one recipient) is encrypted whole, as queued (MIME),
// with AES-256-GCM under a fresh random 256-bit data key, the item id bound in as
// associated data (a ciphertext moved to another item's row does not open). The
// data key is wrapped with the current master key (AES-256-GCM, the key id, item
// id and key mode bound in), so rotating master keys re-wraps 32 bytes per item and
// never touches the content (`rewrapItemKey`).
//
// keyInLink: the data key is derived (HKDF-SHA256, RFC 5869, info bound to the item
// id) from two random 256-bit parts: the server part, wrapped and stored like a data
// key, and the link part, handed back once to go into the notification link's
// #fragment (browsers never send it to the server) and stored nowhere. Whoever holds
// the database and every master key still cannot open such an item without the link.
// The cost: a lost notification cannot be sent again with a working link — the link
// part is gone — so the message must be sent anew.
//
// The link's lookup token (256 random bits) is separate from the link part; only its
// SHA-256 is stored. Nothing here logs: keys, tokens, link parts and content never
// leave these functions except as the caller's return values.
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { NewPortalItem, PortalItem, PortalItemFacts, WrappedItemKey } from '../store/store.ts';

export type { PortalItemFacts };
import { GcmAuthError, gcmOpen, gcmSeal, KEY_BYTES } from './gcm.ts';
import type { Keyring } from './master-keys.ts';

/** Item ids: 96 random bits in hex — unique, not secret (operators and the log show them). */
const ITEM_ID_BYTES = 12;
/** The link's lookup token: 256 random bits (DESIGN asks at least 128), base64url. */
const TOKEN_BYTES = 32;
/** The link part of a keyInLink data key: 256 random bits, base64url, in the #fragment. */
const LINK_KEY_BYTES = 32;
const BASE64URL_OF_32 = /^[A-Za-z0-9_-]{43}$/;

/** Associated data, versioned so that a later format can never be confused with this one. */
const WRAP_AAD = 'sealrelay/portal/wrap/v1';
const CONTENT_AAD = 'sealrelay/portal/content/v1';
const HKDF_INFO = 'sealrelay/portal/data-key/v1';

/** Why an item cannot be opened. The web side shows each plainly; none says more than this. */
export type VaultFailure =
  /** Expired or recalled: the ciphertext is gone. */
  | 'erased'
  /** Its master key is not (or no longer) configured. */
  | 'unknown-key'
  /** keyInLink, and the link part is missing or malformed (a link cut short). */
  | 'link-key-needed'
  /** Did not authenticate: wrong link part, wrong master key, or altered data. */
  | 'not-authentic';

export class PortalVaultError extends Error {
  constructor(
    readonly itemId: string,
    readonly failure: VaultFailure,
    detail: string,
  ) {
    super(`portal item ${itemId}: ${detail}`);
    this.name = 'PortalVaultError';
  }
}

export interface SealedPortalItem {
  /** For the store (Store.putPortalItem, or finish's portalItems). */
  readonly item: NewPortalItem;
  /** Goes into the link's path; only its hash is stored. Never log it. */
  readonly token: string;
  /** keyInLink only: goes into the link's #fragment, stored nowhere, given out this once. Never log it. */
  readonly linkKey: string | null;
}

export function newItemId(): string {
  return randomBytes(ITEM_ID_BYTES).toString('hex');
}

/** The token's hash, as the store keeps and looks it up (SHA-256 of its text). */
export function portalTokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Whether `text` has the form of a token (checked before any lookup, so junk never reaches the store). */
export function isPortalToken(text: string): boolean {
  return BASE64URL_OF_32.test(text);
}

/** Whether `text` has the form of a link part (base64url of 32 bytes). */
export function isLinkKey(text: string): boolean {
  return BASE64URL_OF_32.test(text);
}

/**
 * Encrypts `content` (the whole message) for a new item under the keyring's current
 * master key. `keyInLink`: part of the key goes into the link only (module comment).
 */
export function sealPortalItem(keyring: Keyring, facts: PortalItemFacts, content: Buffer, opts: { keyInLink?: boolean } = {}): SealedPortalItem {
  const id = newItemId();
  const keyInLink = opts.keyInLink === true;
  // Without keyInLink the wrapped secret is the data key itself; with it, the server part.
  const secret = randomBytes(KEY_BYTES);
  const linkPart = keyInLink ? randomBytes(LINK_KEY_BYTES) : null;
  const dataKey = linkPart ? deriveDataKey(id, secret, linkPart) : secret;
  const linkKey = linkPart ? linkPart.toString('base64url') : null;
  try {
    const wrapped = keyring.wrap(secret, (keyId) => wrapAad(keyId, id, keyInLink));
    const { nonce, sealed } = gcmSeal(dataKey, content, contentAad(id));
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    return {
      item: {
        id,
        ...facts,
        size: content.length,
        tokenHash: portalTokenHash(token),
        sealed: { ...wrapped, contentNonce: nonce, content: sealed, keyInLink },
      },
      token,
      linkKey,
    };
  } finally {
    secret.fill(0);
    dataKey.fill(0);
    linkPart?.fill(0);
  }
}

/**
 * The message of an item, decrypted; throws PortalVaultError when it cannot be
 * (erased, key not configured, link part missing, or not authentic). Whether the
 * item is past its expiry is the caller's to check (portalItemState), before this.
 */
export function openPortalItem(keyring: Keyring, item: Pick<PortalItem, 'id' | 'sealed'>, linkKey: string | null = null): Buffer {
  const { id, sealed } = item;
  if (!sealed) throw new PortalVaultError(id, 'erased', 'its content was erased (expired or recalled)');
  if (!keyring.has(sealed.keyId)) throw new PortalVaultError(id, 'unknown-key', `master key ${sealed.keyId} is not configured (portal.master_keys)`);
  if (sealed.keyInLink && (linkKey === null || !isLinkKey(linkKey))) throw new PortalVaultError(id, 'link-key-needed', 'part of its key is in the link, and the link given lacks it');
  let secret: Buffer | null = null;
  let dataKey: Buffer | null = null;
  try {
    secret = keyring.unwrap(sealed.keyId, sealed.wrapNonce, sealed.wrappedKey, wrapAad(sealed.keyId, id, sealed.keyInLink));
    dataKey = sealed.keyInLink ? deriveDataKey(id, secret, Buffer.from(linkKey!, 'base64url')) : secret;
    return gcmOpen(dataKey, sealed.contentNonce, sealed.content, contentAad(id));
  } catch (err) {
    if (err instanceof GcmAuthError) throw new PortalVaultError(id, 'not-authentic', err.message);
    throw err;
  } finally {
    secret?.fill(0);
    dataKey?.fill(0);
  }
}

/**
 * The item's key wrapped with the keyring's current master key instead of the one it
 * is under, without decrypting the content (keyInLink items too: only the server
 * part is wrapped). Null when it is already under the current key. Throws
 * PortalVaultError when the old key is not configured or the wrapped key is not authentic.
 */
export function rewrapItemKey(keyring: Keyring, wrapped: WrappedItemKey): (WrappedItemKey & { fromKeyId: string }) | null {
  if (wrapped.keyId === keyring.currentId) return null;
  if (!keyring.has(wrapped.keyId)) throw new PortalVaultError(wrapped.id, 'unknown-key', `master key ${wrapped.keyId} is not configured (portal.master_keys)`);
  let secret: Buffer | null = null;
  try {
    secret = keyring.unwrap(wrapped.keyId, wrapped.wrapNonce, wrapped.wrappedKey, wrapAad(wrapped.keyId, wrapped.id, wrapped.keyInLink));
    const next = keyring.wrap(secret, (keyId) => wrapAad(keyId, wrapped.id, wrapped.keyInLink));
    return { id: wrapped.id, keyInLink: wrapped.keyInLink, ...next, fromKeyId: wrapped.keyId };
  } catch (err) {
    if (err instanceof GcmAuthError) throw new PortalVaultError(wrapped.id, 'not-authentic', `wrapped key: ${err.message}`);
    throw err;
  } finally {
    secret?.fill(0);
  }
}

// The at-rest format below is exported so that it can be checked on its own (tests,
// an auditor's tool): what each key and ciphertext is bound to.

/** keyInLink: the item's data key from its two parts, bound to the item id. */
export function deriveDataKey(itemId: string, serverPart: Buffer, linkPart: Buffer): Buffer {
  const ikm = Buffer.concat([serverPart, linkPart]);
  try {
    return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), `${HKDF_INFO}\0${itemId}`, KEY_BYTES));
  } finally {
    ikm.fill(0);
  }
}

/** What a wrapped key is bound to: the master key's id, the item id and whether part of the key is in the link. */
export function wrapAad(keyId: string, itemId: string, keyInLink: boolean): Buffer {
  return Buffer.from(`${WRAP_AAD}\0${keyId}\0${itemId}\0${keyInLink ? 'link' : 'server'}`, 'utf8');
}

/** What the ciphertext is bound to: the item id. */
export function contentAad(itemId: string): Buffer {
  return Buffer.from(`${CONTENT_AAD}\0${itemId}`, 'utf8');
}
