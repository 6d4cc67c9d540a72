// What the policy may look at besides the recipient: the envelope sender, who
// submitted it, and the message's header fields and DLP hits. Built once per
// message, never holding the body.
import { decodeEncodedWords } from '../mime/encoded-words.ts';
import { parseHeaders } from '../mime/header-block.ts';
import type { MessageOrigin } from '../store/store.ts';

export interface MessageContext {
  readonly sender: string;
  /** The ingress AUTH user; null for relay-network submissions. */
  readonly authUser: string | null;
  readonly subject: string | null;
  /** Header fields by lower-cased name, unfolded, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** Ids of the DLP detectors that fired (never the matched text). */
  readonly dlpHits: readonly string[];
  /** Mail the relay made itself (a portal notification, code or reply); null: submitted. */
  readonly origin: MessageOrigin | null;
}

function decodeSubject(raw: string | undefined): string | null {
  return raw === undefined ? null : decodeEncodedWords(raw);
}

export function messageContext(input: {
  sender: string;
  authUser: string | null;
  headerBlock: string;
  subject?: string | null;
  dlpHits?: readonly string[];
  origin?: MessageOrigin | null;
}): MessageContext {
  const headers = parseHeaders(input.headerBlock);
  return {
    sender: input.sender,
    authUser: input.authUser,
    // Encoded-words decoded, so a tag like =?UTF-8?Q?[secure]?= is seen as [secure].
    subject: input.subject ?? decodeSubject(headers.get('subject')?.[0]),
    headers,
    dlpHits: input.dlpHits ?? [],
    origin: input.origin ?? null,
  };
}
