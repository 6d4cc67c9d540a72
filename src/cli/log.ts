// `sealrelay log`: the delivery evidence, one DeliveryRecord per attempt and
// recipient, and between them the operators' actions on the queue (held,
// released, flushed, deleted, by whom) and the portal's events (viewed, code
// sent, verified, opened, recalled, … with IP and user agent), filtered like the
// store's RecordFilter. The table is for people, and fits a 120-column terminal:
// when, which message and recipient, the outcome, how it travelled (method, TLS
// version and whether the certificate was verified) and the server's answer, long
// values cut with an ellipsis; --wide adds the MX, the cipher and the rule/mode and
// cuts nothing. --json prints the records
// unchanged, one per line (NDJSON), for auditors' tools: an operator's record has
// "kind": "operator", a portal event "kind": "portal".
// --follow keeps printing records as the relay writes them, like `tail -f`: it
// polls the store (a reader never blocks the relay's writes in WAL mode) with a
// cursor in write order, so a late-finishing attempt is printed once, never lost.
// Each read is in the audit trail (who read which records), before it is shown.
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { OUTCOMES, type DaneFacts, type DeliveryRecord, type Outcome } from '../delivery/record.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { auditCommand, describeFilter } from './operator.ts';
import {
  isOperatorRecord,
  isPortalRecord,
  OPERATOR_OUTCOMES,
  PORTAL_OUTCOMES,
  type LogRecord,
  type OperatorOutcome,
  type PortalOutcome,
  type PortalRecord,
  type RecordFilter,
  type Store,
} from '../store/store.ts';
import { columnWidths, fitCells, fitWidths, renderTable, truncate, type Column } from './table.ts';
import { isoSeconds, parseSince } from './time.ts';

/** SMTP delivery port: an MX on it is shown without ":port" (RFC 5321 §4.5.4.1). */
const SMTP_PORT = 25;
/** The table's width without --wide: a 120-column terminal. */
const TABLE_WIDTH = 120;
/** With --follow and no --limit, the newest this many records are shown first (tail's default). */
const FOLLOW_BACKLOG = 10;
/** How often --follow asks the store for new records, in ms. */
const FOLLOW_POLL_MS = 500;
/** Width of a portal visitor's user agent in the table; --wide and --json have it whole. */
const USER_AGENT_WIDTH = 30;
/** What --outcome accepts: an attempt's outcome, what an operator action made of a recipient, or a portal event. */
type LogOutcome = Outcome | OperatorOutcome | PortalOutcome;
const LOG_OUTCOMES: readonly LogOutcome[] = [...OUTCOMES, ...Object.values(OPERATOR_OUTCOMES), ...PORTAL_OUTCOMES];

interface LogOptions {
  message?: string;
  recipient?: string;
  domain?: string;
  outcome?: LogOutcome;
  since?: number;
  limit?: number;
  json?: boolean;
  wide?: boolean;
  follow?: boolean;
}

export function registerLog(program: Command, context: () => CliContext): void {
  program
    .command('log')
    .description('show delivery records: how each recipient was (or was not) delivered, and with what TLS; operator actions on the queue; portal events')
    .option('--message <id>', 'queue id or Message-ID')
    .option('--recipient <address>', 'recipient address (case-insensitive)')
    .option('--domain <domain>', 'recipient domain')
    .option('--outcome <outcome>', `one of ${LOG_OUTCOMES.join(', ')}`, parseOutcome)
    .option('--since <when>', 'duration back from now (30m, 1h, 2d) or ISO date', parseSinceOption)
    .option('--limit <n>', 'only the newest n records', parsePositiveInt)
    .option('--wide', `every column (MX, cipher, rule/mode), nothing cut; without it the table fits ${TABLE_WIDTH} columns`)
    .option('--json', 'one JSON record per line (DeliveryRecords; operator actions have "kind": "operator", portal events "kind": "portal")')
    .option('-f, --follow', `keep printing new records as they are written (Ctrl-C ends); starts with the newest ${FOLLOW_BACKLOG} unless --limit`)
    .action(async (opts: LogOptions) => {
      const config = readConfig(context());
      const filter: RecordFilter = {
        message: opts.message,
        recipient: opts.recipient,
        domain: opts.domain,
        outcome: opts.outcome,
        since: opts.since,
        limit: opts.limit,
      };
      if (opts.follow) {
        return withStore(config, async (store) => {
          await auditCommand(store, 'log.read', describeFilter(filter), 'follow');
          return follow(store, filter, opts.json === true, tableFor(opts.wide === true));
        });
      }
      const records = await withStore(config, async (store) => {
        const found = await store.queryLog(filter);
        await auditCommand(store, 'log.read', describeFilter(filter), `${found.length} records`);
        return found;
      });
      if (opts.json) {
        for (const r of records) console.log(JSON.stringify(r));
      } else if (records.length) {
        console.log(recordTable(records, opts.wide === true));
      } else {
        console.log('no delivery records match');
      }
    });
}

