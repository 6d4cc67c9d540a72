/**
 * Proves the STARTTLS-stripping proxy (test/helpers/mitm.ts) is a faithful attacker:
 * a real client behind it never sees STARTTLS and the MX records a plaintext session;
 * a client that insists gets 502 and nothing reaches the MX; the rewritten EHLO reply
 * stays valid RFC 5321 however the upstream splits it; and 'pass' mode is transparent.
 */
import net from 'node:net';
import type tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPConnectionOptions } from 'nodemailer/lib/smtp-connection';
import { afterEach, describe, expect, it } from 'vitest';
import { REFUSE_STARTTLS_REPLY, startStripTlsProxy, stripStarttls, type StripTlsProxy } from '../helpers/mitm.ts';
import { allocLoopbackIp, startMx, type StartedMx } from '../helpers/mx.ts';
import { sharedTestCa } from '../helpers/test-ca.ts';

const MESSAGE = 'From: a@sender.test\r\nTo: b@example.test\r\nSubject: mitm\r\n\r\nhello in the clear?\r\n';
const ENVELOPE = { from: 'a@sender.test', to: ['b@example.test'] };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function mxBehindProxy(mode: 'strip' | 'pass' = 'strip'): Promise<{ mx: StartedMx; proxy: StripTlsProxy }> {
  const mx = await startMx('tls13', { name: 'mx1.example.test', host: allocLoopbackIp() });
  cleanups.push(() => mx.close());
  const proxy = await startStripTlsProxy({ upstreamHost: mx.host, upstreamPort: mx.port, mode });
  cleanups.push(() => proxy.close());
  return { mx, proxy };
}

/** The relay's client, pointed at the proxy, verifying the MX name against the test CA. */
async function connect(proxy: StripTlsProxy, options: SMTPConnectionOptions = {}): Promise<SMTPConnection> {
  const client = new SMTPConnection({
    host: proxy.host,
    port: proxy.port,
    name: 'relay.sender.test',
    connectionTimeout: 2000,
    greetingTimeout: 2000,
    socketTimeout: 2000,
    socketCloseTimeout: 0,
    tls: { ca: [sharedTestCa().certPem], servername: 'mx1.example.test', rejectUnauthorized: true },
    ...options,
  });
  cleanups.push(() => client.close());
  await new Promise<void>((resolve, reject) => {
    client.once('error', reject);
    client.connect((err) => (err ? reject(err) : resolve()));
  });
  client.on('error', () => {});
  return client;
}

function send(client: SMTPConnection): Promise<unknown> {
  return new Promise((resolve, reject) => client.send(ENVELOPE, MESSAGE, (err, info) => (err ? reject(err) : resolve(info))));
}

describe('mitm: STARTTLS stripping in front of a TLS 1.3 MX', () => {
  it('hides STARTTLS: the client stays in plaintext and the MX records a plaintext delivery', async () => {
    const { mx, proxy } = await mxBehindProxy();
    const client = await connect(proxy);
    expect(client.secure).toBe(false);
    await send(client);
    const [message] = await mx.waitFor(1);
    expect(message!.tls).toBeNull();
    expect(message!.raw.toString()).toContain('hello in the clear?');
    expect(mx.sessions[0]).toMatchObject({ secure: false, protocol: null });
    expect(proxy).toMatchObject({ connections: 1, strippedEhlo: 1, refusedStarttls: 0 });
  });

  it('answers a STARTTLS the client sends anyway with 502 itself; nothing reaches the MX', async () => {
    const { mx, proxy } = await mxBehindProxy();
    const err = await connect(proxy, { requireTLS: true }).then(
      () => null,
      (e: Error & { code?: string; response?: string }) => e,
    );
    expect(err).toMatchObject({ code: 'ETLS', response: REFUSE_STARTTLS_REPLY.trim() });
    expect(proxy.refusedStarttls).toBe(1);
    expect(mx.received).toHaveLength(0);
    expect(mx.sessions.every((s) => !s.secure)).toBe(true);
  });

  it("'pass' mode is transparent: TLS 1.3 end to end, certificate checked for the MX name", async () => {
    const { mx, proxy } = await mxBehindProxy('pass');
    const client = await connect(proxy, { requireTLS: true });
    expect(client.secure).toBe(true);
    expect((client._socket as tls.TLSSocket).getProtocol()).toBe('TLSv1.3');
    await send(client);
    const [message] = await mx.waitFor(1);
    expect(message!.tls).toMatchObject({ protocol: 'TLSv1.3' });
    expect(proxy).toMatchObject({ connections: 1, strippedEhlo: 0, refusedStarttls: 0 });
  });

  it('setMode switches the attack on for new connections', async () => {
    const { mx, proxy } = await mxBehindProxy('pass');
    const first = await connect(proxy);
    expect(first.secure).toBe(true);
    await send(first);
    proxy.setMode('strip');
    const second = await connect(proxy);
    expect(second.secure).toBe(false);
    await send(second);
    const received = await mx.waitFor(2);
    expect(received.map((m) => m.tls?.protocol ?? null)).toEqual(['TLSv1.3', null]);
  });

  it('binds the MX port on another loopback address, to stand in for the MX in DNS', async () => {
    const { mx } = await mxBehindProxy();
    const proxy = await startStripTlsProxy({ upstreamHost: mx.host, upstreamPort: mx.port, port: mx.port });
    cleanups.push(() => proxy.close());
    expect(proxy.port).toBe(mx.port);
    expect(proxy.host).not.toBe(mx.host);
    const client = await connect(proxy);
    expect(client.secure).toBe(false);
  });

  it('passes the upstream being down on as a closed connection', async () => {
    const { mx, proxy } = await mxBehindProxy();
    await mx.close();
    await expect(connect(proxy)).rejects.toThrow();
  });
});

