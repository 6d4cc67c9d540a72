// Operator actions on many messages at once, like Postfix's `postsuper -d ALL deferred`,
// `postsuper -h` and `postqueue -s example.com`: `sealrelay queue delete|hold|release|flush
// <target> [filters]`, and `queue list` with the same filters.
//
// Policy: never act on more than was asked. A target is required (a queue id, a prefix
// that names exactly one message, or ALL); an ambiguous prefix is refused with its
// candidates; messages that arrive while the command runs are left alone. Only the
// recipients the filters select are changed: `delete ALL --domain example.com` removes
// the recipients at example.com and leaves the others of the same messages queued.
// `--dry-run` shows what would change and changes nothing.
//
// The store selects in SQL and acts in batches of BATCH_MESSAGES messages, one short
// durable transaction each, leaving each message the same trace as the single-message
// commands: an operator record per recipient and an audit entry. Between batches the
// command steps back for as long as the batch held the write lock, so that a running
// relay's writes (which wait up to busy_timeout for it) get their turn; the relay sees
// the change at its next poll.
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Config } from '../config/schema.ts';
import { fitField } from '../events/audit/entry.ts';
import { createLogger } from '../log.ts';
import type { OperatorAction, QueueCount, QueueEntry, QueueSelection, QueueStats, Store } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { auditCommand, currentOperator } from './operator.ts';
import { ACTION_EVENTS, ACTION_PAST, AUDIT_ACTIONS } from './queue-actions.ts';
import { ALL, checkIdTarget, describeSelection, hasFilters, selectionOf, type SelectionOptions } from './queue-select.ts';

/** Messages changed per transaction: a few milliseconds of the write lock each. */
const BATCH_MESSAGES = 200;
/** Candidates an ambiguous prefix names. */
const MAX_CANDIDATES = 10;

/** How `queue` shows entries and totals (queue.ts owns the layout). */
export interface QueueView {
  table(entries: readonly QueueEntry[], now: number): string;
  footer(stats: QueueStats): string;
}

export interface ActionOptions extends SelectionOptions {
  readonly dryRun?: boolean;
}

/**
 * `queue <action> [target] [filters]`. A bare queue id (or a prefix naming one
 * message) without filters, and `flush` alone, run `single` — the single-message
 * command as it always was; everything else is a selection acted on in batches.
 */
export async function runQueueAction(
  ctx: CliContext,
  action: OperatorAction,
  target: string | undefined,
  opts: ActionOptions,
  view: QueueView,
  single: (queueId: string | null) => Promise<void>,
): Promise<void> {
  const startedAt = Date.now();
  // Checked before the store is opened: a typo never reaches the queue.
  const selection = selectionOf(opts, startedAt, action);
  if (target === undefined && action !== 'flush') {
    throw new CliError(EXIT.USAGE, `say which messages: a queue id, a unique prefix of one, or ${ALL} with filters (e.g. sealrelay queue ${action} ${ALL} --state deferred)`);
  }
  // `queue flush` alone: the whole queue, as it always was (postqueue -f).
  if (target === undefined && action === 'flush' && !hasFilters(opts) && !opts.dryRun) return single(null);
  const idTarget = target === undefined || target === ALL ? null : checkIdTarget(target);
  const config = readConfig(ctx);
  const queueId = idTarget === null ? null : await withStore(config, (store) => resolveId(store, idTarget));
  if (queueId !== null && !hasFilters(opts) && !opts.dryRun) return single(queueId);

  const named = queueId ?? ALL;
  // Messages received from now on are not part of what was asked.
  const select: QueueSelection = { ...selection, ...(queueId !== null ? { queueId } : {}), receivedBefore: Math.min(selection.receivedBefore ?? Infinity, startedAt + 1) };
  const described = describeSelection(named, opts);
  if (opts.dryRun) return dryRun(config, action, select, described, view);
  const done = await actInBatches(config, action, select, described);
  console.log(`${ACTION_PAST[action]} ${plural(done.recipients, 'recipient')} of ${plural(done.messages, 'message')}`);
}

