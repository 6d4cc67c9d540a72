// One job to per-recipient results, with end-to-end encryption or the portal
// where the decision asks for it. attempt.ts moves bytes; this module decides which bytes.
//
// - portal: each recipient's message becomes a portal item and a notification
//   (portal/handoff.ts), committed with the recipient's settlement. Nothing of the
//   content goes on the wire.
// - pgp / smime: each recipient's copy is encrypted to that recipient's key, then
//   DKIM-signed and delivered with opportunistic TLS on top ("double encryption"),
//   one transaction per recipient since every copy differs. No usable key: the
//   decision's fallback chain; with nothing left, bounce (defer when a key lookup
//   failed for now and may succeed later).
// - every other mode: the message, DKIM-signed once, goes to attemptJob. When
//   `forced` found no acceptable TLS on any host, its recipients go down the
//   fallback chain (pgp → smime → portal by default); with nothing left they stay
//   deferred and bounce at the end of the queue lifetime. Never plaintext.
//
// A chain's steps: `pgp`/`smime` (a sealed copy), `forced` (TLS at the floor,
// verified as the decision says — "PGP when we hold the key, else TLS, else the
// portal"), `portal`. A step that cannot be taken says why in `fallback.tried` and
// the next is tried; the record says which step carried the message.
//
// DKIM signs last, over exactly the bytes that go on the wire.
import type { Protection } from '../crypto/protection.ts';
import { makeDecision, type Decision, type FallbackStep } from '../policy/decision.ts';
import type { PortalDesk, PortalHandoff } from '../portal/handoff.ts';
import { isKeyKind, type KeyKind, type QueueItem } from '../store/store.ts';
import { attemptJob, type AttemptDeps, type Job, type RecipientResult } from './attempt.ts';
import type { Method } from './record.ts';

export interface DeliverDeps extends AttemptDeps {
  readonly protection: Protection;
  /** The portal when it can take items; otherwise why not (the portal step says so and the chain goes on). */
  readonly portal: PortalDesk | { readonly unavailable: string };
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
  if (mode === 'portal') {
    return Promise.all(job.items.map((item) => walkChain(job, item, message, ['portal'], null, deps)));
  }
  if (isKeyKind(mode)) {
    return Promise.all(job.items.map((item) => walkChain(job, item, message, [mode, ...fallbackChain.filter((s) => s !== mode)], null, deps)));
  }
  const results = await attemptJob(job, await message.signed(), deps);
  const fallingBack = results.filter((r) => r.needsFallback !== undefined);
  if (!fallingBack.length) return results;
  // `forced` in forced's own chain would only repeat what just failed.
  const steps = fallbackChain.filter((s) => s !== 'forced');
  const rescued = await Promise.all(
    fallingBack.map((r) => walkChain(job, r.item, message, steps, { reason: `${mode}: no acceptable TLS on any MX host (${r.needsFallback})`, result: r }, deps)),
  );
  return [...results.filter((r) => r.needsFallback === undefined), ...rescued];
}

/** Why the chain is being walked when TLS was the first choice: the reason and the TLS attempt's result. */
interface FellBack {
  readonly reason: string;
  readonly result: RecipientResult;
}

/** What walking a chain has found so far for one recipient. */
interface Walk {
  readonly tried: string[];
  /** A step failed for now (a key lookup, the portal's keys): retrying later may do better. */
  temporary: boolean;
}

/** Tries `steps` in order for one recipient; the first that carries the message is its result. */
async function walkChain(job: Job, item: QueueItem, message: Outgoing, steps: readonly FallbackStep[], fellBack: FellBack | null, deps: DeliverDeps): Promise<RecipientResult> {
  const walk: Walk = { tried: [], temporary: false };
  for (const [i, step] of steps.entries()) {
    const rest = steps.slice(i + 1);
    const result =
      step === 'portal'
        ? await toPortal(job, item, message.bytes, walk, deps)
        : step === 'forced'
          ? await forcedStep(job, item, message, rest, walk, deps)
          : await sealedCopy(job, item, message.bytes, step, fellBack, walk, deps);
    if (result) {
      const firstChoiceFailed = fellBack !== null || walk.tried.length > 1;
      return { ...result, fallback: firstChoiceFailed ? { reason: fellBack?.reason ?? firstStep(job.decision.mode, walk.tried), tried: walk.tried } : null };
    }
  }

  const { tried } = walk;
  const chain = tried.length ? tried.join('; ') : 'no fallback configured';
  if (fellBack) {
    // forced without TLS and without a key: hold and retry (bounce at the queue lifetime).
    const r = fellBack.result;
    return { ...r, outcome: 'deferred', method: 'none', needsFallback: undefined, fallback: { reason: fellBack.reason, tried }, smtp: { ...r.smtp, response: `${r.smtp.response}; fallback: ${chain}` } };
  }
  const temporary = walk.temporary;
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
    fallback: tried.length > 1 ? { reason: firstStep(job.decision.mode, tried), tried } : null,
  };
}

