// Compiled policy rules: each rule's conditions become one predicate over
// (recipient, message context). All conditions of a rule must hold (all-of);
// list-valued conditions hold when any item matches.
import { readFileSync } from 'node:fs';
import type { RuleConfig } from '../config/schema.ts';
import { domainOf } from '../store/store.ts';
import type { MessageContext } from './message-context.ts';
import { domainsFileEntries } from './domains-file.ts';
import { compileUserRegex } from './user-regex.ts';

export interface CompiledRule {
  readonly config: RuleConfig;
  /** Why it matched, one phrase per condition; null when it does not match. */
  match(recipient: string, ctx: MessageContext): string[] | null;
}

type Condition = (recipient: string, ctx: MessageContext) => string | null;

export function compileRules(rules: readonly RuleConfig[]): CompiledRule[] {
  return rules.map((config) => {
    const conditions = conditionsOf(config);
    return {
      config,
      match(recipient, ctx) {
        const why: string[] = [];
        for (const condition of conditions) {
          const reason = condition(recipient, ctx);
          if (reason === null) return null;
          why.push(reason);
        }
        return why;
      },
    };
  });
}

function conditionsOf(rule: RuleConfig): Condition[] {
  const m = rule.match;
  const out: Condition[] = [];
  const domains = [...(m.recipient_domain ?? []), ...(m.recipient_domains_file ? readDomainsFile(m.recipient_domains_file) : [])];
  if (m.recipient_domain !== undefined || m.recipient_domains_file !== undefined) {
    const matchers = domains.map(domainMatcher);
    out.push((rcpt) => {
      const domain = domainOf(rcpt);
      const hit = matchers.find((x) => x.test(domain));
      return hit ? `recipient domain ${domain} matches ${hit.pattern}` : null;
    });
  }
  if (m.recipient) out.push(addressCondition('recipient', m.recipient, (rcpt) => rcpt));
  if (m.sender) out.push(addressCondition('sender', m.sender, (_r, ctx) => ctx.sender));
  if (m.sender_domain) {
    const matchers = m.sender_domain.map(domainMatcher);
    out.push((_r, ctx) => {
      const domain = domainOf(ctx.sender);
      const hit = matchers.find((x) => x.test(domain));
      return hit ? `sender domain ${domain} matches ${hit.pattern}` : null;
    });
  }
  if (m.auth_user) {
    const users = new Set(m.auth_user);
    out.push((_r, ctx) => (ctx.authUser !== null && users.has(ctx.authUser) ? `submitted by ${ctx.authUser}` : null));
  }
  if (m.subject_tag) {
    const tag = m.subject_tag.toLowerCase();
    out.push((_r, ctx) => (ctx.subject?.toLowerCase().includes(tag) ? `subject carries ${m.subject_tag}` : null));
  }
  if (m.header) {
    const { name, value, regex } = m.header;
    // RE2: the header value is the sender's to choose, so matching must be linear in it.
    const re = regex === undefined ? null : compileUserRegex(regex);
    out.push((_r, ctx) => {
      const values = ctx.headers.get(name.toLowerCase()) ?? [];
      const hit = values.find((v) => (re ? re.test(v) : value === undefined || v === value));
      return hit === undefined ? null : `header ${name} ${re ? `matches /${regex}/` : value === undefined ? 'is present' : `is ${value}`}`;
    });
  }
  if (m.dlp) {
    const wanted = new Set(m.dlp);
    out.push((_r, ctx) => {
      const fired = ctx.dlpHits.filter((d) => wanted.has(d));
      return fired.length ? `DLP detector ${fired.join(', ')} fired` : null;
    });
  }
  return out;
}

interface Matcher {
  pattern: string;
  test(value: string): boolean;
}

/** "example.com" is that domain; "*.example.com" any of its subdomains (not itself). */
export function domainMatcher(pattern: string): Matcher {
  const p = pattern.trim().toLowerCase();
  if (p.startsWith('*.')) {
    const suffix = p.slice(1);
    return { pattern, test: (d) => d.endsWith(suffix) && d.length > suffix.length };
  }
  return { pattern, test: (d) => d === p };
}

/** Address patterns: case-insensitive, "*" any run of characters. */
export function addressMatcher(pattern: string): Matcher {
  const escaped = pattern.trim().toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  // RE2 too: with several "*" a backtracking engine is polynomial in the address (a*a*a*…).
  const re = compileUserRegex(`^${escaped}$`);
  return { pattern, test: (a) => re.test(a.toLowerCase()) };
}

function addressCondition(what: string, patterns: readonly string[], pick: (rcpt: string, ctx: MessageContext) => string): Condition {
  const matchers = patterns.map(addressMatcher);
  return (rcpt, ctx) => {
    const value = pick(rcpt, ctx);
    const hit = matchers.find((x) => x.test(value));
    return hit ? `${what} ${value} matches ${hit.pattern}` : null;
  };
}

/** The domains of a recipient_domains_file (domains-file.ts). */
export function readDomainsFile(file: string): string[] {
  return domainsFileEntries(readFileSync(file, 'utf8')).map((e) => e.entry);
}
