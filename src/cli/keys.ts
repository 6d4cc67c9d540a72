// `sealrelay keys`: the recipient key store — the OpenPGP keys and S/MIME
// certificates the relay encrypts to (modes `pgp` and `smime`). Operators import
// them from files, list and show them, and remove them.
//
// Import refuses what could never be used (expired, revoked, unusable, or without
// an email address), so that the store holds no silent dead ends. The exception
// is a new version of a key already stored: it is merged in and replaces it, even
// revoked or expired, because that is how a revocation takes effect.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { keyProblem } from '../crypto/choose-key.ts';
import { openStore } from '../store/open-store.ts';
import type { RecipientKey, Store } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { auditCommand } from './operator.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';
import { isoSeconds } from './time.ts';

/** The shortest fingerprint prefix accepted: shorter ones would too often match several keys. */
const MIN_PREFIX_HEX = 8;

const KIND_NAME: Readonly<Record<RecipientKey['kind'], string>> = { pgp: 'OpenPGP public key', smime: 'S/MIME certificate' };

export function registerKeyCommands(program: Command, context: () => CliContext): void {
  const keys = program.command('keys').description('recipient OpenPGP keys and S/MIME certificates (default: list)');

  keys
    .command('list', { isDefault: true })
    .description('every stored key and whether it can be used now')
    .option('--address <address>', 'only the keys carrying this address')
    .option('--json', 'one JSON object per line (without the key data)')
    .action(async (opts: { address?: string; json?: boolean }) => {
      const all = await withStore(readConfig(context()), (store) => store.listKeys(opts.address === undefined ? {} : { address: opts.address }));
      const now = Date.now();
      if (opts.json) {
        for (const key of all) {
          const { data: _data, ...rest } = key;
          console.log(JSON.stringify({ ...rest, state: keyState(key, now) }));
        }
        return;
      }
      if (!all.length) {
        console.log(opts.address === undefined ? 'no keys stored' : `no keys for ${opts.address}`);
        return;
      }
      console.log(
        renderTable(
          [{ header: 'FINGERPRINT' }, { header: 'KIND' }, { header: 'ADDRESSES' }, { header: 'EXPIRES' }, { header: 'STATE' }, { header: 'SOURCE' }],
          all.map((k) => [k.fingerprint, k.kind, k.addresses.join(', ') || '-', expires(k), keyState(k, now), k.source]),
        ),
      );
    });

  keys
    .command('import <file...>')
    .description('store the keys and certificates in the files (OpenPGP armored or binary, X.509 PEM or DER)')
    .action(async (files: string[]) => {
      // Unlike the other commands, import may create the store: keys can be loaded before the relay first runs.
      const store = openStore(readConfig(context()).store);
      let failures = 0;
      try {
        for (const file of files) failures += await importFile(store, file, Date.now());
      } finally {
        await store.close();
      }
      if (failures) throw new CliError(EXIT.FAILURE, `${failures} problem${failures === 1 ? '' : 's'}: not everything was imported`);
    });

  keys
    .command('show <fingerprint>')
    .description(`one key in full, its data included (a unique prefix of ${MIN_PREFIX_HEX}+ hex digits will do)`)
    .option('--json', 'as one JSON object')
    .action(async (fingerprint: string, opts: { json?: boolean }) => {
      const key = await withStore(readConfig(context()), (store) => findKey(store, fingerprint));
      const now = Date.now();
      console.log(opts.json ? JSON.stringify({ ...key, state: keyState(key, now) }) : describe(key, now));
    });

  keys
    .command('remove <fingerprint>')
    .description(`forget a key (a unique prefix of ${MIN_PREFIX_HEX}+ hex digits will do)`)
    .action(async (fingerprint: string) => {
      const key = await withStore(readConfig(context()), async (store) => {
        const found = await findKey(store, fingerprint);
        await store.removeKey(found.fingerprint);
        await auditCommand(store, 'key.remove', found.fingerprint, found.kind);
        return found;
      });
      console.log(`removed ${key.fingerprint} ${key.kind} ${key.addresses.join(',') || '-'}`);
    });
}

