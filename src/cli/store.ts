// `sealrelay store keys`: how many queued body parts each key of store.encryption
// seals (and how many are in the clear), so an operator knows when an old key may go.
//
// `sealrelay store prune [--dry-run]`: retention now (store/retention.ts), counts per
// kind; audited when it deleted anything.
//
// `sealrelay store backup FILE`: a consistent copy of the store made while the relay
// runs (SQLite's online backup API, through the store), written to a new file of
// mode 0600 — it holds queued messages and delivery records, which name patients —
// and checked before it is given its name: a backup that does not open is no backup.
//
// Restoring (README, Operations): stop the relay, put the copy in place of
// store.path (and remove any -wal/-shm files beside it), start the relay.
import { closeSync, existsSync, linkSync, openSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Command } from 'commander';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { currentOperator } from './operator.ts';
import { fitField, type AuditInput } from '../events/audit/entry.ts';
import { PRUNE_KINDS } from '../store/store.ts';
import { countPrunable, pruneAll, pruneAudit, PruneError, RETENTION_SETTING, retentionCutoffs, totalOf, type PruneCounts } from '../store/retention.ts';

export function registerStoreCommands(program: Command, context: () => CliContext): void {
  const store = program.command('store').description('the store itself: body encryption keys in use, retention, backups');
  store
    .command('keys')
    .description('how many queued body parts each store.encryption key seals (and how many are stored in the clear)')
    .action(async () => {
      const config = readConfig(context());
      const listed = new Set(config.store.encryption.keys.map((k) => k.id));
      const inUse = await withStore(config, (s) => s.bodyKeysInUse());
      if (!inUse.length) console.log('no queued bodies');
      for (const k of inUse) {
        const note = k.keyId === null ? 'in the clear (queued before a key was set)' : `${listed.has(k.keyId) ? '' : 'NOT LISTED in store.encryption.keys; '}${k.keyId === config.store.encryption.current_key ? 'current' : 'older key'}`;
        console.log(`${(k.keyId ?? '(none)').padEnd(20)} ${String(k.parts).padStart(8)} part(s)  ${note}`);
      }
    });
  store
    .command('prune')
    .description('delete delivery records, events and erased portal items older than retention allows (what the relay does every retention.interval_seconds)')
    .option('--dry-run', 'count what would be deleted; change nothing')
    .action(async (opts: { dryRun?: boolean }) => {
      const config = readConfig(context());
      const cutoffs = retentionCutoffs(config.retention);
      const dry = opts.dryRun === true;
      const counts = await withStore(config, async (s) => {
        if (dry) return countPrunable(s, cutoffs);
        let pruned: PruneCounts;
        try {
          pruned = await pruneAll(s, cutoffs);
        } catch (err) {
          // Batches before the failure are gone all the same: recorded, then the failure reported.
          if (err instanceof PruneError && totalOf(err.pruned)) await s.appendAudit(pruneAudit(operatorActor(), err.pruned, cutoffs));
          throw new CliError(EXIT.FAILURE, `prune failed: ${(err as Error).message}`);
        }
        if (totalOf(pruned)) await s.appendAudit(pruneAudit(operatorActor(), pruned, cutoffs));
        return pruned;
      });
      for (const kind of PRUNE_KINDS) {
        const setting = `retention.${RETENTION_SETTING[kind]}`;
        const before = cutoffs[kind];
        const what = before === null ? `kept (${setting}: null)` : `${dry ? 'would be deleted' : 'deleted'}: older than ${new Date(before).toISOString()} (${setting}: ${config.retention[RETENTION_SETTING[kind]]})`;
        console.log(`${kind.padEnd(14)} ${String(counts[kind]).padStart(10)}  ${what}`);
      }
    });
  store
    .command('backup <file>')
    .description('write a consistent copy of the store to a new file (mode 0600) while the relay runs; never overwrites')
    .action(async (file: string) => {
      const config = readConfig(context());
      const target = resolve(file);
      if (existsSync(target)) throw new CliError(EXIT.FAILURE, `${target} exists; backups never overwrite (remove it or name another file)`);
      if (config.store.driver !== 'sqlite') throw new CliError(EXIT.FAILURE, `store backup copies SQLite stores; back up ${config.store.driver} with its own tools`);
      if (resolve(config.store.path) === target) throw new CliError(EXIT.USAGE, 'the backup must be another file than the store');
      // Written under a temporary name that only we can read, and named only once it checks out.
      const partial = join(dirname(target), `.${basename(target)}.partial-${process.pid}`);
      closeSync(openSync(partial, 'wx', 0o600));
      try {
        await withStore(config, (s) => s.backup(partial));
        const summary = check(partial);
        linkSync(partial, target);
        console.log(`backup written to ${target}: ${summary}`);
      } finally {
        unlinkSync(partial);
      }
    });
}

/** The OS user running the command, as the audit trail names them. */
const operatorActor = (): AuditInput['actor'] => ({ kind: 'os-user', name: fitField(currentOperator()) });

/** Opens the copy read-only and runs SQLite's integrity check; what it holds, for the operator. */
function check(path: string): string {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const verdict = db.pragma('integrity_check', { simple: true });
    if (verdict !== 'ok') throw new CliError(EXIT.FAILURE, `the copy failed SQLite's integrity check (${String(verdict)}); nothing written`);
    const count = (table: string) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    const version = db.pragma('user_version', { simple: true }) as number;
    return `schema ${version}, ${count('messages')} queued message(s), ${count('records')} delivery record(s), ${count('events')} event(s)`;
  } finally {
    db.close();
  }
}