/** Prints what is there (the newest FOLLOW_BACKLOG by default), then what is written, until SIGINT/SIGTERM or a closed pipe. */
async function follow(store: Store, filter: RecordFilter, json: boolean, table: Table): Promise<void> {
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // `sealrelay log -f | head`: the reader went away, which ends us quietly.
  process.stdout.on('error', stop);
  let widths: number[] = [];
  const print = (records: readonly LogRecord[], header: boolean) => {
    if (json) {
      for (const r of records) process.stdout.write(`${JSON.stringify(r)}\n`);
      return;
    }
    const rows = records.map(table.row);
    // Columns grow as wider rows arrive (up to the fitted width), so the rows stay aligned.
    widths = columnWidths(table.columns, rows, widths);
    const fitted = table.width === null ? widths : fitWidths(table.columns, widths, table.width);
    if (header || rows.length) process.stdout.write(`${renderTable(table.columns, fitCells(rows, fitted), { header, widths: fitted })}\n`);
  };
  let { records, cursor } = await store.logAfter(null, { ...filter, limit: filter.limit ?? FOLLOW_BACKLOG });
  print(records, true);
  while (!stopped) {
    await sleep(FOLLOW_POLL_MS);
    if (stopped) break;
    ({ records, cursor } = await store.logAfter(cursor, { ...filter, limit: undefined }));
    print(records, false);
  }
}

/** One way to print records: its columns, a row per record, and the width it must fit (null: none). */
interface Table {
  readonly columns: readonly Column[];
  readonly row: (r: LogRecord) => string[];
  readonly width: number | null;
}

// Without --wide: what a reader of a delivery log needs. Recipient and the SMTP reply
// give way first (min), the rest is short (times, ids, enum values).
const FITTED: Table = {
  columns: [
    { header: 'TIME' },
    { header: 'ID' },
    { header: 'ATT', align: 'right' },
    { header: 'RECIPIENT', min: 16 },
    { header: 'OUTCOME' },
    { header: 'METHOD' },
    { header: 'TLS' },
    { header: 'SMTP', min: 16 },
  ],
  row: (r) => {
    const [time, id, attempt, recipient, outcome, method, , tls, smtp] = wideRow(r, false);
    return [time!, id!, attempt!, recipient!, outcome!, method!, isDeliveryRecord(r) ? shortTls(r.tls) : tls!, smtp!];
  },
  width: TABLE_WIDTH,
};

const WIDE: Table = {
  columns: [
    { header: 'TIME' },
    { header: 'ID' },
    { header: 'ATT', align: 'right' },
    { header: 'RECIPIENT' },
    { header: 'OUTCOME' },
    { header: 'METHOD' },
    { header: 'MX' },
    { header: 'TLS' },
    { header: 'SMTP' },
    { header: 'RULE/MODE' },
  ],
  row: (r) => wideRow(r, true),
  width: null,
};

const tableFor = (wide: boolean): Table => (wide ? WIDE : FITTED);

const isDeliveryRecord = (r: LogRecord): r is DeliveryRecord => !isOperatorRecord(r) && !isPortalRecord(r);

/** Every column, each cell on one line of printable characters (`whole`: the user agent not shortened). */
function wideRow(r: LogRecord, whole: boolean): string[] {
  return rawRow(r, whole).map(printable);
}

