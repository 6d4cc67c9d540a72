// Every YAML block that README.md or a page in docs/ marks as a config example
// (`<!-- config-example -->` on the line before it) loads with the real config
// loader, and the README's policy recipes decide what their text says they do.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { createPolicy } from '../../src/policy/decide.ts';
import { messageContext } from '../../src/policy/message-context.ts';
import { documentationFiles, markedBlock, markedBlocks, ROOT, type Block } from './markdown.ts';

const examples: Block[] = documentationFiles().flatMap((file) => [...markedBlocks(file, 'config-example'), ...markedBlocks(file, 'first-delivery: config')]);

/**
 * The block as the content of a sealrelay.yaml in the repository root; the loader's
 * own message when it fails. A fragment goes into a config that has its submission
 * listeners (the one section the schema requires), as the README says to merge it
 * into yours: the shipped listener is added after it, so the lines stay the block's.
 */
function load(block: Block): Config {
  const text = /^ingress:/m.test(block.text) ? block.text : `${block.text}ingress:\n  listeners:\n    starttls: { host: 127.0.0.1, port: 2525, tls: starttls }\n`;
  try {
    return parseConfig(text, join(ROOT, 'sealrelay.yaml'));
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`${block.file}:${block.line}: the config example does not load:\n${err.message}`);
    throw err;
  }
}

/** The README recipe whose rule has this name. */
function recipe(ruleName: string): Config {
  const block = markedBlocks('README.md', 'config-example').find((b) => b.text.includes(`name: ${ruleName}\n`));
  if (!block) throw new Error(`README.md has no config example with the rule ${ruleName}`);
  return load(block);
}

const ctx = (over: { sender?: string; dlpHits?: string[] } = {}) =>
  messageContext({ sender: over.sender ?? 'app@clinic.example', authUser: null, headerBlock: 'Subject: hello', dlpHits: over.dlpHits });

describe('config examples in README.md and docs/', () => {
  it('finds them: the four recipes, the first delivery, and the examples in docs/', () => {
    const where = examples.map((b) => b.file);
    expect(where.filter((f) => f === 'README.md').length).toBeGreaterThanOrEqual(7);
    for (const page of ['docs/portal.md', 'docs/operations.md', 'docs/webhooks.md', 'docs/evidence.md']) expect(where).toContain(page);
    for (const b of examples) expect(b.lang, `${b.file}:${b.line}`).toBe('yaml');
  });

  it.each(examples.map((b) => [`${b.file}:${b.line}`, b] as const))('%s loads with the real config loader', (_where, block) => {
    expect(() => load(block)).not.toThrow();
  });

  it('a block the loader refuses fails this test, with the loader’s line and key', () => {
    const broken: Block = { file: 'README.md', line: 1, lang: 'yaml', text: 'policies:\n  rules:\n    - name: x\n      match: {}\n      mode: sometimes\n' };
    expect(() => load(broken)).toThrow(/README\.md:1: the config example does not load:\n[\s\S]*sealrelay\.yaml:5:\d+: policies\.rules\[x\]\.mode/);
  });
});

describe('the README recipes decide what their text says', () => {
  it('the bank: forced, certificate checked, no fallback — TLS or wait, then bounce', () => {
    const policy = createPolicy(recipe('bank-demands-tls'));
    for (const rcpt of ['pat@bank.example', 'pat@east.bank.example']) {
      expect(policy.decide(rcpt, ctx())).toMatchObject({ mode: 'forced', verification: 'ca', fallbackChain: [], rule: 'rule:bank-demands-tls' });
    }
    expect(policy.decide('pat@example.org', ctx())).toMatchObject({ mode: 'opportunistic' });
  });

  it('marketing: tls-exclusive for the newsletter sender only', () => {
    const policy = createPolicy(recipe('marketing-tls-or-nothing'));
    expect(policy.decide('pat@example.org', ctx({ sender: 'news@news.clinic.example' }))).toMatchObject({ mode: 'tls-exclusive', fallbackChain: [], rule: 'rule:marketing-tls-or-nothing' });
    expect(policy.decide('pat@example.org', ctx())).toMatchObject({ mode: 'opportunistic' });
  });

  it('PHI by DLP: any named detector, or a scan cut short, raises the message to forced with the default chain', () => {
    const policy = createPolicy(recipe('phi-never-plaintext'));
    for (const hit of ['ssn', 'mrn', 'icd10', 'dob', 'incomplete']) {
      expect(policy.decide('pat@example.org', ctx({ dlpHits: [hit] }))).toMatchObject({ mode: 'forced', rule: 'rule:phi-never-plaintext' });
    }
    // No portal configured in the recipe: forced's chain ends before the portal step.
    expect(policy.decide('pat@example.org', ctx({ dlpHits: ['ssn'] })).fallbackChain.slice(0, 2)).toEqual(['pgp', 'smime']);
    expect(policy.decide('pat@example.org', ctx({ dlpHits: ['credit-card'] }))).toMatchObject({ mode: 'opportunistic' });
    expect(policy.decide('pat@example.org', ctx())).toMatchObject({ mode: 'opportunistic' });
  });

  it('the partner: pgp, with no fallback (no key → bounce)', () => {
    const policy = createPolicy(recipe('partner-pgp'));
    expect(policy.decide('sam@partner.example', ctx())).toMatchObject({ mode: 'pgp', fallbackChain: [], rule: 'rule:partner-pgp' });
    expect(policy.decide('sam@other.example', ctx())).toMatchObject({ mode: 'opportunistic' });
  });

  it('the first delivery: forced for partner.test, routed to the local server', () => {
    const config = load(markedBlock('README.md', 'first-delivery: config'));
    expect(config.delivery.routes['partner.test']).toBe('127.0.0.1:2527');
    expect(createPolicy(config).decide('pat@partner.test', ctx())).toMatchObject({ mode: 'forced', verification: 'none', rule: 'rule:partner-needs-tls' });
  });
});
