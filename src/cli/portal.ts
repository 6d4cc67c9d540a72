// `sealrelay portal`: the operator's side of the secure portal's store.
//
//   keygen [--out FILE]   a new master key (32 random bytes, base64): to stdout, or to a
//                         new file with mode 0600 (never overwrites: it may be in use)
//   list [--json]         items, newest first: ids, recipients, state, key — never content
//   show ID [--json]      one item's metadata and its records (the attempt that made it,
//                         portal events with time, IP and user agent) — never content
//   recall ID             every item of a message (queue id or Message-ID) unreadable at
//                         once: ciphertext erased, recorded with the OS user who acted
//   expire                erase the items past their expiry now (the relay does it every
//                         portal.expiry_sweep_seconds)
//   rewrap [--batch N]    move items under older master keys to portal.current_key,
//                         rewrapping only each item's data key; resumable
//
// Like the queue commands, these act on the store: a running relay sees the change at
// once. Keys are read from the files and environment variables the config names, with
// the environment main.ts captured; no key, token or content is ever printed or logged.
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { pino } from 'pino';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { createLogger } from '../log.ts';
import { expireDue } from '../portal/expiry.ts';
import { formatMasterKey, generateMasterKey, loadKeyring, MasterKeyError, type Keyring } from '../portal/master-keys.ts';
import { PortalVaultError, rewrapItemKey } from '../portal/vault.ts';
import { isPortalRecord, portalItemState, type PortalItemInfo, type Store, type WrappedItemKey } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { parsePositiveInt, recordTable } from './log.ts';
import { auditCommand, currentOperator } from './operator.ts';
import { formatBytes } from './queue.ts';
import { renderTable } from './table.ts';
import { formatRelative, isoSeconds } from './time.ts';

/** Items `portal list` shows unless told otherwise. */
const DEFAULT_LIST_LIMIT = 1000;
/** Items rewrapped per store transaction. */
const DEFAULT_REWRAP_BATCH = 200;

