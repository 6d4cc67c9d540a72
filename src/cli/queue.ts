// `sealrelay queue`: what is waiting, like postqueue -p, and the operator's
// actions on it, like postsuper: flush (retry now), hold, release, delete.
// Every action goes through the Store, so a running relay sees it at its next
// poll; nothing here talks to the relay process itself. Each action leaves a
// trace: an operator record per recipient it changed (in the store, shown by
// `sealrelay log`) naming the OS user who ran it, and a log line on stderr.
// Reads that show recipients, and every action, are in the audit trail too.
// `queue stats` gives the totals, among them the running count of possible
// duplicates (DESIGN: after a crash a message may be delivered twice, and that is counted).
import { InvalidArgumentError, type Command } from 'commander';
import { pino } from 'pino';
import { createLogger } from '../log.ts';
import type { OperatorAction, QueueEntry, QueueStats, Store } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { recordTable } from './log.ts';
import { auditCommand, currentOperator } from './operator.ts';
import { ACTION_EVENTS, AUDIT_ACTIONS } from './queue-actions.ts';
import { listSelected, runQueueAction, type ActionOptions, type QueueView } from './queue-bulk.ts';
import { addSelectionOptions, hasFilters, TARGET_HELP, type SelectionOptions } from './queue-select.ts';
import { renderTable, truncate } from './table.ts';
import { formatDuration, formatRelative, isoSeconds } from './time.ts';

/** Messages `queue list` shows unless told otherwise: enough to read, bounded for a 100,000-message queue. */
const DEFAULT_LIST_LIMIT = 1000;

/** What a possible duplicate is, wherever the count is shown. */
const DUPLICATES_MEANING = 'recipients retried after a crash cut their attempt off';

/** Width of "last error" in the list; `queue show` prints it whole. */
const LAST_ERROR_WIDTH = 50;

type Recipient = QueueEntry['recipients'][number];

/** How the bulk actions (queue-bulk.ts) show what they select: as `queue list` does. */
const VIEW: QueueView = { table: (entries, now) => queueTable(entries, now), footer: (stats) => queueFooter(stats) };

export function registerQueueCommands(program: Command, context: () => CliContext): void {
  const queue = program.command('queue').description('list and act on queued messages (default: list)');

  addSelectionOptions(
    queue
      .command('list [target]', { isDefault: true })
      .description('list queued messages (like postqueue -p); with a queue id prefix or filters, those that match')
      .option('--json', 'one JSON queue entry per line')
      .option('--limit <n>', `the oldest n messages (0: all; default ${DEFAULT_LIST_LIMIT})`, parseLimit, DEFAULT_LIST_LIMIT),
  ).action((target: string | undefined, opts: SelectionOptions & { json?: boolean; limit: number }) =>
    target !== undefined || hasFilters(opts) ? listSelected(context(), target, opts, VIEW) : listQueue(context(), opts),
  );

  queue
    .command('stats')
    .description('totals of the whole queue, and the running count of possible duplicates')
    .option('--json', 'as one JSON object')
    .action(async (opts: { json?: boolean }) => {
      const stats = await withStore(readConfig(context()), (store) => store.queueStats());
      console.log(opts.json ? JSON.stringify(stats) : statsDetails(stats));
    });

  queue
    .command('show <id>')
    .description("one message: every recipient's state and the delivery records so far")
    .option('--json', 'the entry and its records as one JSON object')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withStore(readConfig(context()), async (store) => {
        const entry = await requireEntry(store, id);
        const records = await store.queryLog({ message: entry.queueId });
        await auditCommand(store, 'queue.read', entry.queueId, `${entry.recipients.length} recipients, ${records.length} records`);
        if (opts.json) {
          console.log(JSON.stringify({ entry, records }));
          return;
        }
        const now = Date.now();
        console.log(entryDetails(entry, now));
        console.log();
        console.log(recipientTable(entry.recipients, now));
        console.log();
        // One message's detail: every fact in full, as `log --wide`.
        console.log(records.length ? `delivery records:\n${recordTable(records, true)}` : 'delivery records: none yet');
      });
    });

  actionCommand(queue, 'flush [target]', 'make waiting recipients due now (like postqueue -f; with --domain, postqueue -s); the whole queue when no target').action(
    (target: string | undefined, opts: ActionOptions) =>
      runQueueAction(context(), 'flush', target, opts, VIEW, async (id) => {
        const n = await act(context(), 'flush', id, (store, operator) => store.flush(id, operator));
        console.log(`flushed ${plural(n, 'recipient')}${id ? ` of ${id}` : ''}`);
      }),
  );

  actionCommand(queue, 'hold [target]', 'keep messages from being tried until they are released (like postsuper -h)').action(
    (target: string | undefined, opts: ActionOptions) =>
      runQueueAction(context(), 'hold', target, opts, VIEW, async (id) => {
        const n = await act(context(), 'hold', id, (store, operator) => store.hold(id!, operator));
        console.log(`held ${plural(n, 'recipient')} of ${id}`);
      }),
  );

  actionCommand(queue, 'release [target]', 'release held messages; they are due at once (like postsuper -H)').action(
    (target: string | undefined, opts: ActionOptions) =>
      runQueueAction(context(), 'release', target, opts, VIEW, async (id) => {
        const n = await act(context(), 'release', id, (store, operator) => store.releaseHold(id!, operator));
        console.log(`released ${plural(n, 'recipient')} of ${id}`);
      }),
  );

  actionCommand(queue, 'delete [target]', 'remove messages from the queue without delivering or bouncing them (like postsuper -d)').action(
    (target: string | undefined, opts: ActionOptions) =>
      runQueueAction(context(), 'delete', target, opts, VIEW, async (id) => {
        const n = await act(context(), 'delete', id, (store, operator) => store.deleteEntry(id!, operator));
        console.log(`deleted ${id}: ${plural(n, 'recipient')} removed`);
      }),
  );
}

