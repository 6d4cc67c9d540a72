// Evidence: how one message travelled, per recipient, signed by the relay's own
// Ed25519 key so that a third party can check it with the published public key.
//
// The document is built from the store's delivery log only (queryLog): per
// recipient the decision and every attempt's facts as the attempt recorded them
// (MX, TLS read from the live socket, certificate verdict and fingerprint, MTA-STS,
// end-to-end encryption and key fingerprint, fallback, portal item), the operators'
// actions and the portal's events. Never the body and never the subject (the
// subject may carry PHI, and an auditor needs neither to see how it travelled).
//
// Signing: the bytes signed are the RFC 8785 (JCS) canonical form of the payload —
// object keys sorted by UTF-16 code units, no whitespace, ECMAScript number and
// string forms — made by `canonicalize` (by an author of RFC 8785). The verifier
// parses the file and canonicalises the payload again, so the file may be
// pretty-printed or embedded in HTML (evidence-html.ts) and still verify, while any
// change to a value, key or structure does not. The payload names its own type and
// version, so a signature over it cannot be mistaken for another kind of document.
//
// The public key is never taken from the file: the signature block names only a
// key id (SHA-256 of the key's SubjectPublicKeyInfo DER), and verification needs
// the published key given separately; a file naming a key other than the one given
// is refused before its signature is even looked at.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { DeliveryRecord } from '../delivery/record.ts';
import { isOperatorRecord, isPortalRecord, type LogRecord, type OperatorRecord, type PortalRecord } from '../store/store.ts';

export const EVIDENCE_TYPE = 'sealrelay-evidence';
export const EVIDENCE_VERSION = 1;
export const SIGNATURE_ALG = 'Ed25519';

/** One attempt as its DeliveryRecord tells it, without what the recipient entry already says. */
export type EvidenceAttempt = Omit<DeliveryRecord, 'queueId' | 'seq' | 'messageId' | 'sender' | 'recipient' | 'domain'>;
export type EvidenceOperatorAction = Pick<OperatorRecord, 'at' | 'action' | 'outcome' | 'operator' | 'attemptsBefore'>;
export type EvidencePortalEvent = Pick<PortalRecord, 'at' | 'itemId' | 'outcome' | 'ip' | 'userAgent' | 'operator' | 'detail'>;

export interface EvidenceRecipient {
  readonly seq: number;
  readonly recipient: string;
  readonly domain: string;
  /** The outcome of the last attempt; null when none was made yet. */
  readonly finalOutcome: DeliveryRecord['outcome'] | null;
  /** The last attempt's decision: the rule, mode, verification, fallback chain and why. */
  readonly decision: DeliveryRecord['decision'] | null;
  readonly attempts: readonly EvidenceAttempt[];
  readonly operatorActions: readonly EvidenceOperatorAction[];
  readonly portalEvents: readonly EvidencePortalEvent[];
}

export interface EvidenceMessage {
  readonly queueId: string;
  readonly messageId: string | null;
  readonly sender: string;
  readonly recipients: readonly EvidenceRecipient[];
}

export interface EvidencePayload {
  readonly type: typeof EVIDENCE_TYPE;
  readonly version: typeof EVIDENCE_VERSION;
  /** The relay that recorded and signed it (server.hostname). */
  readonly relay: string;
  /** ISO 8601. */
  readonly generatedAt: string;
  /** What was asked for: a queue id or a Message-ID. */
  readonly reference: string;
  /** Every queued message the reference matched (one Message-ID may have been submitted twice). */
  readonly messages: readonly EvidenceMessage[];
}

export interface EvidenceSignature {
  readonly alg: typeof SIGNATURE_ALG;
  /** "SHA256:" and the hex SHA-256 of the signing key's SubjectPublicKeyInfo (DER). */
  readonly keyId: string;
  /** Base64 of the Ed25519 signature over the JCS form of the payload. */
  readonly value: string;
}

export interface SignedEvidence {
  readonly payload: EvidencePayload;
  readonly signature: EvidenceSignature;
}

/** The evidence document for `reference` from the records queryLog({ message: reference }) returned. */
export function buildEvidence(input: { relay: string; reference: string; records: readonly LogRecord[]; now?: Date }): EvidencePayload {
  const byMessage = new Map<string, { head: LogRecord; recipients: Map<number, LogRecord[]> }>();
  for (const r of input.records) {
    let m = byMessage.get(r.queueId);
    if (!m) byMessage.set(r.queueId, (m = { head: r, recipients: new Map() }));
    const list = m.recipients.get(r.seq) ?? [];
    list.push(r);
    m.recipients.set(r.seq, list);
  }
  const messages = [...byMessage.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([queueId, m]) => ({
      queueId,
      messageId: m.head.messageId,
      sender: m.head.sender,
      recipients: [...m.recipients.entries()].sort(([a], [b]) => a - b).map(([seq, records]) => recipientEvidence(seq, records)),
    }));
  return { type: EVIDENCE_TYPE, version: EVIDENCE_VERSION, relay: input.relay, generatedAt: (input.now ?? new Date()).toISOString(), reference: input.reference, messages };
}

