// Domain knowledge as a policy input (DESIGN: "has offered TLS before"). A domain
// that has delivered over TLS is TLS-known: from then on even an opportunistic
// decision expects TLS, so a stripped STARTTLS or a failed handshake is a possible
// downgrade (deferred), never plaintext. Only `none`, which an operator names on
// purpose, is left as it is.
import type { DomainKnowledge } from '../store/store.ts';
import { expectTls, type Decision } from './decision.ts';

export function informedBy(decision: Decision, domain: string, knowledge: DomainKnowledge | null): Decision {
  if (!knowledge?.tlsKnownSince || decision.mode === 'none') return decision;
  const since = new Date(knowledge.tlsKnownSince).toISOString();
  return expectTls(decision, `${domain} is TLS-known: delivered over TLS since ${since}`);
}
