// `sealrelay suppression list|add|remove`, run as the real command against a real
// store: what it adds delivery sees (suppressedAmong), remove gives the address
// back, bad arguments exit 64 and change nothing, and an unsubscribe made through a
// link shows with its source and message.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOUR, lines, makeSandbox, message, runCli, withStore, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeEach(async () => {
  box = makeSandbox();
  await withStore(box.storePath, async (store) => {
    await store.enqueue(message('QA', ['bob@patient.example'], Date.now() - HOUR));
    await store.unsubscribe('QA', 0);
  });
});
afterEach(() => box.cleanup());

const cli = (...args: string[]) => runCli(['--config', box.configFile, 'suppression', ...args]);

describe('sealrelay suppression', () => {
  it('adds, lists and removes, normalising what it is given', async () => {
    const added = await cli('add', 'Clinic.Example', 'Ann@Patient.Example');
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toContain('suppressed ann@patient.example for mail from clinic.example');
    expect((await cli('add', 'clinic.example', 'ann@patient.example')).stdout).toContain('already suppressed');

    const table = lines((await cli('list')).stdout);
    expect(table[0]).toMatch(/^SENDER DOMAIN\s+ADDRESS\s+SOURCE\s+SINCE\s+MESSAGE/);
    expect(table.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['clinic.example', 'ann@patient.example', 'manual'],
      ['clinic.example', 'bob@patient.example', 'unsubscribe'],
    ]);
    expect(table[2]).toContain('QA.0');

    const json = lines((await cli('list', '--json', '--address', 'BOB@patient.example')).stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json).toEqual([expect.objectContaining({ senderDomain: 'clinic.example', recipient: 'bob@patient.example', source: 'unsubscribe', queueId: 'QA', seq: 0 })]);

    expect(await withStore(box.storePath, (s) => s.suppressedAmong('clinic.example', ['ann@patient.example']))).toEqual(['ann@patient.example']);
    expect(await cli('remove', 'clinic.example', 'ann@patient.example')).toMatchObject({ code: 0 });
    expect(await withStore(box.storePath, (s) => s.suppressedAmong('clinic.example', ['ann@patient.example']))).toEqual([]);
    const again = await cli('remove', 'clinic.example', 'ann@patient.example');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('is not suppressed');
    // Each command is in the audit trail under the OS user who ran it.
    const trail = await withStore(box.storePath, (s) => s.listAudit({ limit: 100 }));
    expect(trail.map((e) => [e.actorKind, e.action, e.target])).toEqual([
      ['os-user', 'suppression.add', 'clinic.example ann@patient.example'],
      ['os-user', 'suppression.add', 'clinic.example ann@patient.example'],
      ['os-user', 'suppression.read', null],
      ['os-user', 'suppression.read', null],
      ['os-user', 'suppression.remove', 'clinic.example ann@patient.example'],
      ['os-user', 'suppression.remove', 'clinic.example ann@patient.example'],
    ]);
  });

  it('refuses what is not a domain or an address with exit 64, changing nothing', async () => {
    for (const args of [
      ['add', 'not a domain', 'ann@patient.example'],
      ['add', 'clinic.example', 'ann'],
      ['add', 'clinic.example', `${'a'.repeat(5000)}@x.example`],
      ['remove', '@@', 'ann@patient.example'],
      ['list', '--domain', 'a b'],
      ['add', 'clinic.example'],
    ]) {
      const res = await cli(...args);
      expect(res.code, args.join(' ').slice(0, 60)).toBe(64);
      expect(res.stderr.length).toBeLessThan(600);
    }
    expect((await withStore(box.storePath, (s) => s.listSuppressions())).map((s) => s.recipient)).toEqual(['bob@patient.example']);
  });
});
