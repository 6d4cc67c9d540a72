// `sealrelay portal`: keygen (a new file with mode 0600, never overwritten, or
// stdout), list and show (metadata and records, never content or secrets), recall
// (every item of a message erased at once, recorded with the OS user and shown by
// `sealrelay log`), expire, and rewrap (moves items to the current key, resumable,
// reporting what it cannot move); each run as the real command against a real
// store file, and checked in the store afterwards.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatMasterKey, Keyring, parseMasterKey } from '../../src/portal/master-keys.ts';
import { openPortalItem, sealPortalItem, type PortalItemFacts } from '../../src/portal/vault.ts';
import type { PortalItemInfo, PortalRecord } from '../../src/store/store.ts';
import { DAY, HOUR, lines, makeSandbox, runCli, withStore, type Sandbox } from './harness.ts';

const OPERATOR = userInfo().username;
const MARKER = 'CONTENTMARKER3b9d';
const MESSAGE = Buffer.from(`Subject: ${MARKER}\r\n\r\n${MARKER} body\r\n`);
const k1 = randomBytes(32);
const k2 = randomBytes(32);
/** The config names k1 (a file) and k2 (an environment variable); k2 is current. */
const PORTAL_YAML = ['portal:', '  master_keys:', '    - { id: k1, file: k1.key }', '    - { id: k2, env: TEST_PORTAL_K2 }', '  current_key: k2'].join('\n');
const ENV = { TEST_PORTAL_K2: formatMasterKey(k2) };

let box: Sandbox;
let now: number;
beforeEach(() => {
  box = makeSandbox(PORTAL_YAML);
  writeFileSync(join(box.dir, 'k1.key'), formatMasterKey(k1), { mode: 0o600 });
  now = Date.now();
});
afterEach(() => box.cleanup());

const portal = (...args: string[]) => runCli(['-c', box.configFile, 'portal', ...args], { env: ENV });
const facts = (over: Partial<PortalItemFacts>): PortalItemFacts => ({
  queueId: 'QP',
  seq: 0,
  messageId: '<qp@clinic.example>',
  sender: 'lab@clinic.example',
  recipient: 'pat@patient.example',
  createdAt: now - HOUR,
  expiresAt: now + 30 * DAY,
  ...over,
});

/** Seals and stores items; returns them as stored. */
async function seed(keyring: Keyring, ...list: { facts: Partial<PortalItemFacts>; keyInLink?: boolean }[]) {
  const sealed = list.map((i) => sealPortalItem(keyring, facts(i.facts), MESSAGE, { keyInLink: i.keyInLink === true }));
  await withStore(box.storePath, async (s) => {
    for (const i of sealed) await s.putPortalItem(i.item);
  });
  return sealed;
}

