// The SQLite store's queue selection (QueueSelection in store.ts): which messages and
// waiting recipients an operator's filter picks, as SQL, so that a 100,000-message
// queue is filtered by SQLite and never loaded to be filtered here. Every value is a
// bound parameter; an id prefix is compared with substr(), never LIKE, so `%` and `_`
// are characters like any other. The store runs the changes in its own transactions
// (SqliteStore.actOnQueue); this module only says what is selected and how each
// action changes one message's selected recipients.
//
// Reads use the indexes the queue already has: the queue id primary key (id order for
// batches, a range for a prefix), messages_received_at (list order) and the
// recipients primary key (queue_id, seq) for each message's recipients. A domain or
// sender filter scans the messages in that order; an index on recipients (domain)
// would make a rare domain cheaper and needs a migration. The state is written
// `+r.state` so that SQLite never looks a message's recipients up through
// recipients_due (state, next_attempt_at): that walks every waiting recipient of the
// queue for each message, where the primary key finds its few directly.
import type Database from 'better-sqlite3';
import type { OperatorAction, QueueCount, QueueSelection, QueueState } from '../store.ts';

/** Above every character a queue id prefix can be followed by: the top of the UTF-8 range. */
const AFTER_ANY_CHAR = '\u{10FFFF}';

/** The recipient condition of each state (store.ts QUEUE_STATES), on alias r. */
const STATE_SQL: Readonly<Record<QueueState, string>> = {
  queued: `(+r.state = 'queued' AND r.lease_until <= @now AND r.attempts = 0)`,
  deferred: `(+r.state = 'queued' AND r.lease_until <= @now AND r.attempts > 0)`,
  active: `(+r.state = 'queued' AND r.lease_until > @now)`,
  held: `(+r.state = 'held')`,
};

/** The recipients each action changes, on alias r: the same conditions as the single-message statements. */
const CHANGED_BY_SQL: Readonly<Record<OperatorAction, string>> = {
  hold: `+r.state = 'queued'`,
  release: `+r.state = 'held'`,
  flush: `+r.state = 'queued' AND r.next_attempt_at > @now`,
  delete: `+r.state IN ('queued', 'held')`,
};

/** What an action's statement returns of each recipient it changed, for its OperatorRecord. */
const ACTED = 'RETURNING queue_id, seq, recipient, domain, attempts';

export interface ActedRecipient {
  queue_id: string;
  seq: number;
  recipient: string;
  domain: string;
  attempts: number;
}

export interface SelectedMessage {
  queue_id: string;
  sender: string;
  message_id: string | null;
  size: number;
  received_at: number;
}

/** A selection as SQL: conditions on messages (alias m) and on recipients (alias r), and their parameters. */
interface SelectionSql {
  readonly messages: string;
  readonly recipients: string;
  readonly params: Record<string, unknown>;
}

export class QueueSelectionTable {
  constructor(private readonly db: Database.Database) {}

  /** The selected messages, oldest first (at most `limit`; -1: all). */
  list(select: QueueSelection, limit: number, now: number): SelectedMessage[] {
    const q = toSql(select, now);
    return this.db
      .prepare(
        `SELECT m.queue_id, m.sender, m.message_id, m.size, m.received_at FROM messages m
         WHERE ${q.messages} AND EXISTS (SELECT 1 FROM recipients r WHERE r.queue_id = m.queue_id AND ${q.recipients})
         ORDER BY m.received_at, m.queue_id LIMIT @limit`,
      )
      .all({ ...q.params, limit }) as SelectedMessage[];
  }

  count(select: QueueSelection, now: number): QueueCount {
    const q = toSql(select, now);
    // Joined from messages so that the message conditions use its indexes; one row per selected recipient.
    return this.db
      .prepare(
        `SELECT count(DISTINCT m.queue_id) AS messages, count(*) AS recipients
         FROM messages m JOIN recipients r ON r.queue_id = m.queue_id
         WHERE ${q.messages} AND ${q.recipients}`,
      )
      .get(q.params) as QueueCount;
  }

  /** The next `limit` selected queue ids after `afterId`, in id order: one batch of a bulk action. */
  nextBatch(select: QueueSelection, afterId: string, limit: number, now: number): string[] {
    const q = toSql(select, now);
    return this.db
      .prepare(
        `SELECT m.queue_id FROM messages m
         WHERE m.queue_id > @afterId AND ${q.messages}
           AND EXISTS (SELECT 1 FROM recipients r WHERE r.queue_id = m.queue_id AND ${q.recipients})
         ORDER BY m.queue_id LIMIT @limit`,
      )
      .pluck()
      .all({ ...q.params, afterId, limit }) as string[];
  }

