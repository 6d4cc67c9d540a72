// Recipient → Decision. In this version the policy is a default plus an exact
// per-domain table (`policies.domains`); the rule engine grows here later, always
// ending in makeDecision so every Decision names its rule and its reasons.
import type { Config } from '../config/schema.ts';
import { domainOf } from '../store/store.ts';
import { makeDecision, type Decision, type Floor } from './decision.ts';

export interface Policy {
  decide(recipient: string): Decision;
}

export function createPolicy(config: Pick<Config, 'policies' | 'tls'>): Policy {
  const floor: Floor = { minVersion: config.tls.min_version, minCipherBits: config.tls.min_cipher_bits };
  const domains = new Map(Object.entries(config.policies.domains).map(([d, entry]) => [d.toLowerCase(), entry]));
  const fallbackDecision = makeDecision({
    ...config.policies.default,
    floor,
    fallbackChain: [],
    tlsExpected: false,
    rule: 'default',
    reasons: [`policies.default: mode ${config.policies.default.mode}`],
  });
  const byDomain = new Map<string, Decision>();
  for (const [domain, entry] of domains) {
    byDomain.set(
      domain,
      makeDecision({ ...entry, floor, fallbackChain: [], tlsExpected: false, rule: `domain:${domain}`, reasons: [`policies.domains.${domain}: mode ${entry.mode}`] }),
    );
  }
  return {
    decide(recipient) {
      return byDomain.get(domainOf(recipient)) ?? fallbackDecision;
    },
  };
}