describe('sealrelay portal keygen', () => {
  it('--out writes a new key file with mode 0600 and prints the config to add; an existing file is never overwritten', async () => {
    const out = join(box.dir, 'new.key');
    const res = await runCli(['portal', 'keygen', '--out', out]);
    expect(res.code).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const text = readFileSync(out, 'utf8');
    expect(parseMasterKey(text)).toHaveLength(32);
    expect(res.stdout).toContain(`wrote a portal master key to ${out} (mode 0600)`);
    expect(res.stdout).toMatch(new RegExp(`- \\{ id: k\\d{8}, file: ${out} \\}`));
    expect(res.stdout).toMatch(/current_key: k\d{8}/);
    // The key itself is in the file only.
    expect(res.stdout + res.stderr).not.toContain(text.trim());

    const again = await runCli(['portal', 'keygen', '--out', out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`sealrelay: ${out} exists; not overwritten\n`);
    expect(readFileSync(out, 'utf8')).toBe(text);
  });

  it('without --out: the key alone on stdout (for a secret store), the config hint on stderr; each key is new', async () => {
    const [a, b] = await Promise.all([runCli(['portal', 'keygen']), runCli(['portal', 'keygen'])]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(parseMasterKey(a.stdout)).toHaveLength(32);
    expect(a.stdout).not.toBe(b.stdout);
    expect(a.stderr).toMatch(/env: SEALRELAY_PORTAL_KEY/);
  });
});

describe('sealrelay portal list and show', () => {
  it('list: newest first, with state, message, key and link-key columns; --json without any secret; --message filters', async () => {
    const ring1 = new Keyring([{ id: 'k1', key: k1 }], 'k1');
    const [old, linked, expired] = await seed(
      ring1,
      { facts: { createdAt: now - 3 * HOUR } },
      { facts: { seq: 1, recipient: 'kim@patient.example', createdAt: now - 2 * HOUR }, keyInLink: true },
      { facts: { queueId: 'QX', messageId: '<qx@clinic.example>', createdAt: now - HOUR, expiresAt: now - 1000 } },
    );
    const res = await portal('list');
    expect(res.code).toBe(0);
    const [header, ...rows] = lines(res.stdout);
    expect(header?.split(/\s{2,}/)).toEqual(['ITEM', 'CREATED', 'EXPIRES', 'STATE', 'MESSAGE', 'RECIPIENT', 'SENDER', 'SIZE', 'KEY', 'LINK KEY']);
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(new RegExp(`^${expired!.item.id}\\s+\\S+Z\\s+\\S+Z\\s+expired\\s+QX\\.0\\s+pat@patient\\.example\\s+lab@clinic\\.example\\s+${MESSAGE.length} B\\s+k1\\s+no$`));
    expect(rows[1]).toMatch(new RegExp(`^${linked!.item.id}\\s.*readable\\s+QP\\.1\\s+kim@patient\\.example\\s.*k1\\s+yes$`));
    expect(rows[2]).toMatch(new RegExp(`^${old!.item.id}\\s.*readable\\s+QP\\.0\\s`));

    const json = await portal('list', '--json', '--message', 'qp@clinic.example');
    const items = lines(json.stdout).map((l) => JSON.parse(l) as PortalItemInfo & { state: string });
    expect(items.map((i) => [i.id, i.state])).toEqual([[linked!.item.id, 'readable'], [old!.item.id, 'readable']]);
    expect(Object.keys(items[0]!)).not.toEqual(expect.arrayContaining(['sealed']));
    expect(json.stdout).not.toMatch(/tokenHash|sealed|wrappedKey|content|code/);

    expect((await portal('list', '--message', 'nothing')).stdout).toBe('no portal items for nothing\n');
  });

  it('show: the metadata and records of one item (attempts and portal events, with IP and user agent), never content', async () => {
    const [item] = await seed(new Keyring([{ id: 'k2', key: k2 }], 'k2'), { facts: {} });
    const id = item!.item.id;
    await withStore(box.storePath, async (s) => {
      await s.recordPortalEvent(id, 'portal-viewed', { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Safari', detail: 'possibly automated', at: now - 30_000 });
      await s.setPortalCode(id, { hash: randomBytes(32), expiresAt: now + 600_000, triesLeft: 5 }, { ip: '198.51.100.4', userAgent: 'Firefox', at: now - 20_000 });
    });
    const res = await portal('show', id);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`item:        ${id}`);
    expect(res.stdout).toMatch(/state:\s+readable\n/);
    expect(res.stdout).toContain('message:     QP.0');
    expect(res.stdout).toContain('recipient:   pat@patient.example');
    expect(res.stdout).toContain('master key:  k2');
    expect(res.stdout).toMatch(/records:\n.*TIME.*\n.*QP\.0\s+-\s+pat@patient\.example\s+portal-viewed\s+portal\s+-\s+-\s+item \S+: 203\.0\.113\.7 Mozilla\/5\.0 \(Windows NT 10\.0; Win64; x64\) Safari possibly automated/);
    expect(res.stdout).toMatch(/portal-code-sent\s+portal\s+-\s+-\s+item \S+: 198\.51\.100\.4 Firefox/);
    expect(res.stdout).not.toContain(MARKER);

    const json = JSON.parse((await portal('show', id, '--json')).stdout) as { item: PortalItemInfo; records: PortalRecord[] };
    expect(json.item.id).toBe(id);
    expect(json.records.map((r) => r.outcome)).toEqual(['portal-viewed', 'portal-code-sent']);
    expect(JSON.stringify(json)).not.toMatch(/tokenHash|sealed|wrappedKey|"code"/);

    const unknown = await portal('show', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('sealrelay: no portal item nope');
  });
});

describe('sealrelay portal recall and expire', () => {
  it('recall by Message-ID erases every item of that message at once, names the OS user, and `log --message` shows it', async () => {
    const keyring = new Keyring([{ id: 'k2', key: k2 }], 'k2');
    const [a, b, other] = await seed(keyring, { facts: {} }, { facts: { seq: 1, recipient: 'kim@patient.example' } }, { facts: { queueId: 'QO', messageId: '<qo@clinic.example>' } });
    const res = await portal('recall', '<qp@clinic.example>');
    expect(res.code).toBe(0);
    expect(lines(res.stdout)).toEqual([
      'recalled 2 portal items of <qp@clinic.example>:',
      `  ${a!.item.id}  QP.0  pat@patient.example`,
      `  ${b!.item.id}  QP.1  kim@patient.example`,
    ]);
    expect(JSON.parse(res.stderr)).toMatchObject({ event: 'portal.recalled', message: '<qp@clinic.example>', items: [a!.item.id, b!.item.id], operator: OPERATOR });
    await withStore(box.storePath, async (s) => {
      for (const i of [a!, b!]) expect(await s.getPortalItem(i.item.id)).toMatchObject({ sealed: null, recalledAt: expect.any(Number) });
      expect(openPortalItem(keyring, (await s.getPortalItem(other!.item.id))!).equals(MESSAGE)).toBe(true);
    });

    // --wide: every column whole (the default table cuts the reason to fit 120 columns).
    const log = await runCli(['-c', box.configFile, 'log', '--message', 'QP', '--wide']);
    expect(log.code).toBe(0);
    expect(lines(log.stdout).slice(1)).toEqual([
      expect.stringMatching(new RegExp(`QP\\.0\\s+-\\s+pat@patient\\.example\\s+portal-recalled\\s+portal\\s+-\\s+-\\s+item ${a!.item.id}: by ${OPERATOR}\\s+-$`)),
      expect.stringMatching(new RegExp(`QP\\.1\\s+-\\s+kim@patient\\.example\\s+portal-recalled\\s+portal\\s+-\\s+-\\s+item ${b!.item.id}: by ${OPERATOR}\\s+-$`)),
    ]);
    const filtered = await runCli(['-c', box.configFile, 'log', '--outcome', 'portal-recalled', '--json']);
    expect(lines(filtered.stdout).map((l) => (JSON.parse(l) as PortalRecord).kind)).toEqual(['portal', 'portal']);

    const again = await portal('recall', 'QP');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('nothing to recall: the 2 portal items of QP were recalled before\n');
    const unknown = await portal('recall', 'NOSUCH');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('sealrelay: no portal items for NOSUCH');
  });

  it('expire erases the items past their expiry now and keeps the rest', async () => {
    const keyring = new Keyring([{ id: 'k2', key: k2 }], 'k2');
    const [due, fresh] = await seed(keyring, { facts: { expiresAt: now - 1 } }, { facts: { queueId: 'QF' } });
    const res = await portal('expire');
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('erased 1 expired portal item\n');
    await withStore(box.storePath, async (s) => {
      expect(await s.getPortalItem(due!.item.id)).toMatchObject({ sealed: null, erasedAt: expect.any(Number), recalledAt: null });
      expect((await s.getPortalItem(fresh!.item.id))?.sealed).not.toBeNull();
      expect((await s.queryLog({ message: 'QP' })).map((r) => r.outcome)).toEqual(['portal-expired']);
    });
    expect((await portal('expire')).stdout).toBe('no portal items past their expiry\n');
    expect((await portal('show', due!.item.id)).stdout).toMatch(/state:\s+expired \(content erased \S+Z\)/);
  });
});

describe('sealrelay portal rewrap', () => {
  it('moves items under older keys to the current one without the content changing; a rerun finds nothing left', async () => {
    const ring1 = new Keyring([{ id: 'k1', key: k1 }], 'k1');
    const items = await seed(ring1, { facts: {} }, { facts: { seq: 1 }, keyInLink: true }, { facts: { seq: 2 } });
    const res = await portal('rewrap', '--batch', '2');
    expect(res.code).toBe(0);
    expect(lines(res.stdout)).toEqual(['rewrapped 3 portal items to master key k2', 'every readable item is under k2; k1 may now be removed from portal.master_keys']);
    const onlyK2 = new Keyring([{ id: 'k2', key: k2 }], 'k2');
    await withStore(box.storePath, async (s) => {
      for (const i of items) {
        const got = (await s.getPortalItem(i.item.id))!;
        expect(got.keyId).toBe('k2');
        expect(got.sealed?.content.equals(i.item.sealed.content)).toBe(true);
        expect(openPortalItem(onlyK2, got, i.linkKey).equals(MESSAGE)).toBe(true);
      }
    });
    expect((await portal('rewrap')).stdout).toMatch(/^rewrapped 0 portal items to master key k2\n/);
  });

  it('an item under a key no longer configured is reported (exit 1) and passed by; the others are moved', async () => {
    const [lost] = await seed(new Keyring([{ id: 'k0', key: randomBytes(32) }], 'k0'), { facts: {} });
    const [movable] = await seed(new Keyring([{ id: 'k1', key: k1 }], 'k1'), { facts: { seq: 1 } });
    const res = await portal('rewrap');
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('rewrapped 1 portal item to master key k2\n');
    expect(res.stderr).toContain(`  ${lost!.item.id} (key k0): master key k0 is not configured; add it to portal.master_keys to rewrap this item`);
    expect(res.stderr).toContain('sealrelay: 1 item could not be rewrapped (above); the others were');
    await withStore(box.storePath, async (s) => {
      expect((await s.getPortalItem(movable!.item.id))?.keyId).toBe('k2');
      expect((await s.getPortalItem(lost!.item.id))?.keyId).toBe('k0');
    });
  });

  it('a master key that cannot be used is a config error naming its setting and line (exit 78); a missing variable too', async () => {
    writeFileSync(join(box.dir, 'k1.key'), formatMasterKey(k1), { mode: 0o644 });
    const { chmodSync } = await import('node:fs');
    chmodSync(join(box.dir, 'k1.key'), 0o644);
    const open = await portal('rewrap');
    expect(open.code).toBe(78);
    expect(open.stderr).toMatch(new RegExp(`^${box.configFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: portal\\.master_keys\\[k1\\]\\.file: .*k1\\.key: mode 0644 lets group or others read it; chmod 600`));
    chmodSync(join(box.dir, 'k1.key'), 0o600);
    const unset = await runCli(['-c', box.configFile, 'portal', 'rewrap']);
    expect(unset.code).toBe(78);
    expect(unset.stderr).toMatch(/portal\.master_keys\[k2\]\.env: environment variable TEST_PORTAL_K2 is not set/);
    // Nothing of either key is ever printed.
    for (const r of [open, unset]) for (const k of [k1, k2]) expect(r.stdout + r.stderr).not.toContain(k.toString('base64'));
  });
});