/** Imports one file; prints a line per key stored (stdout) and per problem (stderr). Returns the number of problems. */
async function importFile(store: Store, file: string, now: number): Promise<number> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    console.error(`${file}: cannot read: ${(err as Error).message}`);
    return 1;
  }
  // openpgp and forge load only for an import, not with every command (`start` included).
  const { parseKeyFile } = await import('../crypto/keys.ts');
  const parsed = await parseKeyFile(bytes, { source: 'import', now, known: (fingerprint) => store.getKey(fingerprint) });
  for (const note of parsed.notes) console.error(`${file}: note: ${note}`);
  for (const problem of parsed.problems) console.error(`${file}: ${problem}`);
  let failures = parsed.problems.length;
  if (!parsed.keys.length && !failures) {
    console.error(`${file}: no key or certificate in it`);
    return 1;
  }
  for (const key of parsed.keys) {
    const replacing = (await store.getKey(key.fingerprint)) !== null;
    const refusal = replacing ? null : (keyProblem(key, now) ?? (key.addresses.length ? null : 'it carries no email address'));
    if (refusal) {
      console.error(`${file}: ${KIND_NAME[key.kind]} ${key.fingerprint} (${key.label || 'no label'}): not imported: ${refusal}`);
      failures++;
      continue;
    }
    await store.putKey(key);
    await auditCommand(store, 'key.import', key.fingerprint, `${replacing ? 'updated' : 'new'} ${key.kind} ${key.addresses.join(',')}`);
    const state = keyState(key, now);
    console.log(`${replacing ? 'updated' : 'imported'} ${key.fingerprint} ${key.kind} ${key.addresses.join(',') || '-'} expires ${expires(key)}${state === 'ok' ? '' : ` (${state})`}`);
  }
  return failures;
}

/** By exact fingerprint or a unique prefix; spaces and colons (as gpg and openssl print them) are ignored. */
async function findKey(store: Store, text: string): Promise<RecipientKey> {
  const wanted = text.replace(/[\s:]/g, '').toUpperCase();
  if (!new RegExp(`^[0-9A-F]{${MIN_PREFIX_HEX},}$`).test(wanted)) {
    throw new CliError(EXIT.USAGE, `"${text}" is not a fingerprint (at least ${MIN_PREFIX_HEX} hex digits)`);
  }
  const exact = await store.getKey(wanted);
  if (exact) return exact;
  const matches = (await store.listKeys()).filter((k) => k.fingerprint.startsWith(wanted));
  if (matches.length > 1) throw new CliError(EXIT.FAILURE, `${text} is ambiguous: it starts ${matches.map((k) => k.fingerprint).sort().join(', ')}`);
  if (!matches[0]) throw new CliError(EXIT.FAILURE, `no key ${text} in the store`);
  return matches[0];
}

/** ok, revoked, expired <date>, not valid before <date>, or unusable: <why>. */
function keyState(key: RecipientKey, now: number): string {
  const problem = keyProblem(key, now);
  if (problem === null) return 'ok';
  return !key.revoked && key.unusable ? `unusable: ${problem}` : problem;
}

function expires(key: RecipientKey): string {
  return key.expiresAt === null ? 'never' : isoSeconds(key.expiresAt);
}

function describe(key: RecipientKey, now: number): string {
  return [
    `fingerprint: ${key.fingerprint}`,
    `kind:        ${KIND_NAME[key.kind]}`,
    `label:       ${key.label || '-'}`,
    `addresses:   ${key.addresses.join(', ') || '-'}`,
    `created:     ${key.createdAt === null ? '-' : isoSeconds(key.createdAt)}`,
    `expires:     ${expires(key)}`,
    `state:       ${keyState(key, now)}`,
    `source:      ${key.source}, stored ${isoSeconds(key.importedAt)}`,
    '',
    key.data.trimEnd(),
  ].join('\n');
}
