// A large message reaches the store in parts while it arrives (data-reader.ts,
// staged-parts.ts), so ingress never holds it whole: the parts are written before
// the client has finished, the message is queued byte for byte from head and
// parts, and whatever ends the message early — a refusal, the client going away,
// a store that cannot write — drops the parts and queues nothing.
import { describe, expect, test } from 'vitest';
import { PART_BYTES } from '../../src/ingress/data-reader.ts';
import { ingressConfig, RawClient, runSteps, startTestIngress, type TestIngress } from './harness.ts';

const LINE = `${'p'.repeat(76)}\r\n`;
/** A message of about `bytes`, 78-byte lines. */
function bigMessage(bytes: number, subject = 'big'): string {
  return `From: app@clinic.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@clinic.test>\r\n\r\n${LINE.repeat(Math.ceil(bytes / LINE.length))}`;
}

async function inData(t: TestIngress): Promise<RawClient> {
  const c = await RawClient.open(t.port());
  await runSteps(c, [['EHLO a.test', 250], ['MAIL FROM:<app@clinic.test>', 250], ['RCPT TO:<ann@example.test>', 250], ['DATA', 354]]);
  return c;
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs `fn` against an ingress that takes messages up to 16 MiB, recording what reaches its store. */
async function withIngress(fn: (t: TestIngress) => Promise<void>): Promise<void> {
  const t = await startTestIngress({ config: ingressConfig({ max_message_bytes: 16 * 1024 * 1024 }) });
  try {
    await fn(t);
  } finally {
    await t.close();
  }
}

const stagedCount = (t: TestIngress) => t.store.events.filter((e) => e.startsWith('stage ')).length;

describe('large messages are written to the store in parts as they arrive', () => {
  test('parts are staged before the client has finished; the message is queued whole, byte for byte', () =>
    withIngress(async (t) => {
      const text = bigMessage(6 * PART_BYTES);
      const c = await inData(t);
      const half = Math.floor(text.length / 2);
      c.write(text.slice(0, half));
      // Half of a 6 MiB message has arrived (its first MiB is the head): a part is in the store already.
      await until('a staged part', () => stagedCount(t) >= 1);
      expect(t.store.events.some((e) => e.startsWith('enqueue-start'))).toBe(false);
      c.write(`${text.slice(half)}.\r\n`);
      const reply = await c.reply(20_000);
      expect(reply.code).toBe(250);
      const [queued] = t.store.messages;
      const body = queued!.body.toString('latin1');
      expect(body.slice(body.indexOf('From: app@clinic.test'))).toBe(text);
      expect(body.startsWith('Received: ')).toBe(true);
      const id = queued!.queueId;
      const events = t.store.events.filter((e) => e.includes(id));
      const stages = events.filter((e) => e.startsWith('stage '));
      expect(stages.length).toBeGreaterThanOrEqual(5);
      expect(stages).toEqual(stages.map((_e, i) => `stage ${id} ${i + 1}`));
      expect(events.slice(stages.length)).toEqual([`enqueue-start ${id}`, `enqueue-committed ${id}`, `onQueued ${id}`]);
      await c.quit();
    }));

  test('a message refused part way (bare LF after 2 MiB): 550, its parts dropped, nothing queued', () =>
    withIngress(async (t) => {
      const c = await inData(t);
      c.write(bigMessage(3 * PART_BYTES));
      await until('a staged part', () => stagedCount(t) >= 1);
      c.write('a bare\nline feed\r\n');
      c.write(`${LINE.repeat(20_000)}.\r\n`);
      expect((await c.reply(20_000)).code).toBe(550);
      expect(t.store.messages).toHaveLength(0);
      expect(t.store.events.at(-1)).toMatch(/^discard /);
      expect(t.store.staged.size).toBe(0);
      await c.quit();
    }));

  test('a client that goes away mid-DATA leaves no parts behind', () =>
    withIngress(async (t) => {
      const c = await inData(t);
      c.write(bigMessage(3 * PART_BYTES));
      await until('a staged part', () => stagedCount(t) >= 1);
      c.socket.destroy();
      await until('the parts dropped', () => t.store.events.some((e) => e.startsWith('discard ')));
      expect(t.store.staged.size).toBe(0);
      expect(t.store.messages).toHaveLength(0);
    }));

  test('a store that cannot write a part: 451, parts dropped, nothing queued; the next message in the session is queued', () =>
    withIngress(async (t) => {
      t.store.failStage = 1;
      const c = await inData(t);
      c.write(`${bigMessage(3 * PART_BYTES)}.\r\n`);
      expect((await c.reply(20_000)).code).toBe(451);
      expect(t.store.messages).toHaveLength(0);
      expect(t.store.staged.size).toBe(0);
      expect(t.store.events.some((e) => e.startsWith('enqueue-start'))).toBe(false);
      const again = await c.send('app@clinic.test', ['ann@example.test'], bigMessage(2 * PART_BYTES, 'second'));
      expect(again.code).toBe(250);
      expect(t.store.messages.map((m) => m.subject)).toEqual(['second']);
      await c.quit();
    }));

  test('a commit that fails after parts were staged drops them: 451, nothing queued', () =>
    withIngress(async (t) => {
      t.store.failNext = 1;
      const c = await inData(t);
      c.write(`${bigMessage(3 * PART_BYTES)}.\r\n`);
      expect((await c.reply(20_000)).code).toBe(451);
      expect(t.store.events.slice(-2)[0]).toMatch(/^enqueue-failed /);
      expect(t.store.events.at(-1)).toMatch(/^discard /);
      expect(t.store.staged.size).toBe(0);
      await c.quit();
    }));

  test('a long line in a large message: read back whole, repaired, and queued in one piece', () =>
    withIngress(async (t) => {
      const longLine = `<p>${'unwrapped html '.repeat(150)}</p>\r\n`;
      const text = `${bigMessage(3 * PART_BYTES)}${longLine}${LINE.repeat(100)}`;
      const c = await inData(t);
      c.write(`${text}.\r\n`);
      expect((await c.reply(20_000)).code).toBe(250);
      const [queued] = t.store.messages;
      const id = queued!.queueId;
      expect(queued!.staged).toBeUndefined();
      expect(t.store.events.filter((e) => e.includes(id)).slice(-4)).toEqual([`discard ${id}`, `enqueue-start ${id}`, `enqueue-committed ${id}`, `onQueued ${id}`]);
      const body = queued!.body.toString('latin1');
      // Every line now within RFC 5321's 1000 octets, the text still there, the rest untouched.
      expect(Math.max(...body.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(998);
      expect(body).toContain(LINE.repeat(1000));
      expect(body.endsWith(LINE.repeat(100))).toBe(true);
      expect(t.logs.some((l) => l.event === 'ingress.repaired' && l.queueId === id)).toBe(true);
      await c.quit();
    }));
});
