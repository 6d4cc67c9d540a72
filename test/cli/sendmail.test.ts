// `sealrelay sendmail` and `mailq` as real processes on a real SQLite store: -t
// with To/Cc/Bcc (Bcc gone from what is queued), the lone dot with and without
// -i, -f / -F and their injection attempts, the `sendmail` and `mailq` link names,
// hostile input refused with sysexits codes and nothing queued, and a store that
// cannot take the message answered 75 with nothing half queued.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CliError, EXIT } from '../../src/cli/exit.ts';
import { submit } from '../../src/cli/sendmail-submit.ts';
import { parseSendmailArgs } from '../../src/cli/sendmail-args.ts';
import { loadBodyKeyring } from '../../src/portal/master-keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { writeConfigFile } from '../helpers/relay-process.ts';
import { testConfig } from '../helpers/relay.ts';
import { lines, makeSandbox, ROOT, runCli, withStore, type CliResult, type Sandbox } from './harness.ts';

let box: Sandbox;
const dirs: string[] = [];
const LOGIN = userInfo().username;

beforeEach(async () => {
  // ingress: continues the sandbox's ingress section; a small limit makes "too large" cheap.
  box = makeSandbox(['  max_message_bytes: 20000', 'server:', '  hostname: relay.clinic.example'].join('\n'));
  // The store exists, as it does once the relay has run.
  await withStore(box.storePath, async () => undefined);
});

