// `sealrelay token add|list|revoke`: API tokens for the REST API (src/http/api/).
//
//   token add NAME --scope send,read,admin [--expires 90d]
//                  prints the token once, alone on stdout (TOKEN=$(sealrelay token add …));
//                  only its SHA-256 is stored, so it can never be shown again
//   token list     name, id, scopes, expiry, last use, state; never a secret
//   token revoke NAME
//                  refused from the next request on; the row stays as the trace
//
// Mail sent with a token carries the auth user `token:NAME` (policy rules may
// match it with auth_user) and queue actions made with it name it as operator.
import { InvalidArgumentError, type Command } from 'commander';
import { makeApiToken, TOKEN_NAME } from '../http/api/tokens.ts';
import { openStore } from '../store/open-store.ts';
import { API_SCOPES, type ApiScope, type ApiTokenInfo } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';
import { formatRelative, isoSeconds, parseDuration } from './time.ts';

export function registerTokenCommands(program: Command, context: () => CliContext): void {
  const token = program.command('token').description('API tokens for the REST API: add (shown once), list, revoke');

  token
    .command('add <name>')
    .description('make an API token; it is printed once, on stdout, and stored only as a hash')
    .requiredOption('--scope <scopes>', `what it may do, comma-separated: ${API_SCOPES.join(', ')}`, parseScopes)
    .option('--expires <duration>', 'refused after this long, e.g. 90d, 12w, 24h (default: never)', parseExpiry)
    .action(async (name: string, opts: { scope: ApiScope[]; expires?: number }) => {
      if (!TOKEN_NAME.test(name)) throw new CliError(EXIT.USAGE, `not a valid token name: ${JSON.stringify(name)} (1-64 of a-z 0-9 . _ -, starting with a letter or digit)`);
      const config = readConfig(context());
      const now = Date.now();
      const made = makeApiToken({ name, scopes: opts.scope, now, expiresAt: opts.expires === undefined ? null : now + opts.expires });
      // The store is made here when the relay has not run yet: a token may come first.
      const store = openStore(config.store);
      try {
        await store.createApiToken(made.record);
      } catch (err) {
        throw new CliError(EXIT.FAILURE, (err as Error).message);
      } finally {
        await store.close();
      }
      console.log(made.token);
      const expiry = made.record.expiresAt === null ? 'never expires' : `expires ${isoSeconds(made.record.expiresAt)}`;
      console.error(`API token ${name} (id ${made.record.id}; scopes ${made.record.scopes.join(', ')}; ${expiry}).`);
      console.error('It is shown only now: keep it as a secret (Authorization: Bearer <token>). Lost: revoke it and add another.');
    });

  token
    .command('list')
    .description('every API token: name, id, scopes, expiry, last use and state (never a secret)')
    .option('--json', 'one JSON object per token')
    .action(async (opts: { json?: boolean }) => {
      const tokens = await withStore(readConfig(context()), (store) => store.listApiTokens());
      if (opts.json) {
        for (const t of tokens) console.log(JSON.stringify(t));
        return;
      }
      if (!tokens.length) {
        console.log('no API tokens (sealrelay token add NAME --scope send makes one)');
        return;
      }
      const now = Date.now();
      console.log(
        renderTable(
          [{ header: 'NAME' }, { header: 'ID' }, { header: 'SCOPES' }, { header: 'CREATED' }, { header: 'EXPIRES' }, { header: 'LAST USED' }, { header: 'STATE' }],
          tokens.map((t) => [
            t.name,
            t.id,
            t.scopes.join(','),
            isoSeconds(t.createdAt),
            t.expiresAt === null ? 'never' : isoSeconds(t.expiresAt),
            t.lastUsedAt === null ? 'never' : formatRelative(t.lastUsedAt, now),
            stateOf(t, now),
          ]),
        ),
      );
    });

  token
    .command('revoke <name>')
    .description('refuse the token from now on (its row stays, as the trace of who could send)')
    .action(async (name: string) => {
      const revoked = await withStore(readConfig(context()), (store) => store.revokeApiToken(name, Date.now()));
      if (!revoked) throw new CliError(EXIT.FAILURE, `no live API token named ${name} (sealrelay token list shows them)`);
      console.log(`revoked API token ${name}`);
    });
}

function stateOf(t: ApiTokenInfo, now: number): string {
  if (t.revokedAt !== null) return `revoked ${isoSeconds(t.revokedAt)}`;
  if (t.expiresAt !== null && t.expiresAt <= now) return 'expired';
  return 'active';
}

function parseScopes(value: string): ApiScope[] {
  const scopes = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = scopes.filter((s) => !(API_SCOPES as readonly string[]).includes(s));
  if (!scopes.length || unknown.length) throw new InvalidArgumentError(`expected some of ${API_SCOPES.join(', ')}${unknown.length ? `; not ${unknown.join(', ')}` : ''}.`);
  return scopes as ApiScope[];
}

function parseExpiry(value: string): number {
  const ms = parseDuration(value);
  if (ms === null || ms <= 0) throw new InvalidArgumentError('expected a duration like 90d, 12w or 24h.');
  return ms;
}
