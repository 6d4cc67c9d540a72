// `sealrelay audit`: the audit trail (events/audit/) — who read or changed what,
// when — as a table, NDJSON or CSV, filtered by time, actor and action; and
// `sealrelay audit verify`, which walks the hash chain and names the first entry
// that was removed, inserted, reordered or edited (exit 1), else prints the head
// (seq:hash) to keep somewhere else. Given back as --expect-head, the head also
// shows what the chain alone cannot: entries cut off its end, or the whole trail
// rewritten with fresh hashes. Reading the trail is itself an entry (audit.read).
import { InvalidArgumentError, type Command } from 'commander';
import { AUDIT_ACTIONS, isAuditAction, MAX_AUDIT_PAGE, type AuditAction, type AuditEntry, type AuditQuery } from '../events/audit/entry.ts';
import { formatHead, parseHead, verifyAuditChain, type ChainHead } from '../events/audit/verify.ts';
import type { Store } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { parsePositiveInt } from './log.ts';
import { auditCommand, describeFilter } from './operator.ts';
import { renderTable } from './table.ts';
import { isoSeconds, parseSince } from './time.ts';

const FORMATS = ['table', 'json', 'csv'] as const;
type Format = (typeof FORMATS)[number];

interface ListOptions {
  since?: number;
  actor?: string;
  action?: AuditAction;
  format: Format;
  limit?: number;
}

export function registerAuditCommands(program: Command, context: () => CliContext): void {
  const audit = program.command('audit').description('the audit trail: who read or changed message data, and when (default: list); verify its hash chain');

  audit
    .command('list', { isDefault: true })
    .description('entries in order, oldest first: time, actor (OS user, API token, recipient, relay), IP, action, target, detail')
    .option('--since <when>', 'duration back from now (30m, 24h, 7d) or ISO date', sinceOption)
    .option('--actor <name>', 'only this actor (an OS user, token name, recipient address, SIGHUP)')
    .option('--action <action>', `one of ${AUDIT_ACTIONS.join(', ')}`, actionOption)
    .option('--limit <n>', 'only the first n matching entries', parsePositiveInt)
    .option('--format <format>', 'table (default), json (one entry per line, hashes included) or csv', formatOption, 'table' as Format)
    .action(async (opts: ListOptions) => {
      const query = { since: opts.since, actor: opts.actor, action: opts.action };
      const entries = await withStore(readConfig(context()), async (store) => {
        const found = await readAll(store, query, opts.limit);
        await auditCommand(store, 'audit.read', describeFilter(query), `${found.length} entries`);
        return found;
      });
      if (opts.format === 'json') for (const e of entries) console.log(JSON.stringify(e));
      else if (opts.format === 'csv') process.stdout.write(toCsv(entries));
      else console.log(entries.length ? entryTable(entries) : 'no audit entries match');
    });

  audit
    .command('verify')
    .description('check the hash chain from the first entry; prints the head (SEQ:HASH) to keep elsewhere; exit 1 at the first bad entry')
    .option('--expect-head <seq:hash>', 'a head printed before: that entry must still be there, unchanged (catches a cut-off end or a rewritten trail)', headOption)
    .action(async (opts: { expectHead?: ChainHead }) => {
      const verdict = await withStore(readConfig(context()), (store) =>
        verifyAuditChain((afterSeq, limit) => store.listAudit({ afterSeq, limit }), opts.expectHead),
      );
      if (!verdict.ok) {
        console.log(`audit trail BROKEN at entry ${verdict.badSeq}: ${verdict.reason}`);
        throw new CliError(EXIT.FAILURE, `audit trail broken at entry ${verdict.badSeq} (${verdict.entries} entries before it are intact)`);
      }
      if (!verdict.head) {
        console.log('audit trail is empty');
        return;
      }
      console.log(`audit trail intact: ${verdict.entries} entries${opts.expectHead ? `, expected head ${opts.expectHead.seq} found` : ''}`);
      console.log(`head ${formatHead(verdict.head)}`);
      console.log('(keep the head somewhere else; `sealrelay audit verify --expect-head <it>` later shows whether entries up to it were cut off or rewritten)');
    });
}

/** Every matching entry, page by page, at most `limit`. */
async function readAll(store: Store, filter: Omit<AuditQuery, 'limit' | 'afterSeq'>, limit = Number.POSITIVE_INFINITY): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  let afterSeq = 0;
  while (all.length < limit) {
    const page = await store.listAudit({ ...filter, afterSeq, limit: Math.min(MAX_AUDIT_PAGE, limit - all.length) });
    all.push(...page);
    const last = page.at(-1);
    if (!last || page.length < MAX_AUDIT_PAGE) break;
    afterSeq = last.seq;
  }
  return all;
}

function entryTable(entries: readonly AuditEntry[]): string {
  return renderTable(
    [{ header: 'SEQ', align: 'right' }, { header: 'TIME' }, { header: 'ACTOR' }, { header: 'IP' }, { header: 'ACTION' }, { header: 'TARGET' }, { header: 'DETAIL' }],
    entries.map((e) => [String(e.seq), isoSeconds(e.at), `${e.actorKind}:${e.actorName}`, e.ip ?? '-', e.action, e.target ?? '-', e.detail ?? '']),
  );
}

const CSV_COLUMNS = ['seq', 'at', 'actor_kind', 'actor_name', 'ip', 'action', 'target', 'detail', 'prev', 'hash'] as const;

/** RFC 4180, with `at` as ISO 8601; a cell a spreadsheet would take for a formula is prefixed with ' (a name or route may come from outside). */
function toCsv(entries: readonly AuditEntry[]): string {
  const cell = (v: string | number | null) => {
    let text = v === null ? '' : String(v);
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const rows = entries.map((e) => [e.seq, Number.isFinite(e.at) ? new Date(e.at).toISOString() : String(e.at), e.actorKind, e.actorName, e.ip, e.action, e.target, e.detail, e.prev, e.hash].map(cell).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\r\n') + '\r\n';
}

function sinceOption(value: string): number {
  try {
    return parseSince(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
}

function actionOption(value: string): AuditAction {
  if (!isAuditAction(value)) throw new InvalidArgumentError(`expected one of ${AUDIT_ACTIONS.join(', ')}.`);
  return value;
}

function formatOption(value: string): Format {
  if (!(FORMATS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${FORMATS.join(', ')}.`);
  return value as Format;
}

function headOption(value: string): ChainHead {
  try {
    return parseHead(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
}