/**
 * A scripted upstream that writes every reply one byte at a time, with a pause
 * between bytes, so each byte is its own TCP segment. It records what reached it.
 */
async function slowUpstream(ehloReply: string): Promise<{ host: string; port: number; commands: string[]; body: string[]; close(): Promise<void> }> {
  const commands: string[] = [];
  const body: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let writing = Promise.resolve();
    const slowly = (text: string) => {
      writing = writing.then(async () => {
        for (const byte of text) {
          if (socket.destroyed) return;
          socket.write(byte);
          await new Promise((r) => setTimeout(r, 1));
        }
      });
    };
    slowly('220 slow.example.test ESMTP\r\n');
    let rest = '';
    let inBody = false;
    socket.on('data', (chunk: Buffer) => {
      rest += chunk.toString('latin1');
      for (let nl = rest.indexOf('\r\n'); nl !== -1; nl = rest.indexOf('\r\n')) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 2);
        if (inBody) {
          if (line === '.') {
            inBody = false;
            slowly('250 2.0.0 Ok: queued\r\n');
          } else body.push(line);
          continue;
        }
        commands.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') slowly(ehloReply);
        else if (verb === 'DATA') {
          inBody = true;
          slowly('354 End data with <CR><LF>.<CR><LF>\r\n');
        } else if (verb === 'STARTTLS') slowly('220 2.0.0 Ready to start TLS\r\n');
        else if (verb === 'QUIT') {
          slowly('221 2.0.0 Bye\r\n');
          void writing.then(() => socket.end());
        } else slowly('250 2.0.0 Ok\r\n');
      }
    });
  });
  const host = allocLoopbackIp();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host,
    port,
    commands,
    body,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A raw client: write bytes, read whole replies (RFC 5321 section 4.2.1 grammar). */
