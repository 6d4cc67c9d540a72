// The filters of `sealrelay queue list|delete|hold|release|flush`, like Postfix's
// `postsuper -d ALL deferred` and `postqueue -s example.com`: which messages a command
// acts on, by state, recipient domain, sender and age, and the target that names
// them (a queue id, a unique prefix of one, or ALL). Every value comes from the
// command line and is checked here; a bad one is a usage error (exit 64) that says
// what was expected, before the store is opened. Nothing is a pattern: a prefix with
// `%` or `_` is taken literally.
import { InvalidArgumentError, type Command } from 'commander';
import { QUEUE_STATES, type OperatorAction, type QueueSelection, type QueueState } from '../store/store.ts';
import { CliError, EXIT } from './exit.ts';
import { parseDuration } from './time.ts';

/** The target that names every message the filters select, as Postfix spells it. */
export const ALL = 'ALL';

/** The options every queue command with filters takes, as commander hands them over. */
export interface SelectionOptions {
  readonly state?: readonly QueueState[];
  readonly domain?: readonly string[];
  readonly sender?: readonly string[];
  readonly olderThan?: number;
  readonly newerThan?: number;
}

/** The states each action can change: a filter naming none of them selects nothing, so it is refused. */
const CHANGES: Readonly<Record<OperatorAction, readonly QueueState[]>> = {
  hold: ['queued', 'deferred', 'active'],
  release: ['held'],
  flush: ['queued', 'deferred', 'active'],
  delete: QUEUE_STATES,
};

/** What `sealrelay queue <action> <target>` needs a reader to know; shared by the help texts. */
export const TARGET_HELP = `a queue id, a unique prefix of one, or ${ALL} (every message the filters select)`;

export function addSelectionOptions(command: Command): Command {
  return command
    .option('--state <states>', `recipients in these states, comma-separated: ${QUEUE_STATES.join(', ')}`, parseStates)
    .option('--domain <domain>', 'recipients at this domain (exactly; not its subdomains)', collect('--domain', parseDomain))
    .option('--sender <sender>', 'messages from this address, from any address at this domain, or <> (the null sender: bounces)', collect('--sender', parseSender))
    .option('--older-than <age>', 'messages received longer ago than this (90s, 30m, 2h, 2d, 1w)', parseAge)
    .option('--newer-than <age>', 'messages received less long ago than this', parseAge);
}

/** Whether any filter was given (a bare target acts as the single-message commands always have). */
export function hasFilters(opts: SelectionOptions): boolean {
  return opts.state !== undefined || opts.domain !== undefined || opts.sender !== undefined || opts.olderThan !== undefined || opts.newerThan !== undefined;
}

/** The filters as a selection at `now`; throws a usage error when they contradict each other or `action`. */
export function selectionOf(opts: SelectionOptions, now: number, action: OperatorAction | null): QueueSelection {
  if (opts.olderThan !== undefined && opts.newerThan !== undefined && opts.olderThan >= opts.newerThan) {
    throw new CliError(EXIT.USAGE, `--older-than ${ageText(opts.olderThan)} and --newer-than ${ageText(opts.newerThan)} select nothing: no message is both`);
  }
  if (action && opts.state && !opts.state.some((s) => CHANGES[action].includes(s))) {
    throw new CliError(EXIT.USAGE, `queue ${action} changes only recipients that are ${CHANGES[action].join(', ')}; --state ${opts.state.join(',')} selects none of them`);
  }
  const sender = opts.sender?.[0];
  return {
    ...(opts.state ? { states: opts.state } : {}),
    ...(opts.domain ? { domain: opts.domain[0]! } : {}),
    ...(sender === undefined ? {} : sender.includes('@') || sender === '' ? { sender: { address: sender } } : { sender: { domain: sender } }),
    ...(opts.olderThan !== undefined ? { receivedBefore: now - opts.olderThan } : {}),
    ...(opts.newerThan !== undefined ? { receivedAfter: now - opts.newerThan } : {}),
  };
}