  /**
   * Prepares `action` on the selected recipients of one message (run inside the
   * store's write transaction). Returns the recipients changed; a delete removes the
   * message too once nothing of it is left waiting.
   */
  changer(action: OperatorAction, select: QueueSelection, now: number): (queueId: string) => ActedRecipient[] {
    const q = toSql({ ...select, changedBy: action }, now);
    const where = `queue_id = @queueId AND rowid IN (SELECT r.rowid FROM recipients r WHERE r.queue_id = @queueId AND ${q.recipients})`;
    const change = this.db.prepare(
      {
        hold: `UPDATE recipients SET state = 'held' WHERE ${where} ${ACTED}`,
        release: `UPDATE recipients SET state = 'queued', next_attempt_at = @now WHERE ${where} ${ACTED}`,
        flush: `UPDATE recipients SET next_attempt_at = @now WHERE ${where} ${ACTED}`,
        delete: `DELETE FROM recipients WHERE ${where} ${ACTED}`,
      }[action],
    );
    const dropIfDone = this.db.prepare(
      `DELETE FROM messages WHERE queue_id = @queueId AND NOT EXISTS (SELECT 1 FROM recipients WHERE queue_id = @queueId AND state IN ('queued', 'held'))`,
    );
    // The message conditions were checked when the batch was selected, in this same transaction.
    return (queueId) => {
      const acted = change.all({ ...q.params, queueId }) as ActedRecipient[];
      if (action === 'delete' && acted.length) dropIfDone.run({ queueId });
      return acted;
    };
  }
}

/** A selection as SQL; throws a TypeError for a value that cannot select anything sensibly. */
function toSql(select: QueueSelection, now: number): SelectionSql {
  const messages: string[] = ['1'];
  const recipients: string[] = [`+r.state IN ('queued', 'held')`];
  const params: Record<string, unknown> = { now };
  if (select.queueId !== undefined) {
    messages.push('m.queue_id = @queueIdExact');
    params.queueIdExact = select.queueId;
  }
  if (select.idPrefix !== undefined) {
    if (!select.idPrefix) throw new TypeError('a queue id prefix must not be empty');
    // The range lets SQLite walk the primary key; substr() makes the match exact.
    messages.push('m.queue_id >= @idPrefix AND m.queue_id < @idPrefixEnd AND substr(m.queue_id, 1, length(@idPrefix)) = @idPrefix');
    params.idPrefix = select.idPrefix;
    params.idPrefixEnd = select.idPrefix + AFTER_ANY_CHAR;
  }
  if (select.sender !== undefined) {
    if ('address' in select.sender) {
      messages.push('lower(m.sender) = lower(@senderAddress)');
      params.senderAddress = select.sender.address;
    } else {
      if (!select.sender.domain) throw new TypeError('a sender domain must not be empty');
      messages.push('substr(lower(m.sender), -length(@senderSuffix)) = lower(@senderSuffix)');
      params.senderSuffix = `@${select.sender.domain}`;
    }
  }
  if (select.receivedBefore !== undefined) {
    messages.push('m.received_at < @receivedBefore');
    params.receivedBefore = select.receivedBefore;
  }
  if (select.receivedAfter !== undefined) {
    messages.push('m.received_at > @receivedAfter');
    params.receivedAfter = select.receivedAfter;
  }
  if (select.states !== undefined) {
    if (!select.states.length) throw new TypeError('a state filter must name at least one state');
    recipients.push(`(${select.states.map((s) => STATE_SQL[s] ?? unknownState(s)).join(' OR ')})`);
  }
  if (select.domain !== undefined) {
    if (!select.domain) throw new TypeError('a recipient domain must not be empty');
    recipients.push('r.domain = @domain');
    // As enqueue stores it (domainOf).
    params.domain = select.domain.toLowerCase();
  }
  if (select.changedBy !== undefined) recipients.push(CHANGED_BY_SQL[select.changedBy] ?? unknownAction(select.changedBy));
  return { messages: messages.join(' AND '), recipients: recipients.join(' AND '), params };
}

function unknownState(state: string): never {
  throw new TypeError(`unknown queue state "${state}"`);
}

function unknownAction(action: string): never {
  throw new TypeError(`unknown operator action "${action}"`);
}
