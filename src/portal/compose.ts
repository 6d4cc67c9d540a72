// The portal's own mail — notifications, codes, replies — is written by nodemailer's
// MailComposer, always the same way: CRLF line ends (SMTP's, RFC 5321 §2.3.8), and no
// access to files or URLs, since every value given is data from outside and an
// attachment "path" must never read the relay's disk or fetch a URL.
import { randomBytes } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import type Mail from 'nodemailer/lib/mailer';

/** A fresh Message-ID at our host name: 128 random bits, unguessable and unique. */
export function newMessageId(hostname: string): string {
  return `<${randomBytes(16).toString('hex')}@${hostname}>`;
}

/** The whole message MailComposer makes of `options`. */
export function composeMail(options: Mail.Options): Promise<Buffer> {
  return new MailComposer({ ...options, newline: 'win', disableFileAccess: true, disableUrlAccess: true }).compile().build();
}
