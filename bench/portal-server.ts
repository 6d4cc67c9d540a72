// portal-server: the portal's HTTPS listener as the relay runs it, in a process of
// its own so that its CPU and RSS are its own (bench/portal.ts forks it). What
// relay.ts wires for `portal.listen` is wired here: the store on its own thread
// (openRelayStore), the keyring from the master key file, buildWebServer('portal')
// with queueMail = a durable enqueue. No ingress and no delivery thread run: the
// mail the portal queues (notifications, code emails) stays in the queue, which is
// the bench recipients' mailbox.
//
// Asked over IPC, it also plays delivery (seed: messages queued and handed to the
// portal as delivery hands them, portal-items.ts) and the recipients' mail server
// (mail: the raw messages queued to an address). Both happen outside the measured
// phases.
//
//   node --import tsx bench/portal-server.ts CONFIG_FILE CERT_FILE KEY_FILE   (forked, with IPC)
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { simpleParser } from 'mailparser';
import { buildWebServer } from '../src/http/listeners.ts';
import { createLogger } from '../src/log.ts';
import { portalDesk } from '../src/portal/handoff.ts';
import type { NewMessage } from '../src/store/store.ts';
import { messageFactory } from './message.ts';
import { claimAll, inParallel, openPortalBench, PORTAL_BENCH_DOMAIN, queueMessages, storeItem } from './portal-items.ts';

export type PortalServerRequest =
  | { id: number; type: 'seed'; n: number; size: number; parallel: number }
  | { id: number; type: 'mail'; recipient: string }
  | { id: number; type: 'stop' };

/** A request as the parent makes it (the id is added on sending). */
export type PortalServerCall = PortalServerRequest extends infer R ? (R extends PortalServerRequest ? Omit<R, 'id'> : never) : never;

export type PortalServerMessage =
  | { type: 'ready'; url: string; pid: number }
  | { type: 'done'; id: number; value?: unknown; error?: string }
  | { type: 'failed'; error: string };

/** What `seed` answers. */
export interface Seeded {
  items: number;
  ms: number;
  /** The attachment every message carries, decoded: what a download must give back. */
  attachment: { bytes: number; sha256: string };
}

const send = (m: PortalServerMessage) => process.send!(m);

async function main(): Promise<void> {
  const [configFile, certFile, keyFile] = process.argv.slice(2);
  if (!configFile || !certFile || !keyFile || !process.send) throw new Error('usage: forked with IPC, CONFIG_FILE CERT_FILE KEY_FILE');
  const { config, keyring, store, terms } = await openPortalBench(configFile);
  const server = await buildWebServer('portal', {
    config,
    // Failures only: a request log would cost the CPU being measured (and fastify's is off anyway).
    logger: createLogger('warn'),
    tls: { cert: readFileSync(certFile), key: readFileSync(keyFile, 'utf8') },
    portal: {
      store,
      keyring: () => keyring,
      queueMail: (message: NewMessage) => store.enqueue(message),
    },
  });
  const { url } = await server.listen();
  const desk = portalDesk(config, keyring, url);

  const handle = async (req: PortalServerRequest): Promise<unknown> => {
    switch (req.type) {
      case 'seed': {
        const started = performance.now();
        const factory = messageFactory({ size: req.size, domain: PORTAL_BENCH_DOMAIN });
        await queueMessages(store, factory, req.n, 'portal-pages');
        const items = await claimAll(store, req.n);
        await inParallel(items, req.parallel, (item) => storeItem(store, desk, item, terms));
        const ms = performance.now() - started;
        // The messages share one attachment (message.ts): the sender's copy, decoded as a mail program would.
        const sent = (await simpleParser(factory.build('sample', 0))).attachments[0]?.content;
        if (!sent) throw new Error('bench/message.ts changed: the message has no attachment');
        return { items: items.length, ms, attachment: { bytes: sent.length, sha256: createHash('sha256').update(sent).digest('hex') } } satisfies Seeded;
      }
      case 'mail': {
        // The recipient's mailbox: everything queued to the address, oldest first, raw.
        const queued = await store.listQueue();
        const mine = queued.filter((q) => q.recipients.some((r) => r.recipient === req.recipient));
        const bodies = await Promise.all(mine.map((q) => store.readBody(q.queueId)));
        return bodies.filter((b): b is Buffer => b !== null).map((b) => b.toString('base64'));
      }
      case 'stop':
        await server.close();
        await store.close();
        return null;
    }
  };

  process.on('message', (req: PortalServerRequest) => {
    handle(req).then(
      (value) => {
        send({ type: 'done', id: req.id, value });
        if (req.type === 'stop') process.disconnect();
      },
      (err: unknown) => send({ type: 'done', id: req.id, error: (err as Error).stack ?? String(err) }),
    );
  });
  // The parent gone (Ctrl-C, a crash): nothing here outlives it.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', url, pid: process.pid });
}

main().catch((err: unknown) => {
  if (process.send) send({ type: 'failed', error: (err as Error).stack ?? String(err) });
  else console.error(err);
  process.exit(1);
});