export function registerPortalCommands(program: Command, context: () => CliContext): void {
  const portal = program.command('portal').description('secure portal items: master keys, list, show, recall, expire, rewrap');

  portal
    .command('keygen')
    .description('make a portal master key (32 random bytes, base64); see portal.master_keys')
    .option('--out <file>', 'write the key to this new file (mode 0600) instead of stdout')
    .action((opts: { out?: string }) => {
      const key = generateMasterKey();
      const text = formatMasterKey(key);
      key.fill(0);
      const id = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`;
      if (opts.out === undefined) {
        process.stdout.write(text);
        console.error(configHint(id, { env: 'SEALRELAY_PORTAL_KEY' }));
        return;
      }
      try {
        // "wx": create only; fails with EEXIST rather than replace a key items are sealed with.
        writeFileSync(opts.out, text, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new CliError(EXIT.FAILURE, code === 'EEXIST' ? `${opts.out} exists; not overwritten` : `cannot write ${opts.out}: ${(err as Error).message}`);
      }
      console.log(`wrote a portal master key to ${opts.out} (mode 0600)`);
      console.log(configHint(id, { file: opts.out }));
    });

  portal
    .command('list')
    .description('list portal items, newest first (metadata only; never content)')
    .option('--message <id>', "only this message's items (queue id or Message-ID)")
    .option('--limit <n>', `the newest n items (0: all; default ${DEFAULT_LIST_LIMIT})`, parseLimit, DEFAULT_LIST_LIMIT)
    .option('--json', 'one JSON item per line')
    .action(async (opts: { message?: string; limit: number; json?: boolean }) => {
      const items = await withStore(readConfig(context()), async (store) => {
        const listed = await store.listPortalItems({ ...(opts.message ? { message: opts.message } : {}), ...(opts.limit ? { limit: opts.limit } : {}) });
        await auditCommand(store, 'portal.read', opts.message ?? 'list', `${listed.length} items`);
        return listed;
      });
      const now = Date.now();
      if (opts.json) {
        for (const item of items) console.log(JSON.stringify({ ...item, state: portalItemState(item, now) }));
      } else if (items.length) {
        console.log(itemTable(items, now));
      } else {
        console.log(opts.message ? `no portal items for ${opts.message}` : 'no portal items');
      }
    });

  portal
    .command('show <id>')
    .description("one item's metadata and records: how it was made, and every portal event (never content)")
    .option('--json', 'the item and its records as one JSON object')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withStore(readConfig(context()), async (store) => {
        const item = await store.getPortalItemInfo(id);
        if (!item) throw new CliError(EXIT.FAILURE, `no portal item ${id} (\`sealrelay portal list\` shows them)`);
        // The attempts of the recipient it was made for, and the events of this item.
        const records = (await store.queryLog({ message: item.queueId })).filter((r) => r.seq === item.seq && (!isPortalRecord(r) || r.itemId === item.id));
        await auditCommand(store, 'portal.read', `portal item ${item.id} (${item.queueId}.${item.seq})`, `${records.length} records`);
        const now = Date.now();
        if (opts.json) {
          console.log(JSON.stringify({ item: { ...item, state: portalItemState(item, now) }, records }));
          return;
        }
        console.log(itemDetails(item, now));
        console.log();
        // One item's detail: every fact in full (the IP and user agent of each view), as `log --wide`.
        console.log(records.length ? `records:\n${recordTable(records, true)}` : 'records: none');
      });
    });

  portal
    .command('recall <id>')
    .description('make every portal item of a message (queue id or Message-ID) unreadable at once: its ciphertext is erased')
    .action(async (ref: string) => {
      const config = readConfig(context());
      const operator = currentOperator();
      const { recalled, known } = await withStore(config, async (store) => {
        const recalled = await store.recallPortalItems(ref, operator);
        if (recalled.length) await auditCommand(store, 'portal.recall', ref, `${recalled.length} items`);
        return { recalled, known: recalled.length ? recalled.length : (await store.listPortalItems({ message: ref })).length };
      });
      if (!known) throw new CliError(EXIT.FAILURE, `no portal items for ${ref} (a queue id or Message-ID; \`sealrelay portal list\` shows them)`);
      const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
      logger.info({ event: 'portal.recalled', message: ref, items: recalled.map((i) => i.id), operator }, `portal recall ${ref} by ${operator}: ${plural(recalled.length, 'item')}`);
      if (!recalled.length) {
        console.log(`nothing to recall: the ${plural(known, 'portal item')} of ${ref} ${known === 1 ? 'was' : 'were'} recalled before`);
        return;
      }
      console.log(`recalled ${plural(recalled.length, 'portal item')} of ${ref}:`);
      for (const i of recalled) console.log(`  ${i.id}  ${i.queueId}.${i.seq}  ${i.recipient}`);
    });

  portal
    .command('expire')
    .description('erase the portal items past their expiry now (the relay does it every portal.expiry_sweep_seconds)')
    .action(async () => {
      const config = readConfig(context());
      const erased = await withStore(config, (store) => expireDue(store));
      if (erased) {
        const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
        logger.info({ event: 'portal.expired', items: erased, operator: currentOperator() }, `erased ${plural(erased, 'expired portal item')}`);
      }
      console.log(erased ? `erased ${plural(erased, 'expired portal item')}` : 'no portal items past their expiry');
    });

  portal
    .command('rewrap')
    .description('move portal items under older master keys to portal.current_key (the content is not decrypted); safe to run again')
    .option('--batch <n>', `items per transaction (default ${DEFAULT_REWRAP_BATCH})`, parsePositiveInt, DEFAULT_REWRAP_BATCH)
    .action(async (opts: { batch: number }) => {
      const ctx = context();
      const loaded = loadConfigFile(ctx.configFile, ctx.env);
      let keyring: Keyring | null;
      try {
        keyring = loadKeyring(loaded.config.portal, ctx.env);
      } catch (err) {
        if (err instanceof MasterKeyError) throw new ConfigError([loaded.problem(err.path, err.reason)]);
        throw err;
      }
      if (!keyring) throw new ConfigError([loaded.problem(['portal', 'master_keys'], 'no master keys configured: nothing to rewrap with')]);
      const result = await withStore(loaded.config, (store) => rewrapAll(store, keyring, opts.batch));
      const logger = createLogger(loaded.config.logging.level, pino.destination({ dest: 2, sync: true }));
      logger.info(
        { event: 'portal.rewrapped', keyId: keyring.currentId, items: result.rewrapped, failed: result.failed.length, operator: currentOperator() },
        `portal rewrap to ${keyring.currentId}: ${plural(result.rewrapped, 'item')}, ${result.failed.length} failed`,
      );
      console.log(`rewrapped ${plural(result.rewrapped, 'portal item')} to master key ${keyring.currentId}`);
      if (result.failed.length) {
        for (const f of result.failed) console.error(`  ${f.id} (key ${f.keyId}): ${f.reason}`);
        throw new CliError(EXIT.FAILURE, `${plural(result.failed.length, 'item')} could not be rewrapped (above); the others were`);
      }
      const others = keyring.ids.filter((id) => id !== keyring.currentId);
      console.log(`every readable item is under ${keyring.currentId}${others.length ? `; ${others.join(', ')} may now be removed from portal.master_keys` : ''}`);
    });
}

