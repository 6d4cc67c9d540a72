// `sealrelay log`: every filter flag, the table's TLS/MX/SMTP columns, NDJSON,
// usage errors (exit 64) for a bad --outcome, --since or --limit, and --follow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { spawn } from 'node:child_process';
import { claimAll, DAY, lines, makeSandbox, message, MINUTE, record, ROOT, runCli, withStore, HOUR, type Sandbox } from './harness.ts';

const now = Date.now();
let box: Sandbox;

// Five records over four messages:
//   MSGA.0 alice   attempt 1 deferred  2 days ago (greylisted, TLS 1.2 unverified)
//   MSGA.1 bob     attempt 1 delivered 2 days ago (TLS 1.3 to mx.example.org:2525)
//   MSGB.0 carol   attempt 1 bounced   30 minutes ago (domain rule, forced)
//   MSGA.0 alice   attempt 2 delivered 10 minutes ago
//   MSGC.0 dave    attempt 1 deferred  5 minutes ago (connection refused, no TLS)
//   MSGD.0 eve     attempt 1 dropped   1 minute ago (tls-exclusive, no STARTTLS)
beforeAll(async () => {
  box = makeSandbox();
  await withStore(box.storePath, async (store) => {
    await store.enqueue(message('MSGA', ['alice@example.com', 'bob@example.org'], now - 3 * DAY));
    await store.enqueue(message('MSGB', ['carol@example.net'], now - HOUR));
    await store.enqueue(message('MSGC', ['dave@example.com'], now - HOUR));
    await store.enqueue(message('MSGD', ['eve@bulk.example'], now - HOUR));
    await claimAll(store);
    await store.finish(
      [
        record({
          queueId: 'MSGA', seq: 0, recipient: 'alice@example.com', attempt: 1, at: now - 2 * DAY, outcome: 'deferred',
          fields: {
            tls: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', bits: 128, authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT', peerCertSubject: null, peerCertFingerprint256: null },
            smtp: { code: 451, enhanced: '4.7.1', response: '451 4.7.1 Greylisted, please try again later' },
          },
        }),
        record({
          queueId: 'MSGA', seq: 1, recipient: 'bob@example.org', attempt: 1, at: now - 2 * DAY, outcome: 'delivered',
          fields: { mx: { host: 'mx.example.org', ip: '127.0.0.1', port: 2525, preference: 10 } },
        }),
        record({
          queueId: 'MSGB', seq: 0, recipient: 'carol@example.net', attempt: 1, at: now - 30 * MINUTE, outcome: 'bounced',
          fields: {
            decision: { rule: 'domain:example.net', mode: 'forced', verification: 'ca', fallbackChain: [], reasons: ['domain rule'] },
            smtp: { code: 550, enhanced: '5.1.1', response: '550 5.1.1 <carol@example.net>: Recipient address rejected: User unknown in virtual mailbox table' },
          },
        }),
        record({
          queueId: 'MSGC', seq: 0, recipient: 'dave@example.com', attempt: 1, at: now - 5 * MINUTE, outcome: 'deferred',
          fields: { method: 'none', mx: null, tls: null, starttlsOffered: null, smtp: { code: null, enhanced: null, response: 'connect ECONNREFUSED 127.0.0.1:25' } },
        }),
        record({
          queueId: 'MSGD', seq: 0, recipient: 'eve@bulk.example', attempt: 1, at: now - MINUTE, outcome: 'dropped',
          fields: {
            method: 'none', tls: null, starttlsOffered: false,
            decision: { rule: 'default', mode: 'tls-exclusive', verification: 'none', fallbackChain: [], reasons: ['bulk'] },
            smtp: { code: null, enhanced: null, response: 'no STARTTLS offered; tls-exclusive drops' },
          },
        }),
      ],
      [
        { queueId: 'MSGA', seq: 0, outcome: 'deferred', error: '451 4.7.1 Greylisted', nextAttemptAt: now - 1000 },
        { queueId: 'MSGA', seq: 1, outcome: 'delivered', error: null },
        { queueId: 'MSGB', seq: 0, outcome: 'bounced', error: '550 5.1.1 User unknown' },
        { queueId: 'MSGC', seq: 0, outcome: 'deferred', error: 'connect ECONNREFUSED', nextAttemptAt: now + HOUR },
        { queueId: 'MSGD', seq: 0, outcome: 'dropped', error: 'no STARTTLS' },
      ],
    );
    const [again] = await claimAll(store);
    expect(again?.queueId).toBe('MSGA');
    await store.finish(
      [record({ queueId: 'MSGA', seq: 0, recipient: 'alice@example.com', attempt: 2, at: now - 10 * MINUTE, outcome: 'delivered' })],
      [{ queueId: 'MSGA', seq: 0, outcome: 'delivered', error: null }],
    );
  });
});