/** An action that takes a target (TARGET_HELP), the filters and --dry-run. */
function actionCommand(queue: Command, nameAndArgs: string, description: string): Command {
  return addSelectionOptions(queue.command(nameAndArgs).description(`${description}\ntarget: ${TARGET_HELP}`)).option(
    '--dry-run',
    'show what would change, and change nothing',
  );
}

/** `queue list`, and `mailq` / `sendmail -bp` (sendmail.ts): the oldest `limit` messages (0: all) and the totals. */
export async function listQueue(ctx: CliContext, opts: { json?: boolean; limit: number } = { limit: DEFAULT_LIST_LIMIT }): Promise<void> {
  const { entries, stats } = await withStore(readConfig(ctx), async (store) => {
    const listed = { entries: await store.listQueue(opts.limit ? { limit: opts.limit } : {}), stats: await store.queueStats() };
    await auditCommand(store, 'queue.read', 'list', `${listed.entries.length} messages`);
    return listed;
  });
  if (opts.json) {
    for (const e of entries) console.log(JSON.stringify(e));
    return;
  }
  if (!entries.length) {
    // The possible duplicates outlive the messages they belonged to.
    console.log(stats.possibleDuplicates ? `queue is empty; ${duplicatesNote(stats.possibleDuplicates)}` : 'queue is empty');
    return;
  }
  console.log(queueTable(entries, Date.now()));
  console.log();
  if (entries.length < stats.messages) console.log(`(the oldest ${entries.length} of ${stats.messages} messages; --limit 0 lists all)`);
  console.log(queueFooter(stats));
}

/**
 * Runs one operator action on `id` (null: the whole queue) as the OS user running
 * the command: the store records it with the change; the log line on stderr says
 * it too (stdout stays the answer). Returns how many recipients it changed.
 */
async function act(ctx: CliContext, action: OperatorAction, id: string | null, run: (store: Store, operator: string) => Promise<number>): Promise<number> {
  const config = readConfig(ctx);
  const operator = currentOperator();
  const changed = await withStore(config, async (store) => {
    if (id !== null) await requireEntry(store, id);
    const n = await run(store, operator);
    await auditCommand(store, AUDIT_ACTIONS[action], id ?? '(all)', `${n} recipients`);
    return n;
  });
  const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
  logger.info({ event: ACTION_EVENTS[action], queueId: id, recipients: changed, operator }, `queue ${action} ${id ?? '(all)'} by ${operator}: ${plural(changed, 'recipient')}`);
  return changed;
}

async function requireEntry(store: Store, id: string): Promise<QueueEntry> {
  const entry = await store.getQueueEntry(id);
  if (!entry) throw new CliError(EXIT.FAILURE, `no message ${id} in the queue (finished messages are in \`sealrelay log --message ${id}\`)`);
  return entry;
}

/** Recipients still to be delivered; the others are already settled (records say how). */
function pendingOf(entry: QueueEntry): Recipient[] {
  return entry.recipients.filter((r) => r.state === 'queued' || r.state === 'held');
}