interface RewrapResult {
  rewrapped: number;
  failed: { id: string; keyId: string; reason: string }[];
}

/**
 * Rewraps batch by batch, each committed on its own: an interrupted run loses at most
 * its last batch and the next run carries on. An item that cannot be rewrapped (its key
 * not configured, or not authentic) is passed by (the cursor) and reported.
 */
async function rewrapAll(store: Store, keyring: Keyring, batch: number): Promise<RewrapResult> {
  const result: RewrapResult = { rewrapped: 0, failed: [] };
  let after = '';
  for (;;) {
    const keys = await store.portalKeysToRewrap(keyring.currentId, batch, after);
    if (!keys.length) return result;
    const next: (WrappedItemKey & { fromKeyId: string })[] = [];
    for (const k of keys) {
      try {
        const rewrapped = rewrapItemKey(keyring, k);
        if (rewrapped) next.push(rewrapped);
      } catch (err) {
        if (!(err instanceof PortalVaultError)) throw err;
        result.failed.push({ id: k.id, keyId: k.keyId, reason: err.failure === 'unknown-key' ? `master key ${k.keyId} is not configured; add it to portal.master_keys to rewrap this item` : 'the wrapped key is not authentic (altered, or the key under that id changed)' });
      }
    }
    result.rewrapped += await store.rewrapPortalKeys(next);
    after = keys.at(-1)!.id;
  }
}

/** What to put in the config for the new key. */
function configHint(id: string, where: { file: string } | { env: string }): string {
  const source = 'file' in where ? `file: ${where.file}` : `env: ${where.env}   # the variable holding the key`;
  return [
    'add it to the config (the id is yours to choose; never reuse one):',
    'portal:',
    '  master_keys:',
    `    - { id: ${id}, ${source} }`,
    `  current_key: ${id}   # new items are sealed with it; \`sealrelay portal rewrap\` moves older ones`,
  ].join('\n');
}

function itemTable(items: readonly PortalItemInfo[], now: number): string {
  return renderTable(
    [
      { header: 'ITEM' },
      { header: 'CREATED' },
      { header: 'EXPIRES' },
      { header: 'STATE' },
      { header: 'MESSAGE' },
      { header: 'RECIPIENT' },
      { header: 'SENDER' },
      { header: 'SIZE', align: 'right' },
      { header: 'KEY' },
      { header: 'LINK KEY' },
    ],
    items.map((i) => [
      i.id,
      isoSeconds(i.createdAt),
      isoSeconds(i.expiresAt),
      portalItemState(i, now),
      `${i.queueId}.${i.seq}`,
      i.recipient,
      i.sender || '<>',
      formatBytes(i.size),
      i.keyId ?? '-',
      i.keyInLink ? 'yes' : 'no',
    ]),
  );
}

function itemDetails(i: PortalItemInfo, now: number): string {
  const state = portalItemState(i, now);
  const when = (at: number | null) => (at === null ? '-' : `${isoSeconds(at)} (${formatRelative(at, now)})`);
  return [
    `item:        ${i.id}`,
    `state:       ${state}${i.erasedAt !== null ? ` (content erased ${isoSeconds(i.erasedAt)})` : state === 'expired' ? ' (content not yet erased; unreadable)' : ''}`,
    `message:     ${i.queueId}.${i.seq}`,
    `message-id:  ${i.messageId ?? '-'}`,
    `sender:      ${i.sender || '<>'}`,
    `recipient:   ${i.recipient}`,
    `size:        ${formatBytes(i.size)} (${i.size} bytes)`,
    `created:     ${when(i.createdAt)}`,
    `expires:     ${when(i.expiresAt)}`,
    `recalled:    ${when(i.recalledAt)}`,
    `master key:  ${i.keyId ?? '- (erased)'}`,
    `key in link: ${i.keyInLink ? 'yes (the database and master key alone cannot open it)' : 'no'}`,
    ...(i.lockedUntil !== null && i.lockedUntil > now ? [`locked:      until ${isoSeconds(i.lockedUntil)} (too many wrong codes)`] : []),
  ].join('\n');
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number (0 for all)');
  return n;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