afterEach(() => {
  box.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const sendmail = (args: string[], input: string) => runCli(['-c', box.configFile, 'sendmail', ...args], { input });

/** The command's own code in this process (a spawn costs seconds on a loaded machine): parse, read, check, enqueue. */
async function inProcess(args: string[], input: string): Promise<string> {
  let request;
  try {
    request = parseSendmailArgs(args);
  } catch (err) {
    throw new CliError(EXIT.USAGE, (err as Error).message);
  }
  return submit({ configFile: box.configFile, env: {} }, request, Readable.from([Buffer.from(input)]));
}

/** Everything in the queue: entries with their bodies as text. */
async function queued() {
  return withStore(box.storePath, async (store) => {
    const entries = await store.listQueue({});
    return Promise.all(entries.map(async (e) => ({ ...e, body: (await store.readBody(e.queueId))?.toString('utf8') ?? '' })));
  });
}

function expectRefused(res: CliResult, code: number, text: RegExp) {
  expect(res.code, res.stderr).toBe(code);
  expect(lines(res.stderr)).toHaveLength(1);
  expect(res.stderr).toMatch(text);
  expect(res.stdout).toBe('');
}

describe('sealrelay sendmail', { timeout: 60_000 }, () => {
  it('-t takes To, Cc and Bcc; Bcc is removed; LF becomes CRLF; From and Date are added; the stamp says "with local"', async () => {
    const res = await sendmail(['-t', '-F', 'Nightly Backup'], 'To: ann@example.org\nCc: Bob <bob@example.net>, carol@example.com\nBcc: hidden@example.com\nSubject: backup done\n\nall good\n');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout + res.stderr).toBe('');
    const [m, ...rest] = await queued();
    expect(rest).toEqual([]);
    expect(m!.sender).toBe(`${LOGIN}@relay.clinic.example`);
    expect(m!.recipients.map((r) => r.recipient)).toEqual(['ann@example.org', 'bob@example.net', 'carol@example.com', 'hidden@example.com']);
    expect(m!.body).not.toMatch(/hidden|^bcc:/im);
    expect(m!.body).not.toMatch(/[^\r]\n/);
    expect(m!.body).toMatch(/^Received: by relay\.clinic\.example \(SealRelay\) with local id \w+\r\n\t\(uid \d+ [^)]+\); /);
    expect(m!.body).toContain(`\r\nFrom: "Nightly Backup" <${LOGIN}@relay.clinic.example>\r\n`);
    expect(m!.body).toMatch(/\r\nDate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} \+0000\r\n/);
    expect(m!.body).toMatch(/\r\nMessage-ID: <[^>]+@relay\.clinic\.example>\r\n\r\nall good\r\n$/);
    // Queued as every submission is: one queued event per recipient in the enqueue's transaction, the submitter named.
    const events = await withStore(box.storePath, (s) => s.listEvents({ limit: 100 }));
    expect(events.map((e) => [e.type, e.queueId, e.recipient])).toEqual(m!.recipients.map((r) => ['queued', m!.queueId, r.recipient]));
    const db = new Database(box.storePath, { readonly: true });
    expect(db.prepare('SELECT auth_user, client_ip FROM messages').get()).toEqual({ auth_user: `local:${LOGIN}`, client_ip: null });
    db.close();
  });

  it('without -i a lone dot ends the message and the rest is not read; with -i or -oi it is data', async () => {
    const text = 'Subject: dots\n\nbefore\n.\nafter\n';
    expect((await sendmail(['-oi', 'c@example.org'], text)).code).toBe(0);
    await inProcess(['a@example.org'], text);
    await inProcess(['-i', 'b@example.org'], text);
    const bodies = Object.fromEntries((await queued()).map((m) => [m.recipients[0]!.recipient, m.body]));
    expect(bodies['a@example.org']).toMatch(/\r\n\r\nbefore\r\n$/);
    expect(bodies['b@example.org']).toMatch(/\r\n\r\nbefore\r\n\.\r\nafter\r\n$/);
    expect(bodies['c@example.org']).toMatch(/\r\n\r\nbefore\r\n\.\r\nafter\r\n$/);
  });

  it('-f sets the envelope sender (From in the message is left as written); -v prints the queue id', async () => {
    const res = await sendmail(['-v', '-f', 'billing@clinic.example', 'a@example.org'], 'From: Billing <billing@clinic.example>\nSubject: x\n\nhi\n');
    expect(res.code, res.stderr).toBe(0);
    const [m] = await queued();
    expect(res.stderr).toBe(`sendmail: queued as ${m!.queueId}\n`);
    expect(m!.sender).toBe('billing@clinic.example');
    expect(m!.body).toContain('\r\nFrom: Billing <billing@clinic.example>\r\n');
    expect(m!.body.match(/^From:/gm)).toHaveLength(1);
  });

  it('-fsender, -r and -f "<>" (null sender) are read as sendmail reads them; ignored options change nothing', async () => {
    await inProcess(['-fa@clinic.example', '-odi', '-oem', '-B8BITMIME', 'x@example.org'], 'hi\n');
    await inProcess(['-r', 'b@clinic.example', 'y@example.org'], 'hi\n');
    await inProcess(['-f', '<>', 'z@example.org'], 'hi\n');
    const senders = Object.fromEntries((await queued()).map((m) => [m.recipients[0]!.recipient, m.sender]));
    expect(senders).toEqual({ 'x@example.org': 'a@clinic.example', 'y@example.org': 'b@clinic.example', 'z@example.org': '' });
  });

  // Each refused before anything is queued, with one line on stderr and a sysexits code.
  const refusals: [string, string[], string, number, RegExp][] = [
    ['a header injected through -f', ['-f', 'a@clinic.example\r\nBcc: victim@example.org', 'x@example.org'], 'hi\n', 64, /-f: the sender may not hold control characters/],
    ['a header injected through -F', ['-F', 'Ann\nBcc: victim@example.org', 'x@example.org'], 'hi\n', 64, /-F: the full name may not hold control characters/],
    ['a malformed -f', ['-f', 'not an address', 'x@example.org'], 'hi\n', 64, /-f: "not an address" is not a valid address/],
    ['no recipients', [], 'hi\n', 64, /no recipients: name them after the options, or use -t/],
    ['-t and no address in the header', ['-t'], 'Subject: x\n\nhi\n', 65, /no recipients: the message has no To, Cc or Bcc address/],
    ['a malformed recipient', ['a@@example.org'], 'hi\n', 64, /recipient "a@@example.org" is not a valid address/],
    ['a local name without a domain', ['root'], 'hi\n', 64, /recipient "root" has no domain/],
    ['an unroutable domain', ['a@localhost'], 'hi\n', 64, /localhost is not a mail domain/],
    ['a malformed To with -t', ['-t'], 'To: a@b@example.org\n\nhi\n', 65, /To\/Cc\/Bcc address "a@b@example\.org" is not a valid address/],
    ['a NUL byte', ['x@example.org'], 'Subject: x\n\nnul\0here\n', 65, /holds a NUL byte/],
    ['a bare CR', ['x@example.org'], 'Subject: x\n\nsmuggle\r.\r\n', 65, /bare CR/],
    ['a message over ingress.max_message_bytes', ['x@example.org'], `Subject: big\n\n${'0123456789abcdef\n'.repeat(2000)}`, 65, /larger than 20000 bytes \(ingress\.max_message_bytes\)/],
    ['-bs (SMTP on stdin)', ['-bs'], '', 64, /-bs: not supported: an SMTP dialogue on stdin is not offered/],
    ['-bd (daemon)', ['-bd'], '', 64, /-bd: not supported/],
    ['-q (queue run)', ['-q'], '', 64, /-q: queue runs are the running relay's job/],
  ];
  // A real process for a few (exit code and the one line on stderr); the same code in-process for the rest.
  const spawned = new Set(['a header injected through -f', 'a NUL byte', '-bs (SMTP on stdin)', 'no recipients']);
  for (const [what, args, input, code, text] of refusals) {
    it(`refuses ${what} (exit ${code})`, async () => {
      if (spawned.has(what)) expectRefused(await sendmail(args, input), code, text);
      else {
        const err = await inProcess(args, input).then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(CliError);
        expect((err as CliError).exitCode).toBe(code);
        expect((err as CliError).message).toMatch(text);
      }
      expect(await queued()).toEqual([]);
    });
  }

  it('reads the oversized message only up to the limit', async () => {
    // 64 MB offered; the command stops at 20 kB and exits: it does not wait for (or hold) the rest.
    const res = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = execFile(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '-c', box.configFile, 'sendmail', 'x@example.org'], (err, _out, stderr) =>
        done({ code: child.exitCode, stderr }),
      );
      child.stdin!.on('error', () => undefined);
      const line = Buffer.from(`${'x'.repeat(1023)}\n`);
      let left = 64 * 1024;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!child.stdin!.write(line)) return void child.stdin!.once('drain', pump);
        }
        child.stdin!.end();
      };
      child.stdin!.once('error', () => (left = 0));
      pump();
    });
    expect(res.code, res.stderr).toBe(65);
    expect(res.stderr).toMatch(/larger than 20000 bytes/);
    expect(await queued()).toEqual([]);
  });

  it('`sendmail -bp`, `sealrelay mailq` and `queue list` print the same listing', async () => {
    await inProcess(['-t'], 'To: a@example.org\n\nhi\n');
    const [bp, mailq, list] = await Promise.all([sendmail(['-bp'], ''), runCli(['-c', box.configFile, 'mailq']), runCli(['-c', box.configFile, 'queue', 'list'])]);
    expect(bp.code, bp.stderr).toBe(0);
    expect(lines(bp.stdout)[0]?.split(/\s{2,}/)).toEqual(['ID', 'AGE', 'SIZE', 'SENDER', 'RECIPIENTS', 'STATE', 'NEXT TRY', 'LAST ERROR']);
    expect(bp.stdout).toMatch(new RegExp(`^\\w+\\s+\\d+s\\s+\\d+ B\\s+${LOGIN}@relay\\.clinic\\.example\\s+a@example\\.org\\s+queued\\s+now`, 'm'));
    // The AGE column may tick between the runs (and its width with it); everything else is the same text.
    const same = (text: string) => text.replace(/\d+s\b/g, 'Ns').replace(/ +/g, ' ');
    expect(same(mailq.stdout)).toBe(same(bp.stdout));
    expect(same(list.stdout)).toBe(same(bp.stdout));
  });

  it('with store.encryption configured, the queued body is sealed at rest as the relay seals it', async () => {
    const keyFile = join(box.dir, 'body.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
    const config = testConfig({ store: { path: box.storePath, encryption: { keys: [{ id: 'k1', file: keyFile }], current_key: 'k1' } } });
    const configFile = writeConfigFile(box.dir, config);
    const marker = 'PHI-MARKER-7f3a9c';
    await submit({ configFile, env: {} }, parseSendmailArgs(['a@example.org']), Readable.from([Buffer.from(`Subject: x\n\n${marker}\n`)]));
    for (const file of [box.storePath, `${box.storePath}-wal`].filter((f) => existsSync(f))) expect(readFileSync(file).includes(marker), file).toBe(false);
    const store = new SqliteStore(box.storePath, { bodyKeys: loadBodyKeyring(config.store, {}) });
    try {
      expect(await store.bodyKeysInUse()).toEqual([{ keyId: 'k1', parts: 1 }]);
      const [entry] = await store.listQueue({});
      expect((await store.readBody(entry!.queueId))?.toString()).toContain(marker);
    } finally {
      await store.close();
    }
  });

  it('works as `sendmail` and `mailq` links (the name it is called by), with SEALRELAY_CONFIG or -C naming the config', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'sealrelay-links-'));
    dirs.push(bin);
    symlinkSync(join(ROOT, 'bin/sealrelay.js'), join(bin, 'sendmail'));
    symlinkSync(join(ROOT, 'bin/sealrelay.js'), join(bin, 'mailq'));
    const run = (file: string, args: string[], input: string, env: Record<string, string> = {}) =>
      new Promise<CliResult>((done) => {
        const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEALRELAY_')));
        // Executed as a program, as PHP and cron run it (the #! line starts node).
        const child = execFile(join(bin, file), args, { env: { ...inherited, ...env }, cwd: bin }, (err, stdout, stderr) =>
          done({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr }),
        );
        child.stdin!.end(input);
      });
    const [viaEnv, viaC] = await Promise.all([
      run('sendmail', ['-t', '-i'], 'To: env@example.org\nSubject: link\n\nhi\n', { SEALRELAY_CONFIG: box.configFile }),
      run('sendmail', ['-C', box.configFile, 'c@example.org'], 'Subject: link\n\nhi\n'),
    ]);
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaC.code, viaC.stderr).toBe(0);
    expect((await queued()).map((m) => m.recipients[0]!.recipient).sort()).toEqual(['c@example.org', 'env@example.org']);
    const mailq = await run('mailq', [], '', { SEALRELAY_CONFIG: box.configFile });
    expect(mailq.code, mailq.stderr).toBe(0);
    expect(mailq.stdout).toMatch(/^2 messages, 2 recipients, \d+ KB$/m);
  }, 90_000);
});