function recipientEvidence(seq: number, records: readonly LogRecord[]): EvidenceRecipient {
  const byTime = [...records].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const attempts: EvidenceAttempt[] = [];
  const operatorActions: EvidenceOperatorAction[] = [];
  const portalEvents: EvidencePortalEvent[] = [];
  for (const r of byTime) {
    if (isOperatorRecord(r)) {
      operatorActions.push({ at: r.at, action: r.action, outcome: r.outcome, operator: r.operator, attemptsBefore: r.attemptsBefore });
    } else if (isPortalRecord(r)) {
      portalEvents.push({ at: r.at, itemId: r.itemId, outcome: r.outcome, ip: r.ip, userAgent: r.userAgent, operator: r.operator, detail: r.detail });
    } else {
      // eslint-disable-next-line @typescript-eslint/no-unused-vars
      const { queueId, seq: _seq, messageId, sender, recipient, domain, ...facts } = r;
      attempts.push(facts);
    }
  }
  attempts.sort((a, b) => a.attempt - b.attempt);
  const last = attempts.at(-1);
  return {
    seq,
    recipient: records[0]!.recipient,
    domain: records[0]!.domain,
    finalOutcome: last?.outcome ?? null,
    decision: last?.decision ?? null,
    attempts,
    operatorActions,
    portalEvents,
  };
}

/** The bytes a signature covers: the RFC 8785 canonical JSON of the payload, UTF-8. */
export function canonicalBytes(payload: unknown): Buffer {
  const text = canonicalize(payload);
  if (text === undefined) throw new TypeError('evidence payload has no JSON form');
  return Buffer.from(text, 'utf8');
}

/** "SHA256:<hex>" of the key's SubjectPublicKeyInfo: what the signature block names and `evidence pubkey` prints. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return `SHA256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

export function signEvidence(payload: EvidencePayload, privateKey: KeyObject): SignedEvidence {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('evidence is signed with an Ed25519 private key');
  const value = sign(null, canonicalBytes(payload), privateKey).toString('base64');
  return { payload, signature: { alg: SIGNATURE_ALG, keyId: keyIdOf(privateKey), value } };
}

/** The signed file's text: canonical JSON of the whole envelope, one line and a newline. */
export function formatSignedEvidence(signed: SignedEvidence): string {
  return `${canonicalBytes(signed).toString('utf8')}\n`;
}

export type Verification =
  | { readonly valid: true; readonly keyId: string; readonly payload: EvidencePayload }
  | { readonly valid: false; readonly reason: string; readonly keyId: string | null };

const ENVELOPE_FIELDS = ['payload', 'signature'];
const SIGNATURE_FIELDS = ['alg', 'keyId', 'value'];
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Ed25519 signatures are 64 bytes. */
const SIGNATURE_BYTES = 64;

/**
 * Checks signed evidence (the file's JSON text) against the relay's published
 * public key. Never throws for bad input: an invalid file gets a reason.
 */
export function verifyEvidence(text: string, publicKey: KeyObject): Verification {
  if (publicKey.type !== 'public' || publicKey.asymmetricKeyType !== 'ed25519') return { valid: false, reason: 'the key given is not an Ed25519 public key', keyId: null };
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch (err) {
    return { valid: false, reason: `not JSON: ${(err as Error).message}`, keyId: null };
  }
  if (!isPlainObject(envelope)) return { valid: false, reason: 'not signed evidence: expected an object with payload and signature', keyId: null };
  const extra = Object.keys(envelope).find((k) => !ENVELOPE_FIELDS.includes(k));
  if (extra !== undefined) return { valid: false, reason: `unexpected field ${JSON.stringify(extra)}: nothing beside payload and signature is accepted (a key is never taken from the file)`, keyId: null };
  const { payload, signature } = envelope;
  if (!isPlainObject(signature)) return { valid: false, reason: 'no signature block', keyId: null };
  const extraSig = Object.keys(signature).find((k) => !SIGNATURE_FIELDS.includes(k));
  if (extraSig !== undefined) return { valid: false, reason: `unexpected field signature.${extraSig}: a key is never taken from the file`, keyId: null };
  const keyId = typeof signature.keyId === 'string' ? signature.keyId : null;
  if (signature.alg !== SIGNATURE_ALG) return { valid: false, reason: `signature algorithm ${JSON.stringify(signature.alg)} is not ${SIGNATURE_ALG}`, keyId };
  const expected = keyIdOf(publicKey);
  if (keyId !== expected) return { valid: false, reason: `signed by key ${keyId ?? '(none named)'}, not by the key given (${expected})`, keyId };
  if (typeof signature.value !== 'string' || !BASE64.test(signature.value)) return { valid: false, reason: 'the signature is not base64', keyId };
  const sig = Buffer.from(signature.value, 'base64');
  if (sig.length !== SIGNATURE_BYTES) return { valid: false, reason: `the signature is ${sig.length} bytes, not ${SIGNATURE_BYTES}`, keyId };
  if (!isPlainObject(payload) || payload.type !== EVIDENCE_TYPE) return { valid: false, reason: `the payload is not ${EVIDENCE_TYPE}`, keyId };
  let bytes: Buffer;
  try {
    bytes = canonicalBytes(payload);
  } catch (err) {
    return { valid: false, reason: `the payload cannot be canonicalised: ${(err as Error).message}`, keyId };
  }
  if (!verify(null, bytes, publicKey, sig)) return { valid: false, reason: 'the signature does not match the content: the evidence was changed after it was signed, or signed by another key', keyId };
  if (payload.version !== EVIDENCE_VERSION) return { valid: false, reason: `evidence version ${String(payload.version)} is not known to this version of sealrelay`, keyId };
  return { valid: true, keyId, payload: payload as unknown as EvidencePayload };
}

/** The key id a signed file names, without checking anything: to say which key to compare. */
export function claimedKeyId(text: string): string | null {
  try {
    const envelope: unknown = JSON.parse(text);
    if (isPlainObject(envelope) && isPlainObject(envelope.signature) && typeof envelope.signature.keyId === 'string') return envelope.signature.keyId;
  } catch {
    // not JSON: no key id
  }
  return null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
