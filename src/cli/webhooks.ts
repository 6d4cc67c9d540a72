// `sealrelay webhooks`: how each endpoint's outbox stands (status), sending events
// again (replay), and a new signing secret (keygen). Status and replay work on the
// store, also while the relay runs: a replay is sent by the relay at its next turn.
import { InvalidArgumentError, type Command } from 'commander';
import { pino } from 'pino';
import type { Config } from '../config/schema.ts';
import { webhookMetrics } from '../events/webhooks/metrics.ts';
import type { WebhookDeliveryInfo } from '../events/webhooks/outbox.ts';
import { replayWebhooks } from '../events/webhooks/replay.ts';
import { generateWebhookSecret } from '../events/webhooks/signing.ts';
import { createLogger } from '../log.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { auditCommand } from './operator.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable, truncate } from './table.ts';
import { formatDuration, formatRelative, isoSeconds, parseSince } from './time.ts';

/** As config/webhooks.ts names endpoints. */
const ENDPOINT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Failing and failed deliveries `status` lists under the totals. */
const TROUBLE_ROWS = 20;

export function registerWebhookCommands(program: Command, context: () => CliContext): void {
  const webhooks = program.command('webhooks').description('signed webhooks: outbox status, replay, secrets');

  webhooks
    .command('status')
    .description('per endpoint: backlog, failures, last delivery and error; then the deliveries failing or given up')
    .option('--endpoint <name>', 'only this endpoint')
    .option('--json', 'one JSON object: endpoints and failing deliveries')
    .action(async (opts: { endpoint?: string; json?: boolean }) => {
      const config = readConfig(context());
      // A removed endpoint's deliveries are still shown: any well-formed name may be asked for.
      if (opts.endpoint !== undefined && !ENDPOINT_NAME.test(opts.endpoint)) throw new CliError(EXIT.USAGE, `--endpoint: ${JSON.stringify(truncate(opts.endpoint, 64))} is not an endpoint name`);
      const now = Date.now();
      const { endpoints, troubled, statuses } = await withStore(config, async (store) => ({
        endpoints: await webhookMetrics(store, config.webhooks, now),
        statuses: await store.webhookStatus(),
        troubled: await store.troubledWebhookDeliveries(opts.endpoint ?? null, TROUBLE_ROWS),
      }));
      const shown = endpoints.filter((e) => opts.endpoint === undefined || e.endpoint === opts.endpoint);
      if (opts.endpoint !== undefined && !shown.length) throw new CliError(EXIT.USAGE, `--endpoint: no webhook endpoint ${JSON.stringify(opts.endpoint)} in the config or the store`);
      const last = new Map(statuses.map((s) => [s.endpoint, s]));
      if (opts.json) {
        console.log(JSON.stringify({ endpoints: shown.map((e) => ({ ...e, ...pickLast(last.get(e.endpoint)) })), failing: troubled }));
        return;
      }
      if (!shown.length) {
        console.log('no webhook endpoints configured (webhooks.endpoints)');
        return;
      }
      console.log(
        renderTable(
          [{ header: 'ENDPOINT' }, { header: 'BACKLOG', align: 'right' }, { header: 'OLDEST', align: 'right' }, { header: 'FAILED', align: 'right' }, { header: 'DELIVERED', align: 'right' }, { header: 'LAST OK' }, { header: 'LAST ERROR' }],
          shown.map((e) => {
            const s = last.get(e.endpoint);
            return [
              e.configured ? e.endpoint : `${e.endpoint} (removed)`,
              String(e.backlog),
              e.backlog ? formatDuration(e.oldestPendingSeconds * 1000) : '-',
              String(e.failed),
              String(e.deliveredTotal),
              s?.lastDeliveredAt ? formatRelative(s.lastDeliveredAt, now) : '-',
              s?.lastError && s.lastFailureAt ? truncate(`${s.lastError} (${formatRelative(s.lastFailureAt, now)})`, 50) : '-',
            ];
          }),
        ),
      );
      if (troubled.length) {
        console.log();
        console.log(troubleTable(troubled, now));
      }
    });

  webhooks
    .command('replay')
    .description('send again the events written since a time (delivered, failed, and those never sent to the endpoint); the relay sends them at its next turn')
    .requiredOption('--since <when>', 'duration back from now (30m, 1h, 2d) or ISO date', parseSinceOption)
    .option('--endpoint <name>', 'only this endpoint (default: every configured one)')
    .action(async (opts: { since: number; endpoint?: string }) => {
      const config = readConfig(context());
      const targets = opts.endpoint === undefined ? config.webhooks.endpoints : [configuredEndpoint(config, opts.endpoint)];
      if (!targets.length) throw new CliError(EXIT.FAILURE, 'no webhook endpoints configured (webhooks.endpoints)');
      const results = await withStore(config, async (store) => {
        const out: { endpoint: string; requeued: number; added: number }[] = [];
        for (const e of targets) {
          await auditCommand(store, 'webhooks.replay', e.name, `since ${isoSeconds(opts.since)}`);
          out.push({ endpoint: e.name, ...(await replayWebhooks(store, e, opts.since)) });
        }
        return out;
      });
      const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
      for (const r of results) {
        logger.info({ event: 'webhooks.replayed', endpoint: r.endpoint, since: isoSeconds(opts.since), requeued: r.requeued, added: r.added }, `webhooks replay ${r.endpoint}`);
        console.log(`${r.endpoint}: ${r.requeued + r.added} event(s) since ${isoSeconds(opts.since)} queued again (${r.requeued} sent before, ${r.added} never sent)`);
      }
    });

  webhooks
    .command('keygen')
    .description('print a new signing secret (32 random bytes, base64url): put it in a file (chmod 600) or a variable named by webhooks.endpoints[].secrets')
    .action(() => {
      console.log(generateWebhookSecret());
    });
}

/** The configured endpoint of that name; none: exit 64. */
function configuredEndpoint(config: Config, name: string): Config['webhooks']['endpoints'][number] {
  const found = config.webhooks.endpoints.find((e) => e.name === name);
  if (found) return found;
  const known = config.webhooks.endpoints.map((e) => e.name);
  throw new CliError(EXIT.USAGE, `--endpoint: no webhook endpoint ${JSON.stringify(truncate(name, 64))} in the config${known.length ? ` (configured: ${known.join(', ')})` : ''}`);
}

function pickLast(s: { lastDeliveredAt: number | null; lastFailureAt: number | null; lastStatus: number | null; lastError: string | null } | undefined) {
  return { lastDeliveredAt: s?.lastDeliveredAt ?? null, lastFailureAt: s?.lastFailureAt ?? null, lastStatus: s?.lastStatus ?? null, lastError: s?.lastError ?? null };
}

function troubleTable(rows: readonly WebhookDeliveryInfo[], now: number): string {
  return renderTable(
    [{ header: 'ENDPOINT' }, { header: 'EVENT' }, { header: 'TYPE' }, { header: 'QUEUE ID' }, { header: 'STATE' }, { header: 'TRIES', align: 'right' }, { header: 'NEXT' }, { header: 'LAST ERROR' }],
    rows.map((r) => [
      r.endpoint,
      r.eventId,
      r.type,
      r.queueId,
      r.state === 'failed' ? 'failed' : 'retrying',
      String(r.attempts),
      r.state === 'pending' ? formatRelative(r.nextAt, now) : '-',
      truncate(`${r.lastError ?? ''}${r.lastAt ? ` (${formatRelative(r.lastAt, now)})` : ''}`, 50),
    ]),
  );
}

function parseSinceOption(value: string): number {
  try {
    return parseSince(value);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
}
