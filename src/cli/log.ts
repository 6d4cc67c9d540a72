// `sealrelay log`: the delivery evidence, one DeliveryRecord per attempt and
// recipient, filtered like the store's RecordFilter. The table is for people;
// --json prints the records unchanged, one per line (NDJSON), for auditors' tools.
import { InvalidArgumentError, type Command } from 'commander';
import { OUTCOMES, type DeliveryRecord, type Outcome } from '../delivery/record.ts';
import type { RecordFilter } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { renderTable, truncate } from './table.ts';
import { isoSeconds, parseSince } from './time.ts';

/** SMTP delivery port: an MX on it is shown without ":port" (RFC 5321 §4.5.4.1). */
const SMTP_PORT = 25;
/** Width of the SMTP response text in the table; --json has it whole. */
const RESPONSE_WIDTH = 40;

interface LogOptions {
  message?: string;
  recipient?: string;
  domain?: string;
  outcome?: Outcome;
  since?: number;
  limit?: number;
  json?: boolean;
}

export function registerLog(program: Command, context: () => CliContext): void {
  program
    .command('log')
    .description('show delivery records: how each recipient was (or was not) delivered, and with what TLS')
    .option('--message <id>', 'queue id or Message-ID')
    .option('--recipient <address>', 'recipient address (case-insensitive)')
    .option('--domain <domain>', 'recipient domain')
    .option('--outcome <outcome>', `one of ${OUTCOMES.join(', ')}`, parseOutcome)
    .option('--since <when>', 'duration back from now (30m, 1h, 2d) or ISO date', parseSinceOption)
    .option('--limit <n>', 'only the newest n records', parsePositiveInt)
    .option('--json', 'one JSON DeliveryRecord per line')
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
      const records = await withStore(config, (store) => store.queryRecords(filter));
      if (opts.json) {
        for (const r of records) console.log(JSON.stringify(r));
      } else if (records.length) {
        console.log(recordTable(records));
      } else {
        console.log('no delivery records match');
      }
    });
}

export function recordTable(records: readonly DeliveryRecord[]): string {
  return renderTable(
    [
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
    records.map((r) => [
      isoSeconds(r.at),
      `${r.queueId}.${r.seq}`,
      String(r.attempt),
      r.recipient,
      r.outcome,
      r.method,
      formatMx(r.mx),
      formatTls(r.tls),
      formatSmtp(r.smtp),
      `${r.decision.rule}/${r.decision.mode}`,
    ]),
  );
}

export function formatMx(mx: DeliveryRecord['mx']): string {
  if (!mx) return '-';
  const host = mx.host.includes(':') ? `[${mx.host}]` : mx.host;
  return mx.port === SMTP_PORT ? host : `${host}:${mx.port}`;
}

/** "TLSv1.3 TLS_AES_256_GCM_SHA384 256b verify=ok", "... verify=fail(<error>)", or "-" for no TLS. */
export function formatTls(tls: DeliveryRecord['tls']): string {
  if (!tls) return '-';
  const verdict = tls.authorized ? 'ok' : `fail(${tls.authorizationError ?? 'unknown'})`;
  return `${tls.protocol} ${tls.cipher} ${tls.bits}b verify=${verdict}`;
}

/** "250 2.0.0 Ok: queued as X", without repeating a code the response text already starts with. */
export function formatSmtp(smtp: DeliveryRecord['smtp']): string {
  let text = smtp.response.replace(/\s+/g, ' ').trim();
  const prefix = [smtp.code, smtp.enhanced].filter((p) => p !== null && p !== undefined).map(String);
  for (const p of prefix) if (text.startsWith(`${p} `) || text === p) text = text.slice(p.length).trimStart();
  return truncate([...prefix, text].filter(Boolean).join(' '), RESPONSE_WIDTH);
}

function parseOutcome(value: string): Outcome {
  if (!(OUTCOMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${OUTCOMES.join(', ')}.`);
  return value as Outcome;
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