/** `queue list [target] [filters]`: the selected messages, oldest first, and how many there are. */
export async function listSelected(ctx: CliContext, target: string | undefined, opts: SelectionOptions & { json?: boolean; limit: number }, view: QueueView): Promise<void> {
  const selection = selectionOf(opts, Date.now(), null);
  const prefix = target === undefined || target === ALL ? null : checkIdTarget(target);
  const select: QueueSelection = { ...selection, ...(prefix !== null ? { idPrefix: prefix } : {}) };
  const described = describeSelection(target ?? ALL, opts);
  const { entries, count, stats } = await withStore(readConfig(ctx), async (store) => {
    const listed = { entries: await store.listQueue({ select, ...(opts.limit ? { limit: opts.limit } : {}) }), count: await store.countQueue(select), stats: await store.queueStats() };
    await auditCommand(store, 'queue.read', `list ${described}`, `${listed.entries.length} messages`);
    return listed;
  });
  if (opts.json) {
    for (const e of entries) console.log(JSON.stringify(e));
    return;
  }
  if (!entries.length) {
    console.log(`no message in the queue matches ${described}`);
    return;
  }
  console.log(view.table(entries, Date.now()));
  console.log();
  if (entries.length < count.messages) console.log(`(the oldest ${entries.length} of ${count.messages} messages; --limit 0 lists all)`);
  console.log(`selected: ${countText(count)}`);
  console.log(`queue: ${view.footer(stats)}`);
}

/**
 * The one message a target names: the queue id itself, or the only message whose id
 * starts with it. No match is a failure (1), as an unknown id always was; several
 * are a usage error (64) that lists them: the operator types more of the id.
 */
async function resolveId(store: Store, target: string): Promise<string> {
  if (await store.getQueueEntry(target)) return target;
  const candidates = await store.listQueue({ select: { idPrefix: target }, limit: MAX_CANDIDATES + 1 });
  if (candidates.length === 1) return candidates[0]!.queueId;
  if (!candidates.length) {
    throw new CliError(EXIT.FAILURE, `no message ${target} in the queue, nor one whose id starts with it (finished messages are in \`sealrelay log --message <id>\`)`);
  }
  const { messages } = await store.countQueue({ idPrefix: target });
  const shown = candidates.slice(0, MAX_CANDIDATES).map((e) => e.queueId);
  const more = messages > shown.length ? ` and ${messages - shown.length} more` : '';
  throw new CliError(EXIT.USAGE, `${target} is the start of ${messages} queue ids: ${shown.join(', ')}${more}; give more of the id`);
}

async function dryRun(config: Config, action: OperatorAction, select: QueueSelection, described: string, view: QueueView): Promise<void> {
  const changed: QueueSelection = { ...select, changedBy: action };
  const { entries, count } = await withStore(config, async (store) => {
    const shown = { entries: await store.listQueue({ select: changed, limit: BATCH_MESSAGES * 5 }), count: await store.countQueue(changed) };
    await auditCommand(store, 'queue.read', `${action} --dry-run ${described}`, `${shown.count.messages} messages`);
    return shown;
  });
  if (entries.length) {
    console.log(view.table(entries, Date.now()));
    console.log();
    if (entries.length < count.messages) console.log(`(the oldest ${entries.length} of ${count.messages} messages)`);
  }
  console.log(`would have ${ACTION_PAST[action]} ${plural(count.recipients, 'recipient')} of ${plural(count.messages, 'message')} (dry run: nothing changed)`);
}

/**
 * Acts batch after batch until the selection is exhausted. Each batch commits on its
 * own: an interrupted command leaves every batch before it done and recorded, and
 * running it again goes on with what is left.
 */
async function actInBatches(config: Config, action: OperatorAction, select: QueueSelection, described: string): Promise<QueueCount> {
  const operator = currentOperator();
  const audit = { actor: { kind: 'os-user' as const, name: fitField(operator) }, action: AUDIT_ACTIONS[action] };
  const total = await withStore(config, async (store) => {
    let messages = 0;
    let recipients = 0;
    let afterId: string | undefined;
    for (;;) {
      const began = performance.now();
      const batch = await store.actOnQueue(action, select, { operator, limit: BATCH_MESSAGES, audit, ...(afterId !== undefined ? { afterId } : {}) });
      messages += batch.messages;
      recipients += batch.recipients;
      if (batch.resumeAfter === null) break;
      afterId = batch.resumeAfter;
      await sleep(Math.ceil(performance.now() - began));
    }
    // The command itself, beside the entry of each message: what was asked and how much it changed.
    await auditCommand(store, AUDIT_ACTIONS[action], described, `${messages} messages, ${recipients} recipients`);
    return { messages, recipients };
  });
  const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
  logger.info(
    { event: ACTION_EVENTS[action], selection: described, messages: total.messages, recipients: total.recipients, operator },
    `queue ${action} ${described} by ${operator}: ${plural(total.recipients, 'recipient')} of ${plural(total.messages, 'message')}`,
  );
  return total;
}

function countText(count: QueueCount): string {
  return `${plural(count.messages, 'message')}, ${plural(count.recipients, 'waiting recipient')}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
