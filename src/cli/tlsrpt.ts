// `sealrelay tlsrpt`: the daily TLS reports (RFC 8460, reporting/tlsrpt/).
//
//   sealrelay tlsrpt preview example.org [--day 2026-12-03]   the JSON that would be sent (default: yesterday, UTC)
//   sealrelay tlsrpt status [--domain example.org]           the reports made and where each destination stands
//
// preview reads the store's records exactly as the daily job does and prints the
// report to stdout; where it would go (the domain's `_smtp._tls` record, looked up
// through delivery.dns.servers) goes to stderr, so stdout stays the JSON alone.
// Nothing is sent or saved. No session that day: exit 1. A bad --day: exit 64.
import type { Command } from 'commander';
import { discoverTlsRpt } from '../reporting/tlsrpt/discovery.ts';
import { reportFor } from '../reporting/tlsrpt/job.ts';
import { dayRange, previousDay } from '../reporting/tlsrpt/report.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';
import { isoSeconds } from './time.ts';

const DOMAIN = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/i;

function domainArg(text: string): string {
  const domain = text.trim().toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(domain)) throw new CliError(EXIT.USAGE, `not a domain: ${text}`);
  return domain;
}

function dayArg(text: string | undefined): string {
  if (text === undefined) return previousDay(Date.now());
  try {
    dayRange(text);
  } catch {
    throw new CliError(EXIT.USAGE, `--day: expected a UTC day as YYYY-MM-DD, got ${text}`);
  }
  return text;
}

export function registerTlsRptCommands(program: Command, context: () => CliContext): void {
  const cmd = program.command('tlsrpt').description('daily TLS reports (RFC 8460) to the domains that ask for them');

  cmd
    .command('preview <domain>')
    .description("print the report of one recipient domain for one UTC day, as it would be sent (nothing is sent)")
    .option('--day <YYYY-MM-DD>', 'the UTC day (default: yesterday)')
    .action(async (domainText: string, opts: { day?: string }) => {
      const domain = domainArg(domainText);
      const day = dayArg(opts.day);
      const config = readConfig(context());
      const report = await withStore(config, (store) => reportFor(store, config, domain, day));
      if (!report) throw new CliError(EXIT.FAILURE, `no TLS session with ${domain} on ${day}: nothing to report`);
      const found = await discoverTlsRpt(domain, { dnsServers: config.delivery.dns.servers, timeoutMs: config.delivery.dns.timeout_ms });
      console.error(found.kind === 'record' ? `would be sent to: ${found.rua.join(', ')}` : `would not be sent: ${found.reason}`);
      console.log(JSON.stringify(report, null, 2));
    });

  cmd
    .command('status')
    .description('the reports made, newest day first, and each destination: sent, pending (next try) or failed')
    .option('--domain <domain>', 'only those of this recipient domain')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { domain?: string; json?: boolean }) => {
      const domain = opts.domain === undefined ? undefined : domainArg(opts.domain);
      const sends = await withStore(readConfig(context()), (store) => store.listTlsReports(domain === undefined ? {} : { domain }));
      if (opts.json) {
        for (const s of sends) console.log(JSON.stringify(s));
        return;
      }
      if (!sends.length) {
        console.log('no TLS reports made');
        return;
      }
      console.log(
        renderTable(
          [{ header: 'DAY' }, { header: 'DOMAIN' }, { header: 'DESTINATION' }, { header: 'STATUS' }, { header: 'TRIES', align: 'right' }, { header: 'WHEN' }, { header: 'LAST ERROR' }],
          sends.map((s) => [
            s.day,
            s.domain,
            s.destination,
            s.status,
            String(s.attempts),
            isoSeconds(s.status === 'sent' && s.sentAt !== null ? s.sentAt : s.nextAt),
            s.lastError ?? '',
          ]),
        ),
      );
    });
}
