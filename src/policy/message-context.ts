// What the policy may look at besides the recipient: the envelope sender, who
// submitted it, and the message's header fields and DLP hits. Built once per
// message, never holding the body.

export interface MessageContext {
  readonly sender: string;
  /** The ingress AUTH user; null for relay-network submissions. */
  readonly authUser: string | null;
  readonly subject: string | null;
  /** Header fields by lower-cased name, unfolded, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** Ids of the DLP detectors that fired (never the matched text). */
  readonly dlpHits: readonly string[];
}

/** Parses a header block (up to the first empty line) into lower-cased names → unfolded values. */
export function parseHeaders(headerBlock: string): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  const unfolded = headerBlock.replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    if (!line) break;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const list = headers.get(name);
    if (list) list.push(value);
    else headers.set(name, [value]);
  }
  return headers;
}

export function messageContext(input: {
  sender: string;
  authUser: string | null;
  headerBlock: string;
  subject?: string | null;
  dlpHits?: readonly string[];
}): MessageContext {
  const headers = parseHeaders(input.headerBlock);
  return {
    sender: input.sender,
    authUser: input.authUser,
    subject: input.subject ?? headers.get('subject')?.[0] ?? null,
    headers,
    dlpHits: input.dlpHits ?? [],
  };
}
