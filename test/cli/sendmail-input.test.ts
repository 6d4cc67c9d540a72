// The sendmail command line and stdin reader on their own: how main.ts finds the
// sendmail arguments (link name or subcommand), getopt-style options as
// Postfix's sendmail reads them, and line ends, the lone dot, NUL, bare CR and the
// size limit wherever chunk boundaries fall.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseSendmailArgs } from '../../src/cli/sendmail-args.ts';
import { sendmailInvocation } from '../../src/cli/sendmail.ts';
import { headerRecipients, localHeaders } from '../../src/cli/sendmail-headers.ts';
import { readSendmailInput } from '../../src/cli/sendmail-input.ts';

describe('parseSendmailArgs', () => {
  const table: [string[], Partial<ReturnType<typeof parseSendmailArgs>>][] = [
    [['-t', '-i'], { extractRecipients: true, dotEndsInput: false, recipients: [] }],
    [['-ti'], { extractRecipients: true, dotEndsInput: false }],
    [['-oi', 'a@b.example'], { dotEndsInput: false, recipients: ['a@b.example'] }],
    [['-o', 'i'], { dotEndsInput: false }],
    [['-fx@y.example', '-FAnn Example'], { sender: 'x@y.example', fullName: 'Ann Example' }],
    [['-f', 'x@y.example', '-F', 'Ann'], { sender: 'x@y.example', fullName: 'Ann' }],
    [['-r', 'x@y.example'], { sender: 'x@y.example' }],
    // cronie's call: -FCronDaemon -i -B8BITMIME -oem user
    [['-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'u@h.example'], { fullName: 'CronDaemon', dotEndsInput: false, recipients: ['u@h.example'] }],
    [['-odi', '-om', '-o7', '-Ooption=value', '-n', '-U', '-L', 'label', 'a@b.example'], { dotEndsInput: true, recipients: ['a@b.example'] }],
    [['-N', 'success,delay', '-V', 'env-1', 'a@b.example'], { notify: 'SUCCESS,DELAY', envid: 'env-1' }],
    [['-bp'], { mode: 'mailq' }],
    [['-bm', 'a@b.example'], { mode: 'deliver' }],
    [['-C', '/etc/x.yaml', 'a@b.example'], { configFile: '/etc/x.yaml' }],
    // POSIX: options end at the first recipient, and after --.
    [['a@b.example', '-t'], { extractRecipients: false, recipients: ['a@b.example', '-t'] }],
    [['--', '-weird@b.example'], { recipients: ['-weird@b.example'] }],
  ];
  for (const [args, expected] of table) {
    it(`reads ${JSON.stringify(args)}`, () => expect(parseSendmailArgs(args)).toMatchObject(expected));
  }

  const refused: [string[], RegExp][] = [
    [['-bs'], /-bs: not supported: an SMTP dialogue on stdin/],
    [['-bd'], /-bd: not supported/],
    [['-bi'], /-bi: not supported: there is no alias database/],
    [['-q'], /-q: queue runs/],
    [['-I'], /-I: there is no alias database/],
    [['-f'], /-f needs a value/],
    [['-N', 'never,success'], /-N: give never/],
    [['-V', 'has space'], /-V: the envelope id/],
    [['-k'], /-k: unknown option/],
    [['--verbose'], /unknown option --verbose/],
  ];
  for (const [args, text] of refused) {
    it(`refuses ${JSON.stringify(args)}`, () => expect(() => parseSendmailArgs(args)).toThrow(text));
  }
});

describe('readSendmailInput', () => {
  const limits = { maxBytes: 1000, maxLineBytes: 200 };
  /** Reads `text` split into chunks at every possible place (one byte each), and whole. */
  async function read(text: string | Buffer, dotEndsInput = true, chunkBytes?: number) {
    const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1');
    const chunks: Buffer[] = [];
    const size = chunkBytes ?? bytes.length;
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    return readSendmailInput(Readable.from(chunks), { ...limits, dotEndsInput });
  }
  const message = (r: Awaited<ReturnType<typeof read>>) => (r.ok ? r.message.toString('latin1') : r.refusal);
  async function both(text: string, dotEndsInput = true) {
    const whole = await read(text, dotEndsInput);
    const bytewise = await read(text, dotEndsInput, 1);
    // The same answer however the bytes arrive (the size read before a refusal may differ).
    expect(message(bytewise)).toEqual(message(whole));
    return whole;
  }

  it('turns LF and CRLF into CRLF, and ends an unterminated last line', async () => {
    expect(message(await both('A: 1\nB: 2\r\n\r\nbody'))).toBe('A: 1\r\nB: 2\r\n\r\nbody\r\n');
  });
  it('a lone dot (LF or CRLF) ends the input; nothing after it is kept', async () => {
    expect(message(await both('S: x\n\nbefore\n.\nafter\n'))).toBe('S: x\r\n\r\nbefore\r\n');
    expect(message(await both('S: x\r\n\r\nbefore\r\n.\r\nafter\r\n'))).toBe('S: x\r\n\r\nbefore\r\n');
  });
  it('a dot that starts a longer line, or ends the input without a line end, is data', async () => {
    expect(message(await both('S: x\n\n.hidden\n..\n.'))).toBe('S: x\r\n\r\n.hidden\r\n..\r\n.\r\n');
  });
  it('with -i the lone dot is data', async () => {
    expect(message(await both('S: x\n\nbefore\n.\nafter\n', false))).toBe('S: x\r\n\r\nbefore\r\n.\r\nafter\r\n');
  });
  it('refuses a NUL byte, a bare CR (also as the last byte), an over-long line and too many bytes', async () => {
    expect(message(await both('S: x\n\na\0b\n'))).toBe('nul');
    expect(message(await both('S: x\n\na\rb\n'))).toBe('bare-cr');
    expect(message(await both('S: x\n\nab\r'))).toBe('bare-cr');
    expect(message(await both(`S: x\n\n${'y'.repeat(300)}\n`))).toBe('line-length');
    expect(message(await both(`S: x\n\n${'y\n'.repeat(600)}`))).toBe('size');
  });
  it('stops reading at the limit: the rest of a long source is not read', async () => {
    let pulled = 0;
    async function* long() {
      // 50 times the limit (an endless source would hang the test if the reader did not stop).
      for (let i = 0; i < 10_000; i++) {
        pulled++;
        yield Buffer.from('line\n');
      }
    }
    const result = await readSendmailInput(long(), { ...limits, dotEndsInput: true });
    expect(result).toMatchObject({ ok: false, refusal: 'size' });
    expect(pulled).toBeLessThan(200);
  });
});

describe('sendmailInvocation', () => {
  const node = ['/usr/bin/node'];
  it('a `sendmail` or `mailq` link takes every argument as sendmail reads them', () => {
    expect(sendmailInvocation([...node, '/usr/sbin/sendmail', '-t', '-oi', '-V', 'e1'])).toEqual({
      argv: [...node, '/usr/sbin/sendmail', 'sendmail'],
      sendmail: { mode: 'deliver', args: ['-t', '-oi', '-V', 'e1'], viaLink: true },
    });
    expect(sendmailInvocation([...node, '/usr/bin/mailq'])?.sendmail).toEqual({ mode: 'mailq', args: [], viaLink: true });
  });
  it('`sealrelay [-c file] sendmail …` keeps the config option for commander and the rest for sendmail', () => {
    for (const config of [['-c', 'x.yaml'], ['--config', 'x.yaml'], ['--config=x.yaml'], ['-cx.yaml'], []]) {
      expect(sendmailInvocation([...node, '/opt/sealrelay/bin/sealrelay.js', ...config, 'sendmail', '-c', '-V', 'e1', 'a@b.example'])).toEqual({
        argv: [...node, '/opt/sealrelay/bin/sealrelay.js', ...config, 'sendmail'],
        sendmail: { mode: 'deliver', args: ['-c', '-V', 'e1', 'a@b.example'], viaLink: false },
      });
    }
  });
  it('other commands are left to commander', () => {
    const argv = [...node, '/opt/sealrelay/bin/sealrelay.js', 'queue', 'list', 'sendmail'];
    expect(sendmailInvocation(argv)).toEqual({ argv, sendmail: null });
  });
});

describe('localHeaders and headerRecipients', () => {
  const date = new Date(Date.UTC(2026, 11, 3, 10, 11, 12));
  it('adds From (the full name quoted, or RFC 2047 when not ASCII) and Date where missing; removes Bcc with its continuation lines', () => {
    const msg = Buffer.from('To: a@b.example\r\nBcc: x@y.example,\r\n z@y.example\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n');
    expect(localHeaders(msg, { from: 'u@h.example', fullName: 'Ann "A" Example', date }).toString()).toBe(
      'To: a@b.example\r\nSubject: s\r\nFrom: "Ann \\"A\\" Example" <u@h.example>\r\nDate: Thu, 03 Dec 2026 10:11:12 +0000\r\n\r\nBcc: in the body stays\r\n',
    );
    expect(localHeaders(Buffer.from('Subject: s\r\n\r\nb\r\n'), { from: 'u@h.example', fullName: 'Zoë', date }).toString()).toContain('\r\nFrom: =?UTF-8?Q?Zo=C3=AB?= <u@h.example>\r\n');
  });
  it('leaves a message with From and Date and no Bcc as it is', () => {
    const msg = Buffer.from('From: a@b.example\r\nDate: Thu, 03 Dec 2026 10:11:12 +0000\r\n\r\nhi\r\n');
    expect(localHeaders(msg, { from: 'u@h.example', fullName: null, date })).toBe(msg);
  });
  it('-t reads every To, Cc and Bcc field, groups and display names included, and not the body', () => {
    const msg = Buffer.from('To: Ann <a@b.example>, c@d.example\r\nCc: team: e@f.example, g@h.example;\r\nBcc: i@j.example\r\nResent-To: no@k.example\r\n\r\nTo: body@l.example\r\n');
    expect(headerRecipients(msg)).toEqual(['a@b.example', 'c@d.example', 'e@f.example', 'g@h.example', 'i@j.example']);
  });
});
