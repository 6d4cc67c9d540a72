// The campaign header end to end: read at ingress, stripped before the message is
// queued (the recipient never sees it), and carried by every event of the message
// with the custom field and the subject, so that reports can split by them.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RelayEvent } from '../../src/events/event.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mx: StartedMx;
let relay: TestRelay;

beforeAll(async () => {
  mx = await startMx('tls13', { name: 'mx.campaign.test' });
  relay = await startTestRelay(
    testConfig({
      delivery: { routes: { 'clinic.test': `127.0.0.1:${mx.port}` } },
      reports: { campaign_header: 'X-Campaign-ID', custom_header: 'X-Department' },
    }),
  );
}, 30_000);

afterAll(async () => {
  await relay?.close();
  await mx?.close();
});

async function eventsOf(queueId: string, until: (events: RelayEvent[]) => boolean): Promise<RelayEvent[]> {
  const reader = new SqliteStore(relay.config.store.path);
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const events = (await reader.listEvents({ limit: 1000 })).filter((e) => e.queueId === queueId);
      if (until(events)) return events;
      if (Date.now() > deadline) throw new Error(`events never matched: ${JSON.stringify(events.map((e) => e.type))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await reader.close();
  }
}

it('reads the campaign (any case, folded, encoded) and the custom field, strips only the campaign header, and every event carries them', async () => {
  const body = [
    'From: <lab@hospital.test>',
    'To: <pat@clinic.test>',
    'Subject: =?utf-8?q?Flu_shot_reminder_f=C3=BCr_Sie?=',
    'x-campaign-id: =?utf-8?q?flu-2026-?=',
    '\t=?utf-8?q?winter?=',
    'X-Campaign-IDs: not-the-campaign',
    'X-Department: Cardiology',
    '',
    'X-Campaign-ID: in the body, kept',
    '',
  ].join('\r\n');
  const queueId = queueIdOf(await submit({ port: relay.port, from: 'lab@hospital.test', to: ['pat@clinic.test'], body }));
  const [got] = await mx.waitFor(1);
  const raw = got!.raw.toString();
  const header = raw.slice(0, raw.indexOf('\r\n\r\n') + 2);
  expect(header).not.toMatch(/^x-campaign-id:/im);
  expect(header).not.toContain('winter');
  expect(header).toContain('X-Campaign-IDs: not-the-campaign\r\n');
  expect(header).toContain('X-Department: Cardiology\r\n');
  expect(raw).toContain('\r\n\r\nX-Campaign-ID: in the body, kept\r\n');

  const events = await eventsOf(queueId, (es) => es.some((e) => e.type === 'secured'));
  expect(events.map((e) => e.type)).toEqual(['queued', 'delivered', 'secured']);
  for (const e of events) {
    expect(e).toMatchObject({ campaign: 'flu-2026-winter', custom: 'Cardiology', subject: 'Flu shot reminder für Sie' });
  }
});

it('a message without the headers has no campaign and no custom field', async () => {
  const queueId = queueIdOf(await submit({ port: relay.port, from: 'lab@hospital.test', to: ['kim@clinic.test'] }));
  const events = await eventsOf(queueId, (es) => es.some((e) => e.type === 'delivered'));
  for (const e of events) expect(e).toMatchObject({ campaign: null, custom: null, subject: 'test' });
});
