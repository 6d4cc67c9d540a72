// `sealrelay queue`: what is waiting, like postqueue -p, and the operator's
// actions on it, like postsuper: flush (retry now), hold, release, delete.
// Every action goes through the Store, so a running relay sees it at its next
// poll; nothing here talks to the relay process itself. `queue stats` gives the
// totals, among them the running count of possible duplicates (DESIGN: after a crash
// a message may be delivered twice, and that is counted).
import { InvalidArgumentError, type Command } from 'commander';
import type { QueueEntry, QueueStats, Store } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { recordTable } from './log.ts';
import { renderTable, truncate } from './table.ts';
import { formatDuration, formatRelative, isoSeconds } from './time.ts';

/** Messages `queue list` shows unless told otherwise: enough to read, bounded for a 100,000-message queue. */
const DEFAULT_LIST_LIMIT = 1000;

/** What a possible duplicate is, wherever the count is shown. */
const DUPLICATES_MEANING = 'recipients retried after a crash cut their attempt off';

/** Width of "last error" in the list; `queue show` prints it whole. */
const LAST_ERROR_WIDTH = 50;

type Recipient = QueueEntry['recipients'][number];

export function registerQueueCommands(program: Command, context: () => CliContext): void {
  const queue = program.command('queue').description('list and act on queued messages (default: list)');

  queue
    .command('list', { isDefault: true })
    .description('list queued messages (like postqueue -p)')
    .option('--json', 'one JSON queue entry per line')
    .option('--limit <n>', `the oldest n messages (0: all; default ${DEFAULT_LIST_LIMIT})`, parseLimit, DEFAULT_LIST_LIMIT)
    .action(async (opts: { json?: boolean; limit: number }) => {
      const { entries, stats } = await withStore(readConfig(context()), async (store) => ({
        entries: await store.listQueue(opts.limit ? { limit: opts.limit } : {}),
        stats: await store.queueStats(),
      }));
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
    });

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
        const records = await store.queryRecords({ message: entry.queueId });
        if (opts.json) {
          console.log(JSON.stringify({ entry, records }));
          return;
        }
        const now = Date.now();
        console.log(entryDetails(entry, now));
        console.log();
        console.log(recipientTable(entry.recipients, now));
        console.log();
        console.log(records.length ? `delivery records:\n${recordTable(records)}` : 'delivery records: none yet');
      });
    });

  queue
    .command('flush [id]')
    .description('make waiting recipients due now (all messages when no id)')
    .action(async (id: string | undefined) => {
      await withStore(readConfig(context()), async (store) => {
        if (id !== undefined) await requireEntry(store, id);
        const n = await store.flush(id);
        console.log(`flushed ${plural(n, 'recipient')}${id ? ` of ${id}` : ''}`);
      });
    });

  queue
    .command('hold <id>')
    .description('keep a message from being tried until it is released')
    .action(async (id: string) => {
      await withStore(readConfig(context()), async (store) => {
        await requireEntry(store, id);
        console.log(`held ${plural(await store.hold(id), 'recipient')} of ${id}`);
      });
    });

  queue
    .command('release <id>')
    .description('release a held message; it is due at once')
    .action(async (id: string) => {
      await withStore(readConfig(context()), async (store) => {
        await requireEntry(store, id);
        console.log(`released ${plural(await store.releaseHold(id), 'recipient')} of ${id}`);
      });
    });

  queue
    .command('delete <id>')
    .description('remove a message from the queue without delivering or bouncing it (like postsuper -d)')
    .action(async (id: string) => {
      await withStore(readConfig(context()), async (store) => {
        await requireEntry(store, id);
        const n = await store.deleteEntry(id);
        console.log(`deleted ${id}: ${plural(n, 'recipient')} removed`);
      });
    });
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

/** "held" when every waiting recipient is held, "active" while a worker is trying one. */
function entryState(pending: readonly Recipient[], now: number): string {
  if (pending.length && pending.every((r) => r.state === 'held')) return 'held';
  if (pending.some((r) => r.leasedUntil !== null && r.leasedUntil > now)) return 'active';
  if (pending.some((r) => r.state === 'held')) return 'partly held';
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