afterAll(() => box.cleanup());

const log = (...args: string[]) => runCli(['-c', box.configFile, 'log', ...args]);

async function jsonRecords(...args: string[]): Promise<DeliveryRecord[]> {
  const res = await log('--json', ...args);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  return lines(res.stdout).map((l) => JSON.parse(l) as DeliveryRecord);
}

const ids = (records: DeliveryRecord[]) => records.map((r) => `${r.queueId}.${r.seq}#${r.attempt}`);

describe('sealrelay log', () => {
  it('prints every record as a table, oldest first: time, id, attempt, recipient, outcome, method, TLS and verdict, SMTP reply', async () => {
    const res = await log();
    expect(res.code).toBe(0);
    const [header, ...rows] = lines(res.stdout);
    expect(header?.split(/\s{2,}/)).toEqual(['TIME', 'ID', 'ATT', 'RECIPIENT', 'OUTCOME', 'METHOD', 'TLS', 'SMTP']);
    expect(rows).toHaveLength(6);
    expect(rows.map((r) => r.split(/\s+/)[1])).toEqual(['MSGA.0', 'MSGA.1', 'MSGB.0', 'MSGA.0', 'MSGC.0', 'MSGD.0']);
    const [aliceDeferred, bob, carol, , dave] = rows;
    expect(aliceDeferred).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+MSGA\.0\s+1\s+alice@example\.com\s+deferred\s+tls\s+TLSv1\.2 fail\s+451 4\.7\.1 Greylisted, .*…$/);
    expect(bob).toMatch(/bob@example\.org\s+delivered\s+tls\s+TLSv1\.3 ok\s+250 2\.0\.0 Ok: queued as 4ABC$/);
    // Replies are cut to fit 120 columns, with an ellipsis (--wide has them whole).
    expect(carol).toMatch(/bounced\s+tls\s+TLSv1\.3 ok\s+550 5\.1\.1 <carol@example\.net>: \S.*…$/);
    for (const row of [header!, ...rows]) expect(row.length).toBeLessThanOrEqual(120);
    expect(dave).toMatch(/deferred\s+none\s+-\s+connect ECONNREFUSED 127\.0\.0\.1:25$/);
  });

  it('--wide adds MX, cipher and verdict, rule/mode, and cuts nothing', async () => {
    const res = await log('--wide');
    expect(res.code).toBe(0);
    const [header, ...rows] = lines(res.stdout);
    expect(header?.split(/\s{2,}/)).toEqual(['TIME', 'ID', 'ATT', 'RECIPIENT', 'OUTCOME', 'METHOD', 'MX', 'TLS', 'SMTP', 'RULE/MODE']);
    const [aliceDeferred, bob, carol, , dave] = rows;
    expect(aliceDeferred).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+MSGA\.0\s+1\s+alice@example\.com\s+deferred\s+tls\s+mx\.example\.com\s/);
    expect(aliceDeferred).toContain('TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 128b verify=fail(DEPTH_ZERO_SELF_SIGNED_CERT)');
    expect(aliceDeferred).toContain('451 4.7.1 Greylisted, please try again later');
    expect(aliceDeferred).toMatch(/default\/opportunistic$/);
    expect(bob).toContain('mx.example.org:2525');
    expect(bob).toContain('TLSv1.3 TLS_AES_256_GCM_SHA384 256b verify=ok');
    expect(bob).toContain('250 2.0.0 Ok: queued as 4ABC');
    expect(carol).toMatch(/550 5\.1\.1 <carol@example\.net>: Recipient address rejected: User unknown in virtual mailbox table\s+domain:example\.net\/forced$/);
    expect(dave).toMatch(/deferred\s+none\s+-\s+-\s+connect ECONNREFUSED 127\.0\.0\.1:25\s+default\/opportunistic$/);
  });

  it('--json prints one DeliveryRecord per line, unchanged', async () => {
    const records = await jsonRecords();
    expect(records).toHaveLength(6);
    const bob = records.find((r) => r.recipient === 'bob@example.org');
    expect(bob?.tls).toEqual({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, authorizationError: null, peerCertSubject: 'CN=mx.example.org', peerCertFingerprint256: 'AA:BB' });
    expect(bob?.mx).toEqual({ host: 'mx.example.org', ip: '127.0.0.1', port: 2525, preference: 10 });
  });

  it('--message matches the queue id or the Message-ID with or without <>', async () => {
    expect(ids(await jsonRecords('--message', 'MSGA'))).toEqual(['MSGA.0#1', 'MSGA.1#1', 'MSGA.0#2']);
    expect(ids(await jsonRecords('--message', 'msgb@clinic.example'))).toEqual(['MSGB.0#1']);
  });

  it('--recipient (case-insensitive) and --domain', async () => {
    expect(ids(await jsonRecords('--recipient', 'ALICE@example.com'))).toEqual(['MSGA.0#1', 'MSGA.0#2']);
    expect(ids(await jsonRecords('--domain', 'example.com'))).toEqual(['MSGA.0#1', 'MSGA.0#2', 'MSGC.0#1']);
  });

  it('--outcome, alone and combined with another filter', async () => {
    expect(ids(await jsonRecords('--outcome', 'bounced'))).toEqual(['MSGB.0#1']);
    expect(ids(await jsonRecords('--outcome', 'delivered', '--domain', 'example.com'))).toEqual(['MSGA.0#2']);
  });

  it('--since takes a duration or an ISO date', async () => {
    expect(ids(await jsonRecords('--since', '1h'))).toEqual(['MSGB.0#1', 'MSGA.0#2', 'MSGC.0#1', 'MSGD.0#1']);
    const iso = new Date(now - 15 * MINUTE).toISOString();
    expect(ids(await jsonRecords('--since', iso))).toEqual(['MSGA.0#2', 'MSGC.0#1', 'MSGD.0#1']);
  });

  it('--limit keeps the newest records, still printed oldest first', async () => {
    expect(ids(await jsonRecords('--limit', '2'))).toEqual(['MSGC.0#1', 'MSGD.0#1']);
  });

  it('says so when nothing matches', async () => {
    const res = await log('--recipient', 'nobody@example.com');
    expect(res).toMatchObject({ code: 0, stdout: 'no delivery records match\n' });
  });

  it.each([
    [['--outcome', 'lost'], /--outcome.*'lost' is invalid.*delivered, deferred, bounced, dropped, portal-notified/],
    [['--since', 'yesterday'], /--since.*'yesterday' is invalid.*30m, 1h, 2d/],
    [['--limit', '0'], /--limit.*'0' is invalid/],
  ])('rejects %j with exit 64', async (args, message) => {
    const res = await log(...args);
    expect(res.code).toBe(64);
    expect(res.stderr).toMatch(message);
    expect(res.stdout).toBe('');
  });

  it('fails with exit 1 when the store does not exist, rather than creating it', async () => {
    const empty = makeSandbox();
    try {
      const res = await runCli(['-c', empty.configFile, 'log']);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`no store at ${empty.storePath}`);
    } finally {
      empty.cleanup();
    }
  });
});

