// Domain knowledge as a policy input (DESIGN: "has offered TLS before"). A domain
// that has delivered over TLS is TLS-known: from then on even an opportunistic
// decision expects TLS, so a stripped STARTTLS or a failed handshake is a possible
// downgrade (deferred), never plaintext. Only `none`, which an operator names on
// purpose, is left as it is.
import type { MtaStsState } from '../domains/mta-sts-cache.ts';
import type { DomainKnowledge } from '../store/store.ts';
import { expectTls, makeDecision, type Decision } from './decision.ts';
import { joinVerification } from './lattice.ts';

export function informedBy(decision: Decision, domain: string, knowledge: DomainKnowledge | null): Decision {
  if (!knowledge?.tlsKnownSince || decision.mode === 'none') return decision;
  const since = new Date(knowledge.tlsKnownSince).toISOString();
  return expectTls(decision, `${domain} is TLS-known: delivered over TLS since ${since}`);
}

/**
 * An MTA-STS `enforce` policy (RFC 8461 §5): TLS to an MX the policy lists, with a
 * certificate valid for that MX name — never plaintext. `testing` changes nothing
 * here; the attempt records what would have failed.
 */
export function informedByMtaSts(decision: Decision, domain: string, sts: MtaStsState | null): Decision {
  if (!sts || sts.mode !== 'enforce' || decision.mode === 'none') return decision;
  const why = `${domain} has an MTA-STS enforce policy (id ${sts.id ?? '?'}, mx ${sts.mx.join(', ')})`;
  const expected = expectTls(decision, why);
  const verification = joinVerification(expected.verification, 'mta-sts');
  return verification === expected.verification ? expected : makeDecision({ ...expected, verification });
}
