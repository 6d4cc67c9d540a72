// A full data disk. The relay's store lives on a real tmpfs of a few MiB (needs
// root, as the project's machines and CI run); the test fills it with a file and
// removes the file again, so the relay's writes fail with the kernel's ENOSPC
// (SQLITE_FULL from SQLite) and then succeed. (SQLite's max_page_count would be a
// gentler way to make the database "full", but it holds only for the connection
// that sets it: a test's own connection cannot put it on the relay's.)
//
// What the relay must do: answer 452 4.3.1 Insufficient system storage (RFC 3463,
// Postfix's words) when the commit finds no room; refuse at MAIL FROM already when
// free space is under ingress.queue_minfree_bytes plus the SIZE declared; take mail
// again once space is back; and lose nothing it had accepted.
import { mkdtempSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { killIfRunning, spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { queueIdOf, startTestRelay, testConfig, type TestRelay } from '../helpers/relay.ts';
import { mountSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';

const MiB = 1024 * 1024;

type Outcome = { ok: true; response: string } | { ok: false; command: string; response: string };

/** One submission with nodemailer; a refusal is an outcome (with the command it answered), not a throw. */
async function attempt(port: number, opts: { to: string; messageId: string; bodyBytes?: number; size?: number }): Promise<Outcome> {
  const conn = new SMTPConnection({ host: '127.0.0.1', port, tls: { rejectUnauthorized: false }, connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 10_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    const line = `${'x'.repeat(76)}\r\n`;
    const body = `Message-ID: ${opts.messageId}\r\nFrom: <app@clinic.test>\r\nTo: <${opts.to}>\r\nSubject: disk\r\n\r\n${line.repeat(Math.ceil((opts.bodyBytes ?? 100) / line.length))}`;
    return await new Promise<Outcome>((resolve) =>
      conn.send({ from: 'app@clinic.test', to: [opts.to], ...(opts.size ? { size: opts.size } : {}) }, body, (err, info) =>
        resolve(err ? { ok: false, command: (err as { command?: string }).command ?? '', response: (err as { response?: string }).response ?? err.message } : { ok: true, response: (info as { response: string }).response }),
      ),
    );
  } finally {
    conn.quit();
  }
}

const messageIdsAt = (mx: StartedMx) => mx.received.map((m) => /^Message-ID: (<[^>]+>)/im.exec(m.raw.toString())?.[1]);

describe('a full data disk', () => {
  let disk: SmallDisk | undefined;
  let relay: RelayProcess | undefined;
  let mx: StartedMx | undefined;
  afterEach(async () => {
    await killIfRunning(relay);
    await mx?.close();
    disk?.unmount();
    relay = mx = disk = undefined;
  });

  it('a commit that finds no room is 452 4.3.1; once space is back the message is taken, and what was queued before is delivered', async () => {
    disk = mountSmallDisk(16 * MiB);
    // The MX is down at first: the message accepted before the disk fills waits in the queue through it.
    const down = await startMx('plain', { name: 'mx.full.test' });
    const mxPort = down.port;
    await down.close();
    const config = testConfig({
      store: { path: join(disk.dir, 'queue.db') },
      // Off, so that the commit itself meets the full disk (the MAIL FROM check has its own tests below).
      ingress: { queue_minfree_bytes: 0 },
      // A delivery whose settlement meets the full disk stays claimed until its lease expires: keep that short.
      delivery: { routes: { 'full.test': `127.0.0.1:${mxPort}` }, retry: { first_seconds: 0.2, max_seconds: 0.5 }, lease_seconds: 3 },
      logging: { level: 'info' },
    });
    relay = await spawnRelay(writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-full-')), config));
    const port = relay.ports.starttls!;

    const before = await attempt(port, { to: 'pat@full.test', messageId: '<before@full.test>' });
    expect(before.ok, JSON.stringify(before)).toBe(true);
    const beforeId = queueIdOf((before as { response: string }).response);
    await relay.waitForLine((l) => l.event === 'delivery.record' && l.queueId === beforeId && (l.record as { outcome: string }).outcome === 'deferred');

    disk.fill();
    expect(disk.free()).toBe(0);
    // The message is larger than the WAL file as it stands, so SQLite must grow the file: it cannot fit in pages already there.
    const bodyBytes = 768 * 1024;
    expect(statSync(join(disk.dir, 'queue.db-wal')).size).toBeLessThan(bodyBytes);
    const refused = await attempt(port, { to: 'lee@full.test', messageId: '<during@full.test>', bodyBytes });
    expect(refused).toEqual({ ok: false, command: 'DATA', response: '452 4.3.1 Insufficient system storage' });
    await relay.waitForLine((l) => l.event === 'store.error' && /full/.test(String(l.err)));

    disk.release();
    // The client tries again later, as a 4xx tells it to.
    const again = await attempt(port, { to: 'lee@full.test', messageId: '<during@full.test>', bodyBytes });
    expect(again.ok, JSON.stringify(again)).toBe(true);

    mx = await startMx('tls13', { name: 'mx.full.test', port: mxPort });
    await mx.waitFor(2, 30_000);
    expect(messageIdsAt(mx).sort()).toEqual(['<before@full.test>', '<during@full.test>']);
    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  }, 90_000);

  it('MAIL FROM is refused 452 4.3.1 while free space is under ingress.queue_minfree_bytes plus SIZE, and taken again once space is back', async () => {
    disk = mountSmallDisk(16 * MiB);
    mx = await startMx('tls13', { name: 'mx.minfree.test' });
    const config = testConfig({
      store: { path: join(disk.dir, 'queue.db') },
      ingress: { queue_minfree_bytes: 4 * MiB },
      delivery: { routes: { 'minfree.test': `127.0.0.1:${mx.port}` } },
      logging: { level: 'info' },
    });
    relay = await spawnRelay(writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-minfree-')), config));
    const port = relay.ports.starttls!;
    const free = disk.free();
    expect(free).toBeGreaterThan(8 * MiB);

    // Room for the threshold, but not for it plus the SIZE this client declares (RFC 1870).
    const tooBig = await attempt(port, { to: 'a@minfree.test', messageId: '<declared@minfree.test>', size: free - 2 * MiB });
    expect(tooBig).toEqual({ ok: false, command: 'MAIL FROM', response: '452 4.3.1 Insufficient system storage' });
    const fits = await attempt(port, { to: 'a@minfree.test', messageId: '<fits@minfree.test>', size: 4096 });
    expect(fits.ok, JSON.stringify(fits)).toBe(true);

    disk.fill();
    // The relay reads free space at most once a second: ask until the reading is the full disk's.
    // Until then a message may still be taken (pages free inside SQLite's files) or refused at its commit.
    const accepted = ['<fits@minfree.test>'];
    let refused: Outcome;
    const deadline = Date.now() + 15_000;
    for (let n = 0; ; n++) {
      const messageId = `<full-${n}@minfree.test>`;
      refused = await attempt(port, { to: 'b@minfree.test', messageId });
      if (refused.ok) accepted.push(messageId);
      if ((!refused.ok && refused.command === 'MAIL FROM') || Date.now() > deadline) break;
    }
    expect(refused).toEqual({ ok: false, command: 'MAIL FROM', response: '452 4.3.1 Insufficient system storage' });
    await relay.waitForLine((l) => l.event === 'ingress.rejected' && l.reason === 'insufficient_storage');

    disk.release();
    let taken: Outcome;
    const back = Date.now() + 15_000;
    do taken = await attempt(port, { to: 'b@minfree.test', messageId: '<back@minfree.test>' });
    while (!taken.ok && Date.now() < back);
    expect(taken.ok, JSON.stringify(taken)).toBe(true);
    accepted.push('<back@minfree.test>');

    // Every message answered 250 arrives, and none that was refused. One delivered while the
    // disk was full may arrive twice: the MX took it, but the relay found no room to write
    // that it had (records, events and settlement need room too), so it was tried again —
    // at least once, never zero times (DESIGN). The ones queued with room never do.
    const receiver = mx;
    const until = Date.now() + 15_000;
    while (!accepted.every((id) => messageIdsAt(receiver).includes(id))) await receiver.waitFor(receiver.received.length + 1, Math.max(1, until - Date.now()));
    const ids = messageIdsAt(receiver);
    expect([...new Set(ids)].sort()).toEqual([...accepted].sort());
    for (const id of ids.filter((id, i) => ids.indexOf(id) !== i)) expect(id).toMatch(/^<full-\d+@minfree\.test>$/);
    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  }, 90_000);
});

describe('ingress.queue_minfree_bytes on the real temp file system', () => {
  let relay: TestRelay | undefined;
  afterAll(() => relay?.close());

  it('a threshold above the free space refuses MAIL FROM with 452 4.3.1; a small one takes the message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-minfree-'));
    const s = await statfs(dir);
    const free = s.bavail * s.bsize;
    const mx = await startMx('tls13', { name: 'mx.threshold.test' });
    try {
      const config = (minfree: number) =>
        testConfig({ store: { path: join(dir, 'queue.db') }, ingress: { queue_minfree_bytes: minfree }, delivery: { routes: { 'threshold.test': `127.0.0.1:${mx.port}` } } });
      relay = await startTestRelay(config(free + 1024 * 1024 * MiB));
      const refused = await attempt(relay.port, { to: 'a@threshold.test', messageId: '<high@threshold.test>' });
      expect(refused).toEqual({ ok: false, command: 'MAIL FROM', response: '452 4.3.1 Insufficient system storage' });

      // A reload applies to new connections.
      await relay.relay.reload(config(MiB));
      const taken = await attempt(relay.port, { to: 'a@threshold.test', messageId: '<low@threshold.test>' });
      expect(taken.ok, JSON.stringify(taken)).toBe(true);
      await mx.waitFor(1, 15_000);
      expect(messageIdsAt(mx)).toEqual(['<low@threshold.test>']);
    } finally {
      await mx.close();
    }
  }, 60_000);
});
