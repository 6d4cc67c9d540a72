// `sealrelay policy explain`: what the current policy decides for each
// recipient of a (real or described) message, which rule set the mode, and every
// rule and escalation that applied and why — the same code the delivery worker
// runs (createPolicy + domain knowledge), so the answer is the relay's answer.
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createPolicy, portalConfigured, type Explanation } from '../policy/decide.ts';
import { informedBy } from '../policy/domain-knowledge.ts';
import { messageContext } from '../policy/message-context.ts';
import { dlpScannerFor } from '../policy/dlp/for-config.ts';
import { openStore } from '../store/open-store.ts';
import { chooseKey } from '../crypto/choose-key.ts';
import { domainOf, isKeyKind, type DomainKnowledge, type KeyKind, type RecipientKey } from '../store/store.ts';
import { readPolicyConfig, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';

interface ExplainOptions {
  from: string;
  to: string[];
  subject?: string;
  header: string[];
  authUser?: string;
  file?: string;
  json?: boolean;
}

export function registerPolicyCommands(program: Command, context: () => CliContext): void {
  const policy = program.command('policy').description('inspect the delivery policy');
  policy
    .command('explain')
    .description('the decision for each recipient, the rule that matched and every escalation')
    .requiredOption('--from <address>', 'envelope sender')
    .requiredOption('--to <address>', 'recipient (repeat for several)', collect, [])
    .option('--subject <text>', 'subject (overrides the one in --file)')
    .option('--header <"Name: value">', 'a header field (repeatable)', collect, [])
    .option('--auth-user <name>', 'as if submitted by this authenticated user')
    .option('--file <message.eml>', 'take the header fields from a message file')
    .option('--json', 'one JSON object per recipient')
    .action(async (opts: ExplainOptions) => {
      if (!opts.to.length) throw new CliError(EXIT.USAGE, 'policy explain needs at least one --to');
      const config = readPolicyConfig(context());
      const head = headerBlockFrom(opts);
      // The whole message file goes through DLP exactly as the relay would scan it.
      const dlpHits = opts.file ? await dlpScannerFor(config).hits('explain', readFileSync(opts.file)) : [];
      const ctx = messageContext({ sender: opts.from, authUser: opts.authUser ?? null, headerBlock: head, dlpHits });
      const { knowledge, keys } = await storeFacts(config.store, opts.to);
      const policy = createPolicy(config);
      const rows = opts.to.map((to) => {
        const explained = policy.explain(to, ctx);
        return { recipient: to, dlpHits, ...explained, decision: informedBy(explained.decision, domainOf(to), knowledge.get(domainOf(to)) ?? null), keys: keys.get(to) ?? null };
      });
      if (opts.json) {
        for (const r of rows) console.log(JSON.stringify(r));
        return;
      }
      console.log(
        renderTable(
          [{ header: 'RECIPIENT' }, { header: 'MODE' }, { header: 'VERIFY' }, { header: 'FLOOR' }, { header: 'TLS EXPECTED' }, { header: 'FALLBACK' }, { header: 'RULE' }],
          rows.map((r) => [
            r.recipient,
            r.decision.mode,
            r.decision.verification,
            `${r.decision.floor.minVersion}, ${r.decision.floor.minCipherBits} bits`,
            r.decision.tlsExpected ? 'yes' : 'no',
            r.decision.fallbackChain.join(' → ') || '-',
            r.decision.rule,
          ]),
        ),
      );
      for (const r of rows) {
        console.log(`\n${r.recipient}:`);
        for (const line of traceLines(r, portalConfigured(config))) console.log(`  ${line}`);
      }
    });
}

function traceLines(r: Explanation & { recipient: string; keys: HeldKeys | null }, portalReady: boolean): string[] {
  const lines = r.trace.map((t) => `${t.raised ? '↑' : '·'} ${t.source} ${t.name}: ${t.why}${t.source === 'default' || t.source === 'domain' ? ` → ${t.mode}` : t.raised ? ` → raised to ${t.mode}` : ` (${t.mode}, no change)`}`);
  const known = r.decision.reasons.find((reason) => reason.includes('TLS-known'));
  if (known) lines.push(`↑ domain knowledge: ${known}`);
  // Which encryption steps could be taken today, from the keys the store holds.
  const steps = new Set([r.decision.mode, ...r.decision.fallbackChain].filter(isKeyKind));
  for (const kind of steps) {
    const key = r.keys?.[kind] ?? null;
    lines.push(`· key ${kind}: ${key ? `${key.fingerprint} (${key.source}${key.expiresAt ? `, expires ${new Date(key.expiresAt).toISOString().slice(0, 10)}` : ''})` : kind === 'pgp' ? 'none held (WKD may find one at delivery)' : 'none held'}`);
  }
  if (r.decision.mode === 'portal' || r.decision.fallbackChain.includes('portal')) {
    const t = r.decision.portal;
    lines.push(
      portalReady
        ? `· portal: kept ${t.expiryDays} day(s); key in link: ${t.keyInLink ? 'yes' : 'no'}; passphrase: ${t.passphrase === null ? 'no' : 'yes'}; subject in the notification: ${t.showSubject ? 'yes' : 'no'}`
        : '· portal: not configured (portal.master_keys, portal.listen): the step is skipped',
    );
  }
  return lines;
}

function headerBlockFrom(opts: ExplainOptions): string {
  let head = '';
  if (opts.file) {
    if (!existsSync(opts.file)) throw new CliError(EXIT.USAGE, `no such file: ${opts.file}`);
    const text = readFileSync(opts.file, 'latin1');
    const end = text.search(/\r?\n\r?\n/);
    head = end < 0 ? text : text.slice(0, end);
  }
  const extra = [...opts.header];
  if (opts.subject !== undefined) {
    head = head.replace(/^Subject:.*(\r?\n[ \t].*)*$/gim, '').replace(/^\s*\n/gm, '');
    extra.push(`Subject: ${opts.subject}`);
  }
  for (const h of extra) if (!/^[^:\s]+:/.test(h)) throw new CliError(EXIT.USAGE, `--header wants "Name: value", got ${h}`);
  return [head, ...extra].filter(Boolean).join('\r\n');
}

/** The key a step would use, as explain shows it (the key material itself stays in the store). */
type HeldKey = Pick<RecipientKey, 'fingerprint' | 'source' | 'expiresAt'>;
type HeldKeys = Record<KeyKind, HeldKey | null>;

const held = (key: RecipientKey | null): HeldKey | null => key && { fingerprint: key.fingerprint, source: key.source, expiresAt: key.expiresAt };

/** What the store knows that changes the answer: domain knowledge, and the keys each recipient has. */
async function storeFacts(config: Parameters<typeof openStore>[0], recipients: readonly string[]): Promise<{ knowledge: Map<string, DomainKnowledge>; keys: Map<string, HeldKeys> }> {
  const knowledge = new Map<string, DomainKnowledge>();
  const keys = new Map<string, HeldKeys>();
  if (config.driver === 'sqlite' && !existsSync(config.path)) return { knowledge, keys };
  const store = openStore(config);
  try {
    for (const domain of new Set(recipients.map(domainOf))) {
      const k = await store.getDomain(domain);
      if (k) knowledge.set(domain, k);
    }
    const now = Date.now();
    for (const to of recipients) {
      const stored = await store.keysFor(to);
      keys.set(to, { pgp: held(chooseKey(stored, 'pgp', now)), smime: held(chooseKey(stored, 'smime', now)) });
    }
  } finally {
    await store.close();
  }
  return { knowledge, keys };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
