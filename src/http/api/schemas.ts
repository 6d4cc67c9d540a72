// The API's JSON Schemas: they validate every request (validation.ts), shape every
// response, and are what the OpenAPI document (openapi.ts) is made of. One line
// fields forbid CR, LF and the other control characters, so no value can start a
// header of its own (header injection); every object refuses unknown properties.

/** Text that must stay on one line: no control character but the tab. */
const ONE_LINE = '^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f]*$';
/** A mailbox: "ann@example.org" or "Ann Example <ann@example.org>" (checked again when parsed). */
const mailbox = { type: 'string', minLength: 3, maxLength: 320, pattern: ONE_LINE } as const;
const recipients = { type: 'array', items: mailbox, maxItems: 1000 } as const;
/** RFC 5322 field names: printable US-ASCII without the colon. */
export const HEADER_NAME = '^[\\u0021-\\u0039\\u003b-\\u007e]{1,76}$';

export const submissionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['from'],
  properties: {
    from: { ...mailbox, description: 'The sender: the envelope sender and the From header.' },
    to: recipients,
    cc: recipients,
    bcc: { ...recipients, description: 'Envelope recipients only: never written into the message.' },
    subject: { type: 'string', maxLength: 998, pattern: ONE_LINE },
    text: { type: 'string' },
    html: { type: 'string' },
    attachments: {
      type: 'array',
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['filename', 'content'],
        properties: {
          filename: { type: 'string', minLength: 1, maxLength: 255, pattern: ONE_LINE },
          contentType: { type: 'string', maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$' },
          content: { type: 'string', description: 'The file, base64-encoded.', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
          contentId: { type: 'string', maxLength: 250, pattern: '^[A-Za-z0-9!#$%&\'*+/=?^_`{|}~.@-]+$', description: 'For cid: references in html.' },
        },
      },
    },
    headers: {
      type: 'object',
      description: 'More header fields, by name. Trace, structure and address fields are refused (use the fields above).',
      maxProperties: 50,
      propertyNames: { pattern: HEADER_NAME },
      additionalProperties: { type: 'string', maxLength: 998, pattern: ONE_LINE },
    },
    campaign: { type: 'string', minLength: 1, maxLength: 200, pattern: ONE_LINE, description: 'The campaign reports split by (as the campaign header at SMTP ingress).' },
  },
} as const;

export interface SubmissionBody {
  from: string;
  to?: string[];
  cc?: string[];
  bcc?: string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: { filename: string; contentType?: string; content: string; contentId?: string }[];
  headers?: Record<string, string>;
  campaign?: string;
}

export const idempotencyHeaders = {
  type: 'object',
  properties: {
    'idempotency-key': { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\u0021-\\u007e]+$', description: 'Sent again with the same body: the first answer again, and nothing queued twice (for api.idempotency_hours).' },
  },
} as const;

export const acceptedSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['queueId', 'messageId'],
  properties: { queueId: { type: 'string' }, messageId: { type: ['string', 'null'] } },
} as const;

const queueIdParam = { type: 'string', pattern: '^[0-9A-Za-z]{9,32}$' } as const;
export const queueIdParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: queueIdParam } } as const;
/** A queue id or a Message-ID (with or without <>). */
export const messageRefParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 998, pattern: '^[\\u0021-\\u007e]+$', description: 'A queue id or a Message-ID.' } },
} as const;

export const searchQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    recipient: { type: 'string', minLength: 3, maxLength: 320, pattern: '^[^\\s@]+@[^\\s@]+$' },
    since: { type: 'string', format: 'date-time', description: 'ISO 8601 time: entries at or after it.' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100, description: 'The newest this many entries (returned oldest first).' },
  },
} as const;

export const queueQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 10000, default: 1000, description: 'The oldest this many messages.' } },
} as const;

export const domainParams = {
  type: 'object',
  additionalProperties: false,
  required: ['domain'],
  properties: { domain: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.-]+$' } },
} as const;

const nullableString = { type: ['string', 'null'] } as const;
const nullableInt = { type: ['integer', 'null'] } as const;

/**
 * One entry of the delivery log: an attempt (decision, method, outcome, MX, TLS facts
 * read from the live socket, SMTP reply), an operator's action or a portal event. The
 * fields all kinds share are listed; the rest of each kind passes through whole.
 */
