// `sealrelay suppression`: who gets no more mail from a sender domain
// (reporting/tracking/suppression.ts). Recipients add themselves with the one-click
// unsubscribe link; operators list, add (source `manual`) and remove them here.
// Delivery checks the table before every attempt, so a change applies to the next
// attempt of mail already queued, without a restart.
import type { Command } from 'commander';
import { normaliseAddress } from '../store/store.ts';
import { normaliseSenderDomain, type Suppression } from '../reporting/tracking/suppression.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { auditCommand, describeFilter } from './operator.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';
import { isoSeconds } from './time.ts';

export function registerSuppressionCommands(program: Command, context: () => CliContext): void {
  const cmd = program.command('suppression').description('addresses that get no more mail from a sender domain (default: list)');

  cmd
    .command('list', { isDefault: true })
    .description('suppressions, newest first')
    .option('--domain <sender-domain>', 'only those of this sender domain')
    .option('--address <address>', 'only those of this recipient address')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { domain?: string; address?: string; json?: boolean }) => {
      const filter = { senderDomain: opts.domain === undefined ? undefined : domainArg(opts.domain), recipient: opts.address === undefined ? undefined : addressArg(opts.address) };
      const all = await withStore(readConfig(context()), async (store) => {
        // Who may not be mailed names recipients: reading it is recorded like a log read.
        await auditCommand(store, 'suppression.read', null, describeFilter(filter));
        return store.listSuppressions(filter);
      });
      if (opts.json) {
        for (const s of all) console.log(JSON.stringify({ ...s, createdAt: new Date(s.createdAt).toISOString() }));
        return;
      }
      if (!all.length) {
        console.log('no suppressions');
        return;
      }
      console.log(
        renderTable(
          [{ header: 'SENDER DOMAIN' }, { header: 'ADDRESS' }, { header: 'SOURCE' }, { header: 'SINCE' }, { header: 'MESSAGE' }],
          all.map((s) => [s.senderDomain, s.recipient, s.source, isoSeconds(s.createdAt), messageOf(s)]),
        ),
      );
    });

  cmd
    .command('add <sender-domain> <address>')
    .description('send no more mail from the sender domain to the address (transactional rules still deliver)')
    .action(async (domain: string, address: string) => {
      const key = { senderDomain: domainArg(domain), recipient: addressArg(address) };
      const added = await withStore(readConfig(context()), async (store) => {
        await auditCommand(store, 'suppression.add', `${key.senderDomain} ${key.recipient}`);
        return store.addSuppression({ ...key, source: 'manual' });
      });
      console.log(added ? `suppressed ${key.recipient} for mail from ${key.senderDomain}` : `${key.recipient} was already suppressed for mail from ${key.senderDomain}`);
    });

  cmd
    .command('remove <sender-domain> <address>')
    .description('deliver mail from the sender domain to the address again')
    .action(async (domain: string, address: string) => {
      const key = { senderDomain: domainArg(domain), recipient: addressArg(address) };
      const removed = await withStore(readConfig(context()), async (store) => {
        await auditCommand(store, 'suppression.remove', `${key.senderDomain} ${key.recipient}`);
        return store.removeSuppression(key.senderDomain, key.recipient);
      });
      if (!removed) throw new CliError(EXIT.FAILURE, `${key.recipient} is not suppressed for mail from ${key.senderDomain}`);
      console.log(`${key.recipient} gets mail from ${key.senderDomain} again`);
    });
}

function domainArg(value: string): string {
  const domain = normaliseSenderDomain(value);
  if (!domain) throw new CliError(EXIT.USAGE, `not a sender domain: ${JSON.stringify(value.slice(0, 100))} (e.g. clinic.example)`);
  return domain;
}

function addressArg(value: string): string {
  const address = normaliseAddress(value);
  if (!address || address.length > 320) throw new CliError(EXIT.USAGE, `not an email address: ${JSON.stringify(value.slice(0, 100))}`);
  return address;
}

function messageOf(s: Suppression): string {
  return s.queueId === null ? '-' : `${s.queueId}.${s.seq ?? 0}`;
}
