// `sealrelay domains`: the domain knowledge the relay has learned from its own
// deliveries — above all which domains are TLS-known (delivered over TLS before),
// for which a missing STARTTLS is treated as a possible downgrade. Operators can
// list it, look at one domain, and forget one (e.g. after a receiver really did
// drop TLS and the operator accepts plaintext again). The last background probe is
// shown beside it: what the MX offers now, even where nothing was sent lately.
import type { Command } from 'commander';
import type { DomainKnowledge } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';
import { formatRelative, isoSeconds } from './time.ts';

export function registerDomainCommands(program: Command, context: () => CliContext): void {
  const domains = program.command('domains').description('what the relay has learned about recipient domains (default: list)');

  domains
    .command('list', { isDefault: true })
    .description('every known domain, whether it is TLS-known, and its last probe')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { json?: boolean }) => {
      const all = await withStore(readConfig(context()), (store) => store.listDomains());
      if (opts.json) {
        for (const d of all) console.log(JSON.stringify(d));
        return;
      }
      if (!all.length) {
        console.log('no domain knowledge yet');
        return;
      }
      const now = Date.now();
      const when = (at: number | null) => (at === null ? '-' : formatRelative(at, now));
      console.log(
        renderTable(
          [
            { header: 'DOMAIN' },
            { header: 'TLS-KNOWN' },
            { header: 'LAST TLS' },
            { header: 'LAST STARTTLS' },
            { header: 'LAST NO STARTTLS' },
            { header: 'ATTEMPTS', align: 'right' },
            { header: 'LAST PROBE' },
          ],
          all.map((d) => [
            d.domain,
            d.tlsKnownSince === null ? 'no' : `since ${isoSeconds(d.tlsKnownSince)}`,
            when(d.lastTlsAt),
            when(d.lastStarttlsAt),
            when(d.lastNoStarttlsAt),
            String(d.attempts),
            d.lastProbeAt === null ? '-' : `${when(d.lastProbeAt)}, ${probeVerdict(d, 'short')}`,
          ]),
        ),
      );
    });

  domains
    .command('show <domain>')
    .description('one domain in full')
    .option('--json', 'as one JSON object')
    .action(async (domain: string, opts: { json?: boolean }) => {
      const d = await withStore(readConfig(context()), (store) => store.getDomain(domain));
      if (!d) throw new CliError(EXIT.FAILURE, `nothing known about ${domain}`);
      console.log(opts.json ? JSON.stringify(d) : describe(d));
    });

  domains
    .command('forget <domain>')
    .description('forget what was learned (the domain is no longer TLS-known)')
    .action(async (domain: string) => {
      const forgotten = await withStore(readConfig(context()), (store) => store.forgetDomain(domain));
      if (!forgotten) throw new CliError(EXIT.FAILURE, `nothing known about ${domain}`);
      console.log(`forgot ${domain.toLowerCase()}`);
    });
}

/** What the last probe saw, in the table's few words or the long form of `show`. */
function probeVerdict(d: DomainKnowledge, form: 'short' | 'long'): string {
  const [short, long] = d.lastProbeTlsOk
    ? ['TLS ok', 'TLS handshake succeeded at the floor']
    : d.lastProbeStarttlsOffered === false
      ? ['no STARTTLS', 'STARTTLS not offered']
      : d.lastProbeStarttlsOffered === true
        ? ['TLS failed', 'STARTTLS offered, but no handshake at the floor (see the domains.probe log line)']
        : ['no TLS', 'no TLS handshake (STARTTLS not offered, or the handshake failed)'];
  return form === 'short' ? short : long;
}

function describe(d: DomainKnowledge): string {
  const at = (ms: number | null) => (ms === null ? '-' : isoSeconds(ms));
  return [
    `domain:            ${d.domain}`,
    `TLS-known:         ${d.tlsKnownSince === null ? 'no' : `yes, since ${at(d.tlsKnownSince)} (no plaintext: a missing STARTTLS is a possible downgrade)`}`,
    `last TLS delivery: ${at(d.lastTlsAt)}`,
    `last STARTTLS:     ${at(d.lastStarttlsAt)}`,
    `last no STARTTLS:  ${at(d.lastNoStarttlsAt)}`,
    `last attempt:      ${at(d.lastAttemptAt)}`,
    `attempts:          ${d.attempts}`,
    `last probe:        ${d.lastProbeAt === null ? '-' : `${at(d.lastProbeAt)}, ${probeVerdict(d, 'long')}`}`,
  ].join('\n');
}
