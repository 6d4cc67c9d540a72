// One job to per-recipient results, with end-to-end encryption where the
// decision asks for it. attempt.ts moves bytes; this module decides which bytes.
//
// - pgp / smime: each recipient's copy is encrypted to that recipient's key, then
//   DKIM-signed and delivered with opportunistic TLS on top ("double encryption"),
//   one transaction per recipient since every copy differs. No usable key: the
//   decision's fallback chain; with nothing left, bounce (defer when a key lookup
//   failed for now and may succeed later).
// - every other mode: the message, DKIM-signed once, goes to attemptJob. When
//   `forced` found no acceptable TLS on any host, its recipients go down the
//   fallback chain (pgp → smime by default); with nothing left they stay deferred
//   and bounce at the end of the queue lifetime. Never plaintext.
//
// DKIM signs last, over exactly the bytes that go on the wire.
import type { Protection } from '../crypto/protection.ts';
import { makeDecision, type FallbackStep } from '../policy/decision.ts';
import { isKeyKind, type KeyKind, type QueueItem } from '../store/store.ts';
import { attemptJob, type AttemptDeps, type Job, type RecipientResult } from './attempt.ts';
import type { Method } from './record.ts';

export interface DeliverDeps extends AttemptDeps {
  readonly protection: Protection;
}


/** A message ready to go: its bytes, and those bytes DKIM-signed (made once, when first needed). */
export interface Outgoing {
  readonly bytes: Buffer;
  signed(): Promise<Buffer>;
}

export function outgoing(bytes: Buffer, protection: Protection): Outgoing {
  let signed: Promise<Buffer> | undefined;
  return { bytes, signed: () => (signed ??= protection.sign(bytes)) };
}

export async function deliverJob(job: Job, message: Outgoing, deps: DeliverDeps): Promise<RecipientResult[]> {
  const { mode, fallbackChain } = job.decision;
  if (isKeyKind(mode)) {
    return Promise.all(job.items.map((item) => encryptedCopy(job, item, message.bytes, [mode, ...fallbackChain.filter((s) => s !== mode)], null, deps)));
  }
  const results = await attemptJob(job, await message.signed(), deps);
  const fallingBack = results.filter((r) => r.needsFallback !== undefined);
  if (!fallingBack.length) return results;
  const rescued = await Promise.all(
    fallingBack.map((r) => encryptedCopy(job, r.item, message.bytes, fallbackChain, { reason: `${mode}: no acceptable TLS on any MX host (${r.needsFallback})`, result: r }, deps)),
  );
  return [...results.filter((r) => r.needsFallback === undefined), ...rescued];
}

/** Why the chain is being walked when TLS was the first choice: the reason and the TLS attempt's result. */
interface FellBack {
  readonly reason: string;
  readonly result: RecipientResult;
}

/** Tries `steps` in order for one recipient; the first with a usable key is delivered. */
async function encryptedCopy(job: Job, item: QueueItem, message: Buffer, steps: readonly FallbackStep[], fellBack: FellBack | null, deps: DeliverDeps): Promise<RecipientResult> {
  const tried: string[] = [];
  let temporary = false;
  for (const step of steps) {
    if (!isKeyKind(step)) {
      tried.push(`${step}: not available`);
      continue;
    }
    // The copy is made and delivered inside seal(): it counts against the encryption budget until sent.
    const delivered = await deps.protection.seal(step, item.recipient, message, async (copy): Promise<RecipientResult | null> => {
      if (!copy.ok) {
        tried.push(`${step}: ${copy.why}`);
        temporary ||= copy.temporary;
        return null;
      }
      tried.push(`${step}: key ${copy.keyFingerprint} (${copy.keySource})`);
      // The content is sealed: the transport is opportunistic TLS (trouble.ts lets a sealed
      // copy go in plaintext where the MX gives no TLS at the floor). After a TLS failure
      // that was the reason for falling back, the certificate check that failed is not
      // asked again — the copy needs no secrecy from the transport — except under an
      // MTA-STS enforce policy, which forbids any host that fails it, sealed copy or not
      // (RFC 8461 §5). A domain where TLS is expected (TLS-known, MTA-STS enforce) never
      // gets even a sealed copy in plaintext: a missing STARTTLS there is a possible
      // downgrade, and the envelope and headers would travel in the clear.
      const stsEnforced = job.mtaSts?.mode === 'enforce';
      const transport = makeDecision({
        ...job.decision,
        mode: step,
        fallbackChain: [],
        verification: fellBack && !stsEnforced ? 'none' : job.decision.verification,
        reasons: [...job.decision.reasons, fellBack ? `fallback to ${step}: ${fellBack.reason}` : `encrypted with ${step}`],
      });
      const [result] = await attemptJob({ ...job, items: [item], decision: transport }, await deps.protection.sign(copy.message), deps);
      const firstChoiceFailed = fellBack !== null || tried.length > 1;
      return {
        ...result!,
        method: sealed(step, result!.method),
        // What travelled; a copy that went nowhere is only in `fallback.tried`.
        encryption: result!.method === 'none' ? null : { method: step, keyFingerprint: copy.keyFingerprint, keySource: copy.keySource, signed: copy.signed },
        fallback: firstChoiceFailed ? { reason: fellBack?.reason ?? `${job.decision.mode}: ${tried[0]}`, tried } : null,
      };
    });
    if (delivered) return delivered;
  }

  const chain = tried.length ? tried.join('; ') : 'no fallback configured';
  if (fellBack) {
    // forced without TLS and without a key: hold and retry (bounce at the queue lifetime).
    const r = fellBack.result;
    return { ...r, outcome: 'deferred', method: 'none', needsFallback: undefined, fallback: { reason: fellBack.reason, tried }, smtp: { ...r.smtp, response: `${r.smtp.response}; fallback: ${chain}` } };
  }
  const response = `${job.decision.mode} required: ${chain}`;
  return {
    item,
    outcome: temporary ? 'deferred' : 'bounced',
    method: 'none',
    mx: null,
    starttlsOffered: null,
    tls: null,
    // RFC 3463 X.7.5: cryptographic failure, e.g. the key needed is not available.
    smtp: { code: temporary ? 451 : 554, enhanced: temporary ? '4.7.5' : '5.7.5', response },
    fallback: tried.length > 1 ? { reason: `${job.decision.mode}: ${tried[0]}`, tried } : null,
  };
}

/** The record's method for a sealed copy: how the copy travelled, under the encryption. */
function sealed(step: KeyKind, transport: Method): Method {
  if (transport === 'tls') return `${step}+tls`;
  if (transport === 'plaintext') return step;
  return 'none';
}
