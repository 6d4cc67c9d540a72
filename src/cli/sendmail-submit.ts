// The sendmail command's submission (sendmail.ts parses and dispatches): the
// message read, checked and queued as SMTP ingress would. A module of its own,
// loaded when a message is sent, so that every other command does not load
// ingress at start.
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import addressparser from 'nodemailer/lib/addressparser';
import type { Config } from '../config/schema.ts';
import { loopRefusal } from '../ingress/accept.ts';
import { messageToQueue } from '../ingress/queued-message.ts';
import { headerSection } from '../ingress/received.ts';
import { unroutable } from '../ingress/sessions.ts';
import { parsePathCommand } from '../ingress/smtp-path.ts';
import { conformMessage } from '../mime/conform.ts';
import { loadBodyKeyring, MasterKeyError } from '../portal/master-keys.ts';
import { newQueueId } from '../store/queue-id.ts';
import { domainOf, type NewMessage } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { headerRecipients, localHeaders } from './sendmail-headers.ts';
import type { SendmailRequest } from './sendmail-args.ts';
import { readSendmailInput, type InputRefusal } from './sendmail-input.ts';


// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** The OS user running the command: the default sender's local part and the Received field's comment. */
function localUser(): { user: string; uid: number } {
  const uid = process.getuid?.() ?? -1;
  try {
    return { user: userInfo().username, uid };
  } catch {
    // A container's arbitrary uid has no name.
    return { user: `uid${uid}`, uid };
  }
}

export async function submit(ctx: CliContext, request: SendmailRequest, stdin: AsyncIterable<Buffer>): Promise<string> {
  const config = readConfig(ctx);
  const now = new Date();
  const local = localUser();
  const sender = envelopeSender(request.sender, local.user, config.server.hostname);
  const fullName = request.fullName;
  if (fullName !== null && CONTROL.test(fullName)) throw new CliError(EXIT.USAGE, '-F: the full name may not hold control characters (a line break would add header fields)');
  // Refused before stdin is read: the caller learns of a bad command line at once.
  const given = request.recipients.flatMap((arg) => addressList(arg)).map((a) => checkRecipient(a, config, EXIT.USAGE, 'recipient'));
  if (!given.length && !request.extractRecipients) throw new CliError(EXIT.USAGE, 'no recipients: name them after the options, or use -t to read To, Cc and Bcc');
  const bodyKeys = loadKeys(config, ctx);

  const { max_message_bytes: maxBytes, max_line_bytes: maxLineBytes, max_recipients: maxRecipients } = config.ingress;
  const input = await readSendmailInput(stdin, { maxBytes, maxLineBytes, dotEndsInput: request.dotEndsInput });
  if (!input.ok) throw new CliError(EXIT.DATAERR, refusalText(input.refusal, maxBytes, maxLineBytes));
  let content = input.message;
  if (input.longLines) {
    // Lines over RFC 5321's 1000 octets are repaired as ingress repairs them (mime/conform.ts).
    const conformed = conformMessage(content);
    if (conformed.unfixable.length) throw new CliError(EXIT.DATAERR, `message refused: a line over 998 characters cannot be repaired (${conformed.unfixable.map((u) => `${u.part}: ${u.reason}`).join('; ')})`);
    content = conformed.body;
  }
  const fromHeaders = request.extractRecipients ? headerRecipients(content).map((a) => checkRecipient(a, config, EXIT.DATAERR, 'To/Cc/Bcc address')) : [];
  const recipients = unique([...given, ...fromHeaders]);
  if (!recipients.length) throw new CliError(EXIT.DATAERR, 'no recipients: the message has no To, Cc or Bcc address (-t)');
  if (recipients.length > maxRecipients) throw new CliError(EXIT.DATAERR, `${recipients.length} recipients; at most ${maxRecipients} per message (ingress.max_recipients)`);
  content = localHeaders(content, { from: sender || `MAILER-DAEMON@${config.server.hostname}`, fullName, date: now });

  const path = config.store.path;
  if (config.store.driver === 'sqlite' && path !== ':memory:' && !existsSync(path)) {
    throw new CliError(EXIT.TEMPFAIL, `store unavailable: no store at ${path} (has the relay run with this config? check store.path); nothing was queued`);
  }
  let message: NewMessage | null = null;
  try {
    await withStore(
      config,
      async (store) => {
        const looped = await loopRefusal(content.subarray(0, headerSection(content).end), { maxHops: config.ingress.max_hops, hostname: config.server.hostname }, store);
        if (looped) throw new CliError(EXIT.DATAERR, `message refused: ${looped.message}`);
        const queueId = newQueueId(now.getTime());
        const stamped = messageToQueue(
          content,
          { helo: 'localhost', ehlo: false, clientHostname: null, clientIp: '127.0.0.1', hostname: config.server.hostname, queueId, authenticated: true, tls: null, recipients, date: now, protocol: 'local', local },
          { sender, clientIp: null, authUser: `local:${local.user}` },
          { report: { campaign: config.reports.campaign_header, custom: config.reports.custom_header } },
        );
        if (stamped.body.length > maxBytes) throw new CliError(EXIT.DATAERR, tooLarge(maxBytes));
        message = { ...stamped, ...dsnOf(request, recipients) };
        await store.enqueue(message);
      },
      { bodyKeys },
    );
  } catch (err) {
    if (err instanceof CliError) throw err;
    // Opening, the loop look-up or the commit failed: nothing is queued (the enqueue is one transaction).
    throw new CliError(EXIT.TEMPFAIL, `store unavailable: ${oneLine((err as Error).message)}; nothing was queued`);
  }
  const queued = message as NewMessage | null;
  if (!queued) throw new CliError(EXIT.SOFTWARE, 'nothing was queued');
  return queued.queueId;
}