describe('sealrelay sendmail when the store cannot take the message', { timeout: 60_000 }, () => {
  const message = 'Subject: must not be lost\n\nhi\n';

  it('a missing store directory: 75, one line, nothing created', async () => {
    rmSync(join(box.dir, 'data'), { recursive: true });
    expectRefused(await sendmail(['a@example.org'], message), 75, /^sealrelay: store unavailable: no store at .*; nothing was queued\n$/);
    expect(await import('node:fs').then((fs) => fs.existsSync(join(box.dir, 'data')))).toBe(false);
  });

  it('a store of a newer schema: 75, and it is left untouched', async () => {
    const db = new Database(box.storePath);
    db.pragma('user_version = 999');
    db.close();
    expectRefused(await sendmail(['a@example.org'], message), 75, /store unavailable: database schema version 999 is newer than this SealRelay/);
    const check = new Database(box.storePath, { readonly: true });
    expect(check.prepare('SELECT count(*) AS n FROM messages').get()).toEqual({ n: 0 });
    expect(check.prepare('SELECT count(*) AS n FROM body_parts').get()).toEqual({ n: 0 });
    check.close();
  });

  it('a store locked by another writer for longer than the busy timeout: 75 and nothing half queued', async () => {
    const holder = new Database(box.storePath);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      expectRefused(await sendmail(['a@example.org'], message), 75, /store unavailable: database is locked; nothing was queued/);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    const check = new Database(box.storePath, { readonly: true });
    for (const table of ['messages', 'recipients', 'body_parts', 'events']) expect(check.prepare(`SELECT count(*) AS n FROM ${table}`).get(), table).toEqual({ n: 0 });
    check.close();
  });
});
