// Delivery's door into the portal: one recipient's message becomes a portal item
// (sealed at rest, vault.ts) and a notification email to that recipient, both
// handed back to be committed in the transaction that settles the recipient
// (Store.finish), so an item never exists without its notification queued, nor a
// notification without its item.
//
// What is stored is the message as it would have been delivered, minus the
// sender's notice header (notice.ts), whose line goes into the notification
// instead. The link carries a lookup token (only its hash is stored) and, with
// key_in_link, the item's link key in the #fragment; it never carries the
// recipient's address. Nothing here logs: the token and link key exist only in
// the notification's bytes.
import type { Config } from '../config/schema.ts';
import { headerBlock, parseHeaders } from '../mime/header-block.ts';
import type { PortalTerms } from '../policy/decision.ts';
import { newQueueId } from '../store/queue-id.ts';
import type { NewMessage, NewPortalItem, QueueItem } from '../store/store.ts';
import type { Keyring } from './master-keys.ts';
import { buildNotification } from './notification.ts';
import { takeNotice } from './notice.ts';
import { hashPassphrase } from './passphrase.ts';
import { sealPortalItem } from './vault.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** What the record of a recipient sent to the portal says of it. */
export interface PortalFacts {
  readonly itemId: string;
  /** ISO 8601. */
  readonly expiresAt: string;
  readonly keyInLink: boolean;
  readonly passphrase: boolean;
  /** The master key the item's key is wrapped with. */
  readonly keyId: string;
  /** The queue id of the notification email. */
  readonly notification: string;
}

/** An item and its notification, to commit together. */
export interface PortalHandoff {
  readonly item: NewPortalItem;
  readonly notification: NewMessage;
  readonly facts: PortalFacts;
}

export interface PortalDesk {
  /** Seals `message` for `item`'s recipient and writes its notification; throws when it cannot (nothing is kept then). */
  hand(item: QueueItem, message: Buffer, terms: PortalTerms, now?: number): Promise<PortalHandoff>;
}

/** Why the portal cannot take items, or null when it can: the portal step says it in the record. */
export function portalUnavailable(keyring: Keyring | null, baseUrl: string | null): string | null {
  if (!keyring) return 'not configured (portal.master_keys)';
  if (!baseUrl) return 'not configured (portal.listen or portal.public_url)';
  return null;
}

export function portalDesk(config: Config, keyring: Keyring, baseUrl: string): PortalDesk {
  const portal = config.portal;
  const from = portal.from ?? `portal@${config.server.hostname}`;
  const base = baseUrl.replace(/\/+$/, '');
  return {
    async hand(item, message, terms, now = Date.now()) {
      const { message: content, notice } = takeNotice(message, portal.notice_header);
      const expiresAt = now + terms.expiryDays * DAY_MS;
      const sealed = sealPortalItem(
        keyring,
        { queueId: item.queueId, seq: item.seq, messageId: item.messageId, sender: item.sender, recipient: item.recipient, createdAt: now, expiresAt },
        content,
        { keyInLink: terms.keyInLink },
      );
      const link = `${base}/m/${sealed.token}${sealed.linkKey ? `#k=${sealed.linkKey}` : ''}`;
      const fromField = parseHeaders(headerBlock(content)).get('from')?.[0];
      const note = await buildNotification({
        organisation: portal.organisation,
        from,
        // Raw: the notification parses the address and decodes the name after (a decoded name may hold commas or <>).
        sender: { address: item.sender, header: fromField ?? null },
        recipient: item.recipient,
        link,
        expiresAt: new Date(expiresAt),
        notice,
        subject: terms.showSubject ? item.subject : null,
        hostname: config.server.hostname,
      });
      const notificationId = newQueueId();
      const notification: NewMessage = {
        queueId: notificationId,
        // A notification that bounces goes back to whoever sent the message: they learn the recipient was not told.
        sender: item.sender,
        recipients: [item.recipient],
        body: note.body,
        messageId: note.messageId,
        subject: note.subject,
        clientIp: null,
        authUser: null,
        receivedAt: now,
        origin: 'portal-notice',
      };
      const passphraseHash = terms.passphrase === null ? null : hashPassphrase(terms.passphrase);
      return {
        item: { ...sealed.item, passphraseHash },
        notification,
        facts: {
          itemId: sealed.item.id,
          expiresAt: new Date(expiresAt).toISOString(),
          keyInLink: terms.keyInLink,
          passphrase: passphraseHash !== null,
          keyId: sealed.item.sealed.keyId,
          notification: notificationId,
        },
      };
    },
  };
}