/** The filters as the audit trail and the log line name them: "ALL state=deferred domain=example.com". */
export function describeSelection(target: string, opts: SelectionOptions): string {
  const parts = [target];
  if (opts.state) parts.push(`state=${opts.state.join(',')}`);
  if (opts.domain) parts.push(`domain=${opts.domain[0]}`);
  if (opts.sender) parts.push(`sender=${opts.sender[0] || '<>'}`);
  if (opts.olderThan !== undefined) parts.push(`older-than=${ageText(opts.olderThan)}`);
  if (opts.newerThan !== undefined) parts.push(`newer-than=${ageText(opts.newerThan)}`);
  return parts.join(' ');
}

/**
 * A target that is not ALL: a queue id or the start of one. Refused when it cannot be
 * one (empty, spaces, control characters); anything else is looked up literally.
 */
export function checkIdTarget(target: string): string {
  if (target === '') throw new CliError(EXIT.USAGE, `an empty queue id prefix would select every message; say ${ALL} for that`);
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/u.test(target)) throw new CliError(EXIT.USAGE, `"${printable(target)}" is not a queue id or a prefix of one (no spaces or control characters)`);
  return target;
}

function parseStates(value: string, previous: readonly QueueState[] | undefined): QueueState[] {
  const names = value.split(',').map((s) => s.trim().toLowerCase());
  const unknown = names.filter((n) => !(QUEUE_STATES as readonly string[]).includes(n));
  if (unknown.length || !names.length) {
    throw new InvalidArgumentError(`${unknown.map((n) => (n ? `"${printable(n)}"` : 'an empty name')).join(', ')} is not a state: expected ${QUEUE_STATES.join(', ')}`);
  }
  return [...new Set([...(previous ?? []), ...(names as QueueState[])])];
}

/** An option given once; a second one is refused rather than silently winning. */
function collect(flag: string, parse: (value: string) => string) {
  return (value: string, previous: readonly string[] | undefined): string[] => {
    if (previous) throw new InvalidArgumentError(`${flag} is given once (a message matches every filter given)`);
    return [parse(value)];
  };
}

function parseDomain(value: string): string {
  const domain = value.trim().toLowerCase().replace(/\.$/, '');
  if (!domain) throw new InvalidArgumentError('expected a domain, e.g. example.com');
  if (domain.includes('@')) throw new InvalidArgumentError('expected a domain, not an address (--domain is the recipients\'; --sender the sender\'s)');
  if (!isDomainLike(domain)) throw new InvalidArgumentError(`"${printable(value)}" is not a domain`);
  return domain;
}

/** An address, a domain (with or without a leading @), or <> for the null sender ('' here). */
function parseSender(value: string): string {
  const sender = value.trim();
  if (sender === '<>') return '';
  if (!sender) throw new InvalidArgumentError('expected an address, a domain, or <> for the null sender');
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/u.test(sender)) throw new InvalidArgumentError(`"${printable(value)}" is not an address or a domain`);
  if (sender.startsWith('@')) return parseDomain(sender.slice(1));
  const at = sender.lastIndexOf('@');
  if (at < 0) return parseDomain(sender);
  if (at === 0 || at === sender.length - 1) throw new InvalidArgumentError(`"${printable(value)}" is not an address`);
  return sender;
}

function parseAge(value: string): number {
  const ms = parseDuration(value);
  if (ms === null) throw new InvalidArgumentError('expected an age like 90s, 30m, 2h, 2d or 1w');
  if (!Number.isSafeInteger(ms) || ms > Date.now()) throw new InvalidArgumentError('an age longer than the epoch selects nothing');
  return ms;
}

function isDomainLike(domain: string): boolean {
  // Labels of letters (any script: SMTPUTF8 domains are queued as given), digits and hyphens.
  return domain.length <= 253 && domain.split('.').every((label) => /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u.test(label));
}

function ageText(ms: number): string {
  for (const [unit, size] of [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms / 1000}s`;
}

/** A value echoed in an error, its control characters shown rather than acted on by the terminal. */
function printable(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}