export const logEntrySchema = {
  type: 'object',
  additionalProperties: true,
  required: ['queueId', 'seq', 'at', 'recipient', 'outcome'],
  properties: {
    kind: { type: 'string', enum: ['operator', 'portal'], description: 'Absent for an attempt.' },
    queueId: { type: 'string' },
    seq: { type: 'integer' },
    messageId: nullableString,
    attempt: { type: 'integer' },
    at: { type: 'string' },
    sender: { type: 'string' },
    recipient: { type: 'string' },
    domain: { type: 'string' },
    outcome: { type: 'string' },
    method: { type: 'string' },
    decision: {
      type: 'object',
      additionalProperties: true,
      properties: { rule: { type: 'string' }, mode: { type: 'string' }, verification: { type: 'string' }, fallbackChain: { type: 'array', items: { type: 'string' } }, reasons: { type: 'array', items: { type: 'string' } } },
    },
    mx: { type: ['object', 'null'], additionalProperties: true },
    tls: {
      type: ['object', 'null'],
      additionalProperties: true,
      properties: {
        protocol: { type: 'string' },
        cipher: { type: 'string' },
        bits: { type: 'integer' },
        authorized: { type: 'boolean' },
        authorizationError: nullableString,
        peerCertSubject: nullableString,
        peerCertFingerprint256: nullableString,
      },
    },
    smtp: { type: 'object', additionalProperties: true },
  },
} as const;

const queueEntrySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    queueId: { type: 'string' },
    sender: { type: 'string' },
    messageId: nullableString,
    size: { type: 'integer' },
    receivedAt: { type: 'integer', description: 'ms since the epoch' },
    recipients: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          seq: { type: 'integer' },
          recipient: { type: 'string' },
          state: { type: 'string' },
          attempts: { type: 'integer' },
          nextAttemptAt: { type: 'integer' },
          lastError: nullableString,
          leasedUntil: nullableInt,
        },
      },
    },
  },
} as const;

export const timelineSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reference', 'queued', 'entries'],
  properties: {
    reference: { type: 'string' },
    queued: { ...queueEntrySchema, type: ['object', 'null'], description: 'The queue entry while recipients still wait; null once all are settled.' },
    entries: { type: 'array', items: logEntrySchema, description: 'Every attempt, operator action and portal event, by time.' },
  },
} as const;

export const searchSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['entries'],
  properties: { entries: { type: 'array', items: logEntrySchema } },
} as const;

export const queueSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['messages', 'stats'],
  properties: {
    messages: { type: 'array', items: queueEntrySchema },
    stats: {
      type: 'object',
      additionalProperties: false,
      properties: { messages: { type: 'integer' }, recipients: { type: 'integer' }, held: { type: 'integer' }, bytes: { type: 'integer' }, possibleDuplicates: { type: 'integer' } },
    },
  },
} as const;

export const queueActionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['queueId', 'action', 'recipients'],
  properties: { queueId: { type: 'string' }, action: { type: 'string' }, recipients: { type: 'integer', description: 'Recipients the action changed.' } },
} as const;

export const domainSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['domain', 'knowledge', 'mtaSts'],
  properties: {
    domain: { type: 'string' },
    knowledge: {
      type: ['object', 'null'],
      additionalProperties: false,
      description: 'What the relay learned from its own deliveries and probes (ms since the epoch); null when it never tried the domain.',
      properties: {
        domain: { type: 'string' },
        tlsKnownSince: nullableInt,
        lastTlsAt: nullableInt,
        lastStarttlsAt: nullableInt,
        lastNoStarttlsAt: nullableInt,
        lastAttemptAt: { type: 'integer' },
        attempts: { type: 'integer' },
        lastProbeAt: nullableInt,
        lastProbeStarttlsOffered: { type: ['boolean', 'null'] },
        lastProbeTlsOk: { type: ['boolean', 'null'] },
      },
    },
    mtaSts: { type: ['object', 'null'], additionalProperties: true, description: 'The cached MTA-STS policy; null when none is cached.' },
  },
} as const;

export const evidenceSchema = {
  type: 'object',
  additionalProperties: true,
  description: 'The signed evidence document, as `sealrelay evidence` writes it (verify with `sealrelay evidence verify`).',
} as const;

export const errorResponses = (codes: readonly number[]) => Object.fromEntries(codes.map((c) => [c, { $ref: 'ApiError#' }]));