async function rawClient(proxy: StripTlsProxy): Promise<{ write(text: string): void; reply(): Promise<string[]>; end(): void }> {
  const socket = net.connect({ host: proxy.host, port: proxy.port });
  cleanups.push(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffered = '';
  let wake: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    wake?.();
  });
  socket.on('end', () => wake?.());
  return {
    write: (text) => void socket.write(text),
    end: () => void socket.end(),
    async reply() {
      const deadline = Date.now() + 5000;
      for (;;) {
        const lines = buffered.split('\r\n');
        const last = lines.findIndex((line, i) => i < lines.length - 1 && /^\d{3}( |$)/.test(line));
        if (last !== -1) {
          const reply = lines.slice(0, last + 1);
          buffered = lines.slice(last + 1).join('\r\n');
          return reply;
        }
        if (socket.readableEnded || Date.now() > deadline) throw new Error(`no complete reply in ${JSON.stringify(buffered)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
        wake = null;
      }
    },
  };
}

/** Every line but the last "250-", the last "250 " (RFC 5321 section 4.2.1). */
function expectWellFormedEhlo(reply: string[]): void {
  expect(reply.length).toBeGreaterThan(0);
  reply.slice(0, -1).forEach((line) => expect(line).toMatch(/^250-/));
  expect(reply.at(-1)).toMatch(/^250 /);
  expect(reply.join('\n')).not.toMatch(/STARTTLS/i);
}

describe('mitm: EHLO rewriting, with the upstream reply arriving byte by byte', () => {
  const cases: Array<[string, string, string[]]> = [
    [
      'STARTTLS in the middle',
      '250-slow.example.test Hello\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n',
      ['250-slow.example.test Hello', '250-PIPELINING', '250 8BITMIME'],
    ],
    [
      'STARTTLS as the last line (the new last line gets "250 ")',
      '250-slow.example.test Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n',
      ['250-slow.example.test Hello', '250-PIPELINING', '250 SIZE 1000'],
    ],
    ['STARTTLS the only extension', '250-slow.example.test Hello\r\n250 STARTTLS\r\n', ['250 slow.example.test Hello']],
    ['no STARTTLS: untouched', '250-slow.example.test Hello\r\n250 8BITMIME\r\n', ['250-slow.example.test Hello', '250 8BITMIME']],
  ];

  it.each(cases)('%s', async (_name, ehloReply, expected) => {
    const upstream = await slowUpstream(ehloReply);
    cleanups.push(() => upstream.close());
    const proxy = await startStripTlsProxy({ upstreamHost: upstream.host, upstreamPort: upstream.port });
    cleanups.push(() => proxy.close());
    const client = await rawClient(proxy);
    expect(await client.reply()).toEqual(['220 slow.example.test ESMTP']);
    // The command split across writes too.
    client.write('EH');
    await new Promise((r) => setTimeout(r, 20));
    client.write('LO relay.sender.test\r\n');
    const reply = await client.reply();
    expectWellFormedEhlo(reply);
    expect(reply).toEqual(expected);
    expect(proxy.strippedEhlo).toBe(ehloReply.includes('STARTTLS') ? 1 : 0);
  });

  it('refuses STARTTLS in order after pipelined commands, and never forwards it', async () => {
    const upstream = await slowUpstream('250-slow.example.test Hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n');
    cleanups.push(() => upstream.close());
    const proxy = await startStripTlsProxy({ upstreamHost: upstream.host, upstreamPort: upstream.port });
    cleanups.push(() => proxy.close());
    const client = await rawClient(proxy);
    await client.reply();
    client.write('EHLO relay.sender.test\r\nNOOP\r\nSTA');
    await new Promise((r) => setTimeout(r, 20));
    client.write('RTTLS\r\n');
    expectWellFormedEhlo(await client.reply());
    expect(await client.reply()).toEqual(['250 2.0.0 Ok']);
    expect(await client.reply()).toEqual([REFUSE_STARTTLS_REPLY.trim()]);
    expect(upstream.commands).toEqual(['EHLO relay.sender.test', 'NOOP']);
    expect(proxy.refusedStarttls).toBe(1);
  });

  it('forwards a body line reading STARTTLS as body, and the session carries on', async () => {
    const upstream = await slowUpstream('250-slow.example.test Hello\r\n250 STARTTLS\r\n');
    cleanups.push(() => upstream.close());
    const proxy = await startStripTlsProxy({ upstreamHost: upstream.host, upstreamPort: upstream.port });
    cleanups.push(() => proxy.close());
    const client = await rawClient(proxy);
    await client.reply();
    client.write('EHLO relay.sender.test\r\n');
    await client.reply();
    client.write('MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    await client.reply();
    await client.reply();
    expect(await client.reply()).toEqual(['354 End data with <CR><LF>.<CR><LF>']);
    client.write('Subject: x\r\n\r\nSTARTTLS\r\n.\r\nQUIT\r\n');
    expect(await client.reply()).toEqual(['250 2.0.0 Ok: queued']);
    expect(await client.reply()).toEqual(['221 2.0.0 Bye']);
    expect(upstream.body).toEqual(['Subject: x', '', 'STARTTLS']);
    expect(upstream.commands.at(-1)).toBe('QUIT');
    expect(proxy.refusedStarttls).toBe(0);
  });

  it("'pass' mode relays the byte-by-byte reply unchanged", async () => {
    const ehloReply = '250-slow.example.test Hello\r\n250 STARTTLS\r\n';
    const upstream = await slowUpstream(ehloReply);
    cleanups.push(() => upstream.close());
    const proxy = await startStripTlsProxy({ upstreamHost: upstream.host, upstreamPort: upstream.port, mode: 'pass' });
    cleanups.push(() => proxy.close());
    const client = await rawClient(proxy);
    await client.reply();
    client.write('EHLO relay.sender.test\r\nSTARTTLS\r\n');
    expect(await client.reply()).toEqual(['250-slow.example.test Hello', '250 STARTTLS']);
    expect(await client.reply()).toEqual(['220 2.0.0 Ready to start TLS']);
    expect(upstream.commands).toEqual(['EHLO relay.sender.test', 'STARTTLS']);
  });
});

describe('stripStarttls', () => {
  it.each<[string, string[], string[] | null]>([
    ['middle', ['250-a\r\n', '250-STARTTLS\r\n', '250 SIZE\r\n'], ['250-a\r\n', '250 SIZE\r\n']],
    ['last', ['250-a\r\n', '250-SIZE\r\n', '250 STARTTLS\r\n'], ['250-a\r\n', '250 SIZE\r\n']],
    ['lower case', ['250-a\r\n', '250 starttls\r\n'], ['250 a\r\n']],
    ['bare LF', ['250-a\n', '250 STARTTLS\n'], ['250 a\n']],
    ['a similar keyword stays', ['250-a\r\n', '250 STARTTLSX\r\n'], null],
    ['the first line is never removed', ['250 STARTTLS\r\n'], null],
    ['not a 250 reply', ['500-x\r\n', '500 STARTTLS\r\n'], null],
  ])('%s', (_name, reply, expected) => {
    expect(stripStarttls(reply)).toEqual(expected);
  });
});