/** A pgp/smime step: the copy sealed to the recipient's key, delivered with opportunistic TLS; null when there is no usable key. */
async function sealedCopy(job: Job, item: QueueItem, message: Buffer, step: KeyKind, fellBack: FellBack | null, walk: Walk, deps: DeliverDeps): Promise<RecipientResult | null> {
  // The copy is made and delivered inside seal(): it counts against the encryption budget until sent.
  return deps.protection.seal(step, item.recipient, message, async (copy): Promise<RecipientResult | null> => {
    if (!copy.ok) {
      walk.tried.push(`${step}: ${copy.why}`);
      walk.temporary ||= copy.temporary;
      return null;
    }
    walk.tried.push(`${step}: key ${copy.keyFingerprint} (${copy.keySource})`);
    // The content is sealed: the transport is opportunistic TLS (trouble.ts lets a sealed
    // copy go in plaintext where the MX gives no TLS at the floor). After a TLS failure
    // that was the reason for falling back, the certificate check that failed is not
    // asked again — the copy needs no secrecy from the transport — except under an
    // MTA-STS enforce policy, which forbids any host that fails it, sealed copy or not
    // (RFC 8461 §5). A domain where TLS is expected (TLS-known, MTA-STS enforce) never
    // gets even a sealed copy in plaintext: a missing STARTTLS there is a possible
    // downgrade, and the envelope and headers would travel in the clear.
    const stsEnforced = job.mtaSts?.mode === 'enforce';
    const transport = stepDecision(job.decision, step, [], {
      verification: fellBack && !stsEnforced ? 'none' : job.decision.verification,
      reason: fellBack ? `fallback to ${step}: ${fellBack.reason}` : `encrypted with ${step}`,
    });
    const [result] = await attemptJob({ ...job, items: [item], decision: transport }, await deps.protection.sign(copy.message), deps);
    return {
      ...result!,
      method: sealed(step, result!.method),
      // What travelled; a copy that went nowhere is only in `fallback.tried`.
      encryption: result!.method === 'none' ? null : { method: step, keyFingerprint: copy.keyFingerprint, keySource: copy.keySource, signed: copy.signed },
    };
  });
}

/**
 * The `forced` step (after pgp/smime had no key): the message itself over TLS at the
 * floor, verified as the decision says. No acceptable TLS on any host: the next step,
 * or, when this is the last, held and retried (never plaintext). Any other answer
 * (delivered, refused by the server) is the result.
 */
async function forcedStep(job: Job, item: QueueItem, message: Outgoing, rest: readonly FallbackStep[], walk: Walk, deps: DeliverDeps): Promise<RecipientResult | null> {
  // With steps left, the attempt reports "no acceptable TLS" as needing a fallback instead of deferring.
  const decision = stepDecision(job.decision, 'forced', rest.length ? rest : [], { reason: `fallback to forced: ${walk.tried.join('; ')}` });
  const [result] = await attemptJob({ ...job, items: [item], decision }, await message.signed(), deps);
  if (result!.needsFallback !== undefined) {
    walk.tried.push(`forced: ${result!.needsFallback}`);
    return null;
  }
  walk.tried.push(result!.outcome === 'delivered' ? `forced: delivered over ${result!.tls?.protocol ?? 'TLS'}` : `forced: ${result!.outcome} (${result!.smtp.response})`);
  return result!;
}

/** The portal step: an item and its notification, committed with the settlement (scheduler.ts). */
async function toPortal(job: Job, item: QueueItem, message: Buffer, walk: Walk, deps: DeliverDeps): Promise<RecipientResult | null> {
  const desk = deps.portal;
  if ('unavailable' in desk) {
    walk.tried.push(`portal: ${desk.unavailable}`);
    walk.temporary = true;
    return null;
  }
  let handoff;
  try {
    handoff = await desk.hand(item, message, job.decision.portal);
  } catch (err) {
    // A key that cannot wrap, say: the operator can mend it; the recipient waits.
    walk.tried.push(`portal: ${(err as Error).message}`);
    walk.temporary = true;
    return null;
  }
  walk.tried.push(`portal: item ${handoff.facts.itemId}`);
  return portalResult(item, handoff);
}

/** A recipient the portal took: nothing went to an MX; the item and its notification go with the settlement. */
export function portalResult(item: QueueItem, handoff: PortalHandoff): RecipientResult {
  return {
    item,
    outcome: 'portal-notified',
    method: 'portal',
    mx: null,
    starttlsOffered: null,
    tls: null,
    smtp: { code: null, enhanced: null, response: `kept in the portal as item ${handoff.facts.itemId} until ${handoff.facts.expiresAt}; notification ${handoff.facts.notification} queued to ${item.recipient}` },
    portal: handoff,
  };
}

/** Why the first choice failed: its step's entry, which names the mode when the mode was the first step. */
function firstStep(mode: Decision['mode'], tried: readonly string[]): string {
  const first = tried[0] ?? 'nothing tried';
  return first.startsWith(`${mode}:`) ? first : `${mode}: ${first}`;
}

/** The decision one step of a chain is delivered under: the job's, in the step's mode. */
function stepDecision(d: Decision, mode: Decision['mode'], chain: readonly FallbackStep[], opts: { verification?: Decision['verification']; reason: string }): Decision {
  return makeDecision({ ...d, mode, fallbackChain: chain, verification: opts.verification ?? d.verification, reasons: [...d.reasons, opts.reason] });
}

/** The record's method for a sealed copy: how the copy travelled, under the encryption. */
function sealed(step: KeyKind, transport: Method): Method {
  if (transport === 'tls') return `${step}+tls`;
  if (transport === 'plaintext') return step;
  return 'none';
}
