// What every portal route shares: finding the item a link names, the states in
// which it shows nothing but a clear page, the verified session bound to one item
// and its recipient, opening the content for one request, and the facts each
// portal event records (time, IP, user agent). Settings are read from the config
// as it is now, so a reload reaches the next request.
import type { FastifyRequest } from 'fastify';
import type { Config } from '../../config/schema.ts';
import { ByteBudget } from '../../crypto/byte-budget.ts';
import type { Keyring } from '../../portal/master-keys.ts';
import { readMessage, type MessageView } from '../../portal/message-view.ts';
import { isLinkKey, isPortalToken, openPortalItem, PortalVaultError, portalTokenHash } from '../../portal/vault.ts';
import { portalItemState, type NewMessage, type PortalEventInput, type PortalItem, type PortalItemHead, type Store } from '../../store/store.ts';
import { HttpError } from '../errors.ts';
import type { HttpServer } from '../server.ts';
import { dateText } from './pages.ts';

/** What the relay hands the portal's web side (src/relay.ts). */
export interface PortalWebDeps {
  readonly store: Store;
  /** The master keys as configured now; null when none are. */
  keyring(): Keyring | null;
  /** Durable enqueue of a message the portal makes (code email, reply); wakes delivery. */
  queueMail(message: NewMessage): Promise<void>;
}

/** How far a visitor has come: the code proved the address; a passphrase may still be asked. */
export type PortalStage = 'passphrase' | 'verified';

/** The session data of a portal visitor: bound to one item and the recipient it was made for. */
export interface PortalSessionData {
  readonly portalItem: string;
  readonly recipient: string;
  readonly stage: PortalStage;
}

/**
 * Message bytes being decrypted and parsed at once for views and downloads: each takes
 * several times its size while it is read, so many recipients opening large messages
 * together would grow the heap without bound. More waits its turn; one larger message
 * is read alone.
 */
const OPENING_BUDGET_BYTES = 16 * 1024 * 1024;

/** Longest user agent recorded (evidence, not a fingerprint store). */
const USER_AGENT_MAX = 300;

export const LINK_UNKNOWN = new HttpError(
  404,
  'We could not find this message',
  'The link may be incomplete or mistyped. Open the link in the email again, or copy the whole link into the address bar. If it still does not work, contact the person or organisation that sent you the message.',
);

export const LINK_INCOMPLETE = new HttpError(
  400,
  'This link is incomplete',
  'Part of the link that unlocks this message is missing or changed, so it cannot be opened. Open the link in the email again by clicking it, rather than copying part of it. If the email was forwarded or the link was shortened, ask the sender to send the message again.',
);

const UNAVAILABLE = new HttpError(503, 'This message cannot be opened right now', 'Nothing you did caused this. Try again later. If it keeps happening, contact the sender.');

export class PortalContext {
  private readonly opening = new ByteBudget(OPENING_BUDGET_BYTES);

  constructor(
    readonly server: HttpServer,
    readonly deps: PortalWebDeps,
    readonly config: () => Config,
    readonly now: () => number,
  ) {}

  get store(): Store {
    return this.deps.store;
  }

  /**
   * The item a link's token names, readable now. Refuses (a clear page, nothing
   * more) a malformed or unknown token (404), an expired or recalled item (410).
   */
  async item(token: string): Promise<PortalItemHead> {
    if (!isPortalToken(token)) throw LINK_UNKNOWN;
    // Without its ciphertext: only open() needs that, and the landing page (mail scanners) never does.
    const item = await this.store.findPortalItemHead(portalTokenHash(token));
    if (!item) throw LINK_UNKNOWN;
    this.assertReadable(item);
    return item;
  }

  /** Throws the clear page for an item that can no longer be read. */
  assertReadable(item: PortalItemHead): void {
    const state = portalItemState(item, this.now());
    if (state === 'recalled') {
      throw new HttpError(410, 'This message was withdrawn', 'The sender withdrew this message and its content has been deleted. If you still need it, contact the sender.');
    }
    if (state === 'expired') {
      throw new HttpError(410, 'This message has expired', `Messages can be read for a limited time. This one could be read until ${dateText(item.expiresAt)}, and its content has been deleted. If you still need it, ask the sender to send it again.`);
    }
  }

  /** The request's portal session when it is for `item` (its id and its recipient) at `stage`; null otherwise. */
  session(request: FastifyRequest, item: PortalItemHead, stage: PortalStage = 'verified'): PortalSessionData | null {
    const data = request.session?.data;
    if (!data || data.portalItem !== item.id || data.recipient !== item.recipient || data.stage !== stage) return null;
    return { portalItem: item.id, recipient: item.recipient, stage };
  }

  /** Who asked, for the item's portal events. */
  event(request: FastifyRequest, detail: string | null = null): PortalEventInput {
    const ua = request.headers['user-agent'];
    return { at: this.now(), ip: request.ip, userAgent: typeof ua === 'string' ? ua.slice(0, USER_AGENT_MAX) : null, detail };
  }

  /**
   * The item's message, decrypted and parsed for this request only: the content and
   * the link's key part (keyInLink) live in this call's memory and nowhere else.
   */
  async open(head: PortalItemHead, linkKey: unknown): Promise<MessageView> {
    return this.opening.run(head.size, async () => {
      const item = await this.store.getPortalItem(head.id);
      if (!item) throw LINK_UNKNOWN;
      this.assertReadable(item);
      return this.decrypt(item, linkKey);
    });
  }

  private async decrypt(item: PortalItem, linkKey: unknown): Promise<MessageView> {
    const keyring = this.deps.keyring();
    if (!keyring || !item.sealed) throw UNAVAILABLE;
    if (item.sealed.keyInLink && (typeof linkKey !== 'string' || !isLinkKey(linkKey))) throw LINK_INCOMPLETE;
    let mime: Buffer;
    try {
      mime = openPortalItem(keyring, item, item.sealed.keyInLink ? (linkKey as string) : null);
    } catch (err) {
      if (err instanceof PortalVaultError) {
        if (err.failure === 'erased') this.assertReadable({ ...item, erasedAt: item.erasedAt ?? this.now() });
        if (err.failure === 'link-key-needed' || (err.failure === 'not-authentic' && item.sealed.keyInLink)) throw LINK_INCOMPLETE;
        throw UNAVAILABLE;
      }
      throw err;
    }
    try {
      return await readMessage(mime);
    } finally {
      mime.fill(0);
    }
  }
}
