// `sealrelay audit` and `sealrelay audit verify`, run as an operator would: a CLI
// read that shows recipients (log, queue) leaves an entry naming the OS user; the
// trail lists as a table, NDJSON or CSV, filtered; verify exits 0 with the head,
// 1 naming the first bad entry once a row is edited or deleted with raw SQL, and 1
// when the head kept from before is gone; bad arguments exit 64 and change nothing.
import { userInfo } from 'node:os';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/events/audit/entry.ts';
import { lines, makeSandbox, message, runCli, withStore, type Sandbox } from './harness.ts';

let box: Sandbox;
const OS_USER = userInfo().username;

beforeEach(async () => {
  box = makeSandbox();
  await withStore(box.storePath, (store) => store.enqueue(message('QA', ['alice@example.com', 'bob@example.org'], Date.now())));
});
afterEach(() => box.cleanup());

const cli = (...args: string[]) => runCli(['-c', box.configFile, ...args]);
const trail = () => withStore(box.storePath, (s) => s.listAudit({ limit: 1000 }));

/** Raw SQL on the store file, as someone who can write it (the append-only triggers dropped first). */
function tamper(sql: string): void {
  const raw = new Database(box.storePath);
  raw.exec('DROP TRIGGER IF EXISTS audit_trail_no_update; DROP TRIGGER IF EXISTS audit_trail_no_delete;');
  raw.exec(sql);
  raw.close();
}

describe('CLI reads and actions are audited', () => {
  it('`sealrelay log` leaves a log.read entry naming the OS user and the filter', async () => {
    const res = await cli('log', '--recipient', 'bob@example.org');
    expect(res.code).toBe(0);
    const [entry, ...rest] = await trail();
    expect(rest).toEqual([]);
    expect(entry).toMatchObject({ seq: 1, actorKind: 'os-user', actorName: OS_USER, action: 'log.read', target: 'recipient=bob@example.org', detail: '0 records', ip: null });
  });

  it('queue list and show, and a hold, each leave their entry', async () => {
    expect((await cli('queue', 'list')).code).toBe(0);
    expect((await cli('queue', 'show', 'QA')).code).toBe(0);
    expect((await cli('queue', 'hold', 'QA')).code).toBe(0);
    expect((await trail()).map((e) => [e.action, e.target, e.actorName])).toEqual([
      ['queue.read', 'list', OS_USER],
      ['queue.read', 'QA', OS_USER],
      ['queue.hold', 'QA', OS_USER],
    ]);
  });
});

describe('sealrelay audit', () => {
  it('lists the trail as a table, and records that it was read', async () => {
    await cli('log');
    const res = await cli('audit', '--since', '1h');
    expect(res.code).toBe(0);
    const [header, row, ...rest] = lines(res.stdout);
    expect(rest).toEqual([]);
    expect(header?.split(/\s{2,}/)).toEqual(['SEQ', 'TIME', 'ACTOR', 'IP', 'ACTION', 'TARGET', 'DETAIL']);
    expect(row).toMatch(new RegExp(`^\\s*1\\s+\\S+Z\\s+os-user:${OS_USER}\\s+-\\s+log\\.read\\s+all\\s+0 records$`));
    expect((await trail()).at(-1)).toMatchObject({ seq: 2, action: 'audit.read', actorName: OS_USER });
  });

  it('--format json prints entries with their hashes; --actor and --action filter', async () => {
    await cli('log');
    await cli('queue', 'list');
    const res = await cli('audit', '--format', 'json', '--action', 'queue.read', '--actor', OS_USER);
    expect(res.code).toBe(0);
    const entries = lines(res.stdout).map((l) => JSON.parse(l) as AuditEntry);
    expect(entries.map((e) => [e.seq, e.action])).toEqual([[2, 'queue.read']]);
    expect(entries[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(lines((await cli('audit', '--format', 'json', '--actor', 'nobody')).stdout)).toEqual([]);
  });

  it('--format csv has a header, one row per entry, and defuses cells a spreadsheet would run', async () => {
    await withStore(box.storePath, (s) => s.appendAudit({ actor: { kind: 'token', name: '=cmd|calc' }, action: 'api.request', target: 'GET /api/v1/log, "x"' }));
    const res = await cli('audit', '--format', 'csv');
    expect(res.code).toBe(0);
    const [header, row] = res.stdout.split('\r\n');
    expect(header).toBe('seq,at,actor_kind,actor_name,ip,action,target,detail,prev,hash');
    expect(row).toMatch(/^1,\S+Z,token,'=cmd\|calc,,api\.request,"GET \/api\/v1\/log, ""x""",,0{64},[0-9a-f]{64}$/);
  });

  it('bad arguments exit 64 and record nothing', async () => {
    for (const args of [['--action', 'body.read'], ['--since', 'yesterday'], ['--format', 'xml'], ['verify', '--expect-head', 'nonsense']]) {
      const res = await cli('audit', ...args);
      expect(res.code, args.join(' ')).toBe(64);
    }
    expect(await trail()).toEqual([]);
  });
});

describe('sealrelay audit verify', () => {
  it('exit 0 and the head on an intact trail; exit 1 naming the entry once a row is edited', async () => {
    await cli('log');
    await cli('queue', 'list');
    await cli('queue', 'show', 'QA');
    const ok = await cli('audit', 'verify');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('audit trail intact: 3 entries');
    const head = /^head (\d+:[0-9a-f]{64})$/m.exec(ok.stdout)?.[1];
    expect(head).toMatch(/^3:/);

    tamper(`UPDATE audit_trail SET target = 'QB' WHERE seq = 2`);
    const bad = await cli('audit', 'verify');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('audit trail BROKEN at entry 2');
    expect(bad.stderr).toContain('broken at entry 2');
  });

  it('exit 1 when a row is deleted', async () => {
    await cli('log');
    await cli('log');
    await cli('log');
    tamper(`DELETE FROM audit_trail WHERE seq = 2`);
    const res = await cli('audit', 'verify');
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/BROKEN at entry 2: entry 2 is missing/);
  });

  it('the newest rows deleted pass alone, and fail against the head kept from before', async () => {
    await cli('log');
    await cli('log');
    const head = /^head (\S+)$/m.exec((await cli('audit', 'verify')).stdout)?.[1];
    expect(head).toBeDefined();
    tamper(`DELETE FROM audit_trail WHERE seq = 2`);
    expect((await cli('audit', 'verify')).code).toBe(0);
    const res = await cli('audit', 'verify', '--expect-head', head!);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('BROKEN at entry 2');
  });

  it('an empty trail verifies', async () => {
    const res = await cli('audit', 'verify');
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('audit trail is empty');
  });
});