describe('sealrelay log on a 120-column terminal', () => {
  // Long values from outside: a long address, a long MX name, a long multi-line reply
  // carrying a terminal escape sequence, a long certificate error and rule name.
  const longRecipient = `${'patient-records-department-'.repeat(3)}x@${'very-long-subdomain.'.repeat(4)}hospital.example.org`;
  const longMx = `${'mx-inbound-filtering-cluster-07.'.repeat(3)}protection.example.net`;
  const longReply = `550-5.7.1 \u001b[31mmessage refused\u001b[0m by policy:\r\n550-5.7.1 ${'the sending domain is not on the list of partners for this mailbox; '.repeat(4)}\r\n550 5.7.1 see https://help.example.net/550`;
  const stored = [
    record({
      queueId: '0Gb3kZ5mTqR7xw2F', seq: 12, recipient: longRecipient, attempt: 17, at: now - HOUR, outcome: 'bounced',
      fields: {
        method: 'smime+tls',
        mx: { host: longMx, ip: '2001:db8::25', port: 2525, preference: 10 },
        tls: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384', bits: 256, authorized: false, authorizationError: `Hostname/IP does not match certificate's altnames: Host: ${longMx}. is not in the cert's altnames`, peerCertSubject: null, peerCertFingerprint256: null },
        smtp: { code: 550, enhanced: '5.7.1', response: longReply },
        decision: { rule: `domain:${'very-long-subdomain.'.repeat(4)}hospital.example.org`, mode: 'forced', verification: 'ca', fallbackChain: ['smime'], reasons: ['partner'] },
      },
    }),
    record({ queueId: '0Gb3kZ5mTqR7xw2G', seq: 0, recipient: 'short@example.com', attempt: 1, at: now - MINUTE, outcome: 'portal-notified', fields: { method: 'portal' } }),
  ];
  let wideBox: Sandbox;
  beforeAll(async () => {
    wideBox = makeSandbox();
    await withStore(wideBox.storePath, async (store) => {
      await store.enqueue(message('0Gb3kZ5mTqR7xw2F', [...Array.from({ length: 12 }, (_, i) => `r${i}@example.com`), longRecipient], now - 2 * HOUR));
      await store.enqueue(message('0Gb3kZ5mTqR7xw2G', ['short@example.com'], now - 2 * HOUR));
      await claimAll(store);
      await store.finish(stored, [
        { queueId: '0Gb3kZ5mTqR7xw2F', seq: 12, outcome: 'bounced', error: longReply },
        { queueId: '0Gb3kZ5mTqR7xw2G', seq: 0, outcome: 'portal-notified', error: null },
      ]);
    });
  });
  afterAll(() => wideBox.cleanup());
  const wideLog = (...args: string[]) => runCli(['-c', wideBox.configFile, 'log', ...args]);

  it('no line is longer than 120 characters; long values end with an ellipsis; no control character reaches the terminal', async () => {
    const res = await wideLog();
    expect(res.code).toBe(0);
    const all = lines(res.stdout);
    expect(all).toHaveLength(3);
    for (const line of all) expect(line.length).toBeLessThanOrEqual(120);
    const [, long, short] = all;
    // What identifies the record is whole; the address and the reply are cut.
    expect(long).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}0Gb3kZ5mTqR7xw2F\.12\s+17 {2}patient-\S*…\s+bounced\s+smime\+tls\s+TLSv1\.2 fail\s+550 5\.7\.1 \ufffd\[3\S*…$/);
    // Every row gives way to the longest: here a short address is cut too, never the id, outcome or method.
    expect(short).toMatch(/0Gb3kZ5mTqR7xw2G\.0\s+1\s+short@\S+\s+portal-notified\s+portal\s+TLSv1\.3 ok\s+250 2\.0\.0 \S+$/);
    // eslint-disable-next-line no-control-regex
    expect(res.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });

  it('--wide shows every value whole (the reply on one line, its escape sequences neutralised)', async () => {
    const res = await wideLog('--wide');
    expect(res.code).toBe(0);
    const [, long] = lines(res.stdout);
    expect(long).toContain(longRecipient);
    expect(long).toContain(`${longMx}:2525`);
    expect(long).toContain(`verify=fail(Hostname/IP does not match certificate's altnames: Host: ${longMx}. is not in the cert's altnames)`);
    // The reply's lines joined, its code said once.
    expect(long).toContain(`550 5.7.1 \ufffd[31mmessage refused\ufffd[0m by policy: ${'the sending domain is not on the list of partners for this mailbox; '.repeat(4).trim()} see https://help.example.net/550`);
    expect(long).toMatch(/domain:(very-long-subdomain\.){4}hospital\.example\.org\/forced$/);
    expect(long!.length).toBeGreaterThan(400);
    // eslint-disable-next-line no-control-regex
    expect(res.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });

  it('--json is unchanged: the records as stored, the reply with its CRLFs and escapes', async () => {
    const res = await wideLog('--json');
    expect(res.code).toBe(0);
    expect(lines(res.stdout).map((l) => JSON.parse(l) as DeliveryRecord)).toEqual(stored);
  });
});

describe('sealrelay log --follow', () => {
  /** `sealrelay log --follow …` as a process; `output()` is its stdout so far. */
  function spawnFollow(box: Sandbox, args: string[]) {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEALRELAY_')));
    const child = spawn(process.execPath, ['bin/sealrelay.js', '-c', box.configFile, 'log', '--follow', ...args], { cwd: ROOT, env: inherited });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const until = async (check: (text: string) => boolean, what: string) => {
      const deadline = Date.now() + 20_000;
      while (!check(out)) {
        if (Date.now() > deadline) throw new Error(`log --follow never printed ${what}; got:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    return { child, exited, until, output: () => out };
  }

  /** Settles a new message's one recipient with a record whose attempt started at `at`. */
  async function settle(box: Sandbox, queueId: string, recipient: string, at: number, outcome: 'delivered' | 'bounced' = 'delivered') {
    await withStore(box.storePath, async (store) => {
      await store.enqueue(message(queueId, [recipient], at));
      const [item] = (await claimAll(store)).filter((i) => i.queueId === queueId);
      await store.finish([record({ queueId, seq: item!.seq, recipient, attempt: 1, at, outcome })], [{ queueId, seq: item!.seq, outcome, error: null }]);
    });
  }

  it('prints the newest records, then each record as it is written (a late attempt too), until Ctrl-C (exit 0)', async () => {
    const box = makeSandbox();
    try {
      for (let i = 0; i < 12; i++) await settle(box, `OLD${String(i).padStart(2, '0')}`, `p${i}@old.example`, now - (12 - i) * MINUTE);
      const f = spawnFollow(box, []);
      await f.until((t) => t.includes('OLD11.0'), 'the backlog');
      // tail's default: the newest ten, under one header.
      const first = lines(f.output());
      expect(first[0]?.split(/\s{2,}/)[0]).toBe('TIME');
      expect(first.slice(1).map((l) => l.split(/\s+/)[1])).toEqual(Array.from({ length: 10 }, (_, i) => `OLD${String(i + 2).padStart(2, '0')}.0`));

      await settle(box, 'NEW1', 'new@live.example', Date.now());
      // An attempt that started an hour ago and is written only now still shows.
      await settle(box, 'LATE', 'late@live.example', Date.now() - HOUR, 'bounced');
      await f.until((t) => t.includes('LATE.0'), 'the new records');
      const rows = lines(f.output()).slice(11);
      expect(rows.map((l) => l.split(/\s+/)[1])).toEqual(['NEW1.0', 'LATE.0']);
      expect(lines(f.output()).filter((l) => l.startsWith('TIME'))).toHaveLength(1);

      f.child.kill('SIGINT');
      expect(await f.exited).toBe(0);
    } finally {
      box.cleanup();
    }
  }, 60_000);

  it('--json with a filter streams only matching records, one JSON object per line', async () => {
    const box = makeSandbox();
    try {
      await settle(box, 'SEED', 'seed@quiet.example', now - MINUTE);
      await settle(box, 'FIRST', 'z@watched.example', now - MINUTE);
      const f = spawnFollow(box, ['--json', '--domain', 'watched.example']);
      // Its backlog printed: the follower has read the store once, and left SEED out.
      await f.until((t) => t.includes('FIRST'), 'the matching backlog');
      await settle(box, 'SKIP', 'x@other.example', Date.now());
      await settle(box, 'WANT', 'y@watched.example', Date.now());
      await f.until((t) => t.includes('WANT'), 'the watched record');
      const got = lines(f.output()).map((l) => JSON.parse(l) as DeliveryRecord);
      expect(got.map((r) => [r.queueId, r.recipient])).toEqual([
        ['FIRST', 'z@watched.example'],
        ['WANT', 'y@watched.example'],
      ]);
      f.child.kill('SIGTERM');
      expect(await f.exited).toBe(0);
    } finally {
      box.cleanup();
    }
  }, 60_000);
});