export function queueTable(entries: readonly QueueEntry[], now: number): string {
  return renderTable(
    [
      { header: 'ID' },
      { header: 'AGE', align: 'right' },
      { header: 'SIZE', align: 'right' },
      { header: 'SENDER' },
      { header: 'RECIPIENTS' },
      { header: 'STATE' },
      { header: 'NEXT TRY' },
      { header: 'LAST ERROR' },
    ],
    entries.map((e) => {
      const pending = pendingOf(e);
      const first = pending[0]?.recipient ?? '-';
      const queued = pending.filter((r) => r.state === 'queued');
      const nextTry = queued.length ? Math.min(...queued.map((r) => r.nextAttemptAt)) : null;
      const lastError = pending.find((r) => r.lastError)?.lastError ?? '';
      return [
        e.queueId,
        formatDuration(now - e.receivedAt),
        formatBytes(e.size),
        e.sender || '<>',
        pending.length > 1 ? `${first} (+${pending.length - 1})` : first,
        entryState(pending, now),
        nextTry === null ? '-' : nextTry <= now ? 'now' : formatRelative(nextTry, now),
        truncate(lastError, LAST_ERROR_WIDTH),
      ];
    }),
  );
}

/** "held" when every waiting recipient is held, "active" while a worker is trying one, "deferred" when every one was tried (as `--state` names them). */
function entryState(pending: readonly Recipient[], now: number): string {
  if (pending.length && pending.every((r) => r.state === 'held')) return 'held';
  if (pending.some((r) => r.leasedUntil !== null && r.leasedUntil > now)) return 'active';
  if (pending.some((r) => r.state === 'held')) return 'partly held';
  if (pending.length && pending.every((r) => r.attempts > 0)) return 'deferred';
  return 'queued';
}

/** Totals of the whole queue, not just the rows listed. */
function queueFooter(stats: QueueStats): string {
  const held = stats.held ? ` (${stats.held} held)` : '';
  const duplicates = stats.possibleDuplicates ? `; ${duplicatesNote(stats.possibleDuplicates)}` : '';
  return `${plural(stats.messages, 'message')}, ${plural(stats.recipients, 'recipient')}${held}, ${Math.ceil(stats.bytes / 1024)} KB${duplicates}`;
}

function statsDetails(stats: QueueStats): string {
  return [
    `messages:            ${stats.messages}`,
    `recipients:          ${stats.recipients} waiting (${stats.held} held)`,
    `size:                ${formatBytes(stats.bytes)} (${stats.bytes} bytes)`,
    `possible duplicates: ${stats.possibleDuplicates} (${DUPLICATES_MEANING}; each may have arrived twice)`,
  ].join('\n');
}

function duplicatesNote(n: number): string {
  return `${plural(n, 'possible duplicate')} (${DUPLICATES_MEANING})`;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number (0 for all)');
  return n;
}

function entryDetails(e: QueueEntry, now: number): string {
  return [
    `queue id:    ${e.queueId}`,
    `message-id:  ${e.messageId ?? '-'}`,
    `sender:      ${e.sender || '<>'}`,
    `size:        ${formatBytes(e.size)} (${e.size} bytes)`,
    `received:    ${isoSeconds(e.receivedAt)} (${formatDuration(now - e.receivedAt)} ago)`,
    // RFC 8689: the sender's demand travels with the message (delivery/require-tls.ts).
    ...(e.requireTls ? ['requiretls:  yes (verified TLS to a next hop that advertises REQUIRETLS, or a bounce)'] : []),
  ].join('\n');
}

function recipientTable(recipients: readonly Recipient[], now: number): string {
  return renderTable(
    [
      { header: 'SEQ', align: 'right' },
      { header: 'RECIPIENT' },
      { header: 'STATE' },
      { header: 'ATTEMPTS', align: 'right' },
      { header: 'NEXT TRY' },
      { header: 'LEASED' },
      { header: 'LAST ERROR' },
    ],
    recipients.map((r) => [
      String(r.seq),
      r.recipient,
      r.state,
      String(r.attempts),
      r.state !== 'queued' ? '-' : r.nextAttemptAt <= now ? 'now' : formatRelative(r.nextAttemptAt, now),
      r.leasedUntil !== null && r.leasedUntil > now ? `until ${isoSeconds(r.leasedUntil)}` : '-',
      (r.lastError ?? '').replace(/\s+/g, ' ').trim(),
    ]),
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