function rawRow(r: LogRecord, whole: boolean): string[] {
  // Not an attempt: no attempt number, method, MX, TLS or rule; the reason column says who did what.
  if (isOperatorRecord(r)) return [isoSeconds(r.at), `${r.queueId}.${r.seq}`, '-', r.recipient, r.outcome, '-', '-', '-', `queue ${r.action} by ${r.operator}`, '-'];
  if (isPortalRecord(r)) return [isoSeconds(r.at), `${r.queueId}.${r.seq}`, '-', r.recipient, r.outcome, 'portal', '-', '-', portalDetail(r, whole), '-'];
  return [
    isoSeconds(r.at),
    `${r.queueId}.${r.seq}`,
    String(r.attempt),
    r.recipient,
    r.outcome,
    r.method,
    formatMx(r.mx),
    formatTls(r.tls, r.dane ?? null),
    formatSmtp(r.smtp),
    `${r.decision.rule}/${r.decision.mode}`,
  ];
}

/** `wide`: every column, nothing cut; else the columns that fit TABLE_WIDTH, long values cut with an ellipsis. */
export function recordTable(records: readonly LogRecord[], wide = false): string {
  const table = tableFor(wide);
  const rows = records.map(table.row);
  const natural = columnWidths(table.columns, rows);
  const widths = table.width === null ? natural : fitWidths(table.columns, natural, table.width);
  return renderTable(table.columns, fitCells(rows, widths), { widths });
}

/**
 * Whitespace runs become one space and other control characters U+FFFD: a reply from
 * a remote server (or an address) can neither break the table's lines nor send
 * escape sequences to the operator's terminal.
 */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd');
}

/** "TLSv1.3 ok", "TLSv1.2 fail" (the certificate not verified; --wide says why), or "-" for no TLS. */
function shortTls(tls: DeliveryRecord['tls']): string {
  return tls ? `${tls.protocol} ${tls.authorized ? 'ok' : 'fail'}` : '-';
}

/** "item <id>: by alice" or "item <id>: 203.0.113.7 Mozilla/5.0 (…) possibly automated" — what the event was and who caused it. */
function portalDetail(r: PortalRecord, whole: boolean): string {
  const agent = r.userAgent && (whole ? r.userAgent : truncate(r.userAgent, USER_AGENT_WIDTH));
  const who = r.operator ? `by ${r.operator}` : [r.ip, agent].filter(Boolean).join(' ');
  return [`item ${r.itemId}:`, who, r.detail].filter(Boolean).join(' ').replace(/:$/, '');
}

function formatMx(mx: DeliveryRecord['mx']): string {
  if (!mx) return '-';
  const host = mx.host.includes(':') ? `[${mx.host}]` : mx.host;
  return mx.port === SMTP_PORT ? host : `${host}:${mx.port}`;
}

/**
 * "TLSv1.3 TLS_AES_256_GCM_SHA384 256b verify=ok", "... verify=fail(<error>)", or "-" for no TLS;
 * then the DANE verdict when a TLSA lookup was made: "dane=matched(3 1 1 ab12…)", "dane=bogus".
 */
function formatTls(tls: DeliveryRecord['tls'], dane: DaneFacts | null): string {
  const verdict = tls ? (tls.authorized ? 'ok' : `fail(${tls.authorizationError ?? 'unknown'})`) : null;
  const text = tls ? `${tls.protocol} ${tls.cipher} ${tls.bits}b verify=${verdict}` : '-';
  if (!dane) return text;
  return `${text} dane=${dane.status}${dane.matched ? `(${dane.matched})` : ''}`;
}

/**
 * "250 2.0.0 Ok: queued as X", without repeating a code the response text already starts
 * with; the lines of a multi-line reply ("550-5.7.1 …") joined, the code said once.
 */
function formatSmtp(smtp: DeliveryRecord['smtp']): string {
  const prefix = [smtp.code, smtp.enhanced].filter((p) => p !== null && p !== undefined).map(String);
  const text = smtp.response
    .split(/\r?\n/)
    .map((line) => {
      let rest = line.replace(/\s+/g, ' ').trim();
      for (const p of prefix) if (rest.startsWith(`${p} `) || rest.startsWith(`${p}-`) || rest === p) rest = rest.slice(p.length + 1).trimStart();
      return rest;
    })
    .filter(Boolean)
    .join(' ');
  return [...prefix, text].filter(Boolean).join(' ');
}

function parseOutcome(value: string): LogOutcome {
  if (!(LOG_OUTCOMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${LOG_OUTCOMES.join(', ')}.`);
  return value as LogOutcome;
}

function parseSinceOption(value: string): number {
  try {
    return parseSince(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}