/** -f as given ('' and <> are the null sender), else <login>@server.hostname, checked as MAIL FROM is checked. */
function envelopeSender(given: string | null, user: string, hostname: string): string {
  if (given !== null && CONTROL.test(given)) throw new CliError(EXIT.USAGE, '-f: the sender may not hold control characters');
  const raw = given === null ? `${user}@${hostname}` : given.trim().replace(/^<(.*)>$/, '$1');
  const parsed = parsePathCommand('mail from', `MAIL FROM:<${raw}>`);
  if (parsed === false || parsed.args !== false) {
    throw new CliError(EXIT.USAGE, given === null ? `the default sender ${raw} is not a valid address; give one with -f` : `-f: ${JSON.stringify(given)} is not a valid address`);
  }
  return parsed.address;
}

/** One command-line argument: an address list as sendmail takes it ("a@b.example, Ann <c@d.example>"). */
function addressList(arg: string): string[] {
  if (CONTROL.test(arg)) throw new CliError(EXIT.USAGE, `recipient ${JSON.stringify(arg)} holds control characters`);
  const found = addressparser(arg, { flatten: true }).map((a) => a.address || a.name);
  if (!found.length) throw new CliError(EXIT.USAGE, `recipient ${JSON.stringify(arg)} is not an address`);
  return found;
}

/**
 * A recipient checked as RCPT TO checks it: RFC 5321 syntax (smtp-path.ts), the
 * domainless <postmaster> rewritten to ingress.postmaster, domains no MX lookup can
 * serve refused (unless delivery.routes names them). A local name without a domain
 * is refused: this relay delivers to other hosts only.
 */
function checkRecipient(address: string, config: Config, code: typeof EXIT.USAGE | typeof EXIT.DATAERR, what: string): string {
  const shown = JSON.stringify(address);
  if (CONTROL.test(address)) throw new CliError(code, `${what} ${shown} holds control characters`);
  if (!address.includes('@') && address.toLowerCase() !== 'postmaster') {
    throw new CliError(code, `${what} ${shown} has no domain: this relay delivers to other hosts only (give user@domain; for cron, set MAILTO)`);
  }
  const parsed = parsePathCommand('rcpt to', `RCPT TO:<${address}>`);
  if (parsed === false || parsed.args !== false) throw new CliError(code, `${what} ${shown} is not a valid address`);
  if (!parsed.address.includes('@')) {
    if (!config.ingress.postmaster) throw new CliError(code, `${what} ${shown}: postmaster goes nowhere here (ingress.postmaster is not set)`);
    return config.ingress.postmaster;
  }
  const domain = domainOf(parsed.address);
  const routed = Object.keys(config.delivery.routes).some((d) => d.toLowerCase() === domain);
  const why = routed ? null : unroutable(domain);
  if (why) throw new CliError(code, `${what} ${shown}: ${why}`);
  return parsed.address;
}

/** Each address once (any case), as first written: smtp-server keeps one RCPT per address too. */
function unique(addresses: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const a of addresses) if (!seen.has(a.toLowerCase())) seen.set(a.toLowerCase(), a);
  return [...seen.values()];
}

/** store.encryption's keys, so that the body is sealed at rest as the relay seals what it queues; a key that cannot be read is a config error. */
function loadKeys(config: Config, ctx: CliContext) {
  try {
    return loadBodyKeyring(config.store, ctx.env);
  } catch (err) {
    if (err instanceof MasterKeyError) throw new CliError(EXIT.CONFIG, `store.encryption: ${err.message}`);
    throw err;
  }
}

/** -N and -V as SMTP's NOTIFY and ENVID would give them. */
function dsnOf(request: SendmailRequest, recipients: readonly string[]): Pick<NewMessage, 'envid' | 'recipientDsn'> {
  if (request.notify === null && request.envid === null) return {};
  return { envid: request.envid, recipientDsn: recipients.map(() => ({ notify: request.notify, orcpt: null })) };
}

function refusalText(refusal: InputRefusal, maxBytes: number, maxLineBytes: number): string {
  switch (refusal) {
    case 'size':
      return tooLarge(maxBytes);
    case 'nul':
      return 'message refused: it holds a NUL byte (no mail may; send binary content as a MIME attachment)';
    case 'bare-cr':
      return 'message refused: it holds a carriage return that does not end a line (bare CR)';
    case 'bare-newline':
    case 'line-length':
      return `message refused: a line is longer than ${maxLineBytes} bytes (ingress.max_line_bytes)`;
  }
}

function tooLarge(maxBytes: number): string {
  return `message refused: larger than ${maxBytes} bytes (ingress.max_message_bytes)`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
