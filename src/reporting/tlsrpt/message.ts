// A report for a `mailto:` rua destination (RFC 8460 §5.3), as a message queued in the
// relay's own queue: it then goes through policy and delivery like any mail, and is
// DKIM-signed on the way out when dkim.domains has the From address's domain (§5.3
// asks for a signature of the submitter's domain: the README says to configure one).
//
// The message: multipart/report; report-type="tlsrpt" with a short text part and the
// gzipped report as application/tlsrpt+gzip under the §5.3 file name; Subject and the
// TLS-Report-Domain / TLS-Report-Submitter header fields as §5.3 gives them;
// Auto-Submitted: auto-generated (RFC 3834), so responders stay quiet.
import crypto from 'node:crypto';
import { newQueueId } from '../../store/queue-id.ts';
import type { NewMessage } from '../../store/store.ts';

export interface ReportMessageInput {
  readonly from: string;
  /** The address of the mailto: URI. */
  readonly to: string;
  readonly domain: string;
  readonly submitter: string;
  readonly reportId: string;
  readonly fileName: string;
  readonly gzipped: Buffer;
  /** The day reported, for the text part. */
  readonly day: string;
  readonly date?: Date;
}

function assertHeaderSafe(what: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new TypeError(`${what} must not contain line breaks`);
}

export async function buildReportMessage(input: ReportMessageInput): Promise<NewMessage> {
  for (const [what, value] of Object.entries({ from: input.from, to: input.to, domain: input.domain, submitter: input.submitter, reportId: input.reportId })) assertHeaderSafe(what, value);
  const date = input.date ?? new Date();
  const queueId = newQueueId(date.getTime());
  const messageId = `<tlsrpt.${queueId}.${crypto.randomBytes(6).toString('hex')}@${input.submitter}>`;
  const subject = `Report Domain: ${input.domain} Submitter: ${input.submitter} Report-ID: <${input.reportId}>`;
  const text = [
    `This is an aggregate TLS report (RFC 8460) from ${input.submitter} for ${input.domain},`,
    `covering ${input.day} 00:00 to 24:00 UTC. The report is attached as ${input.fileName}.`,
    '',
  ].join('\r\n');
  // Loaded when a report is made: MailComposer is start-up time every CLI command would pay.
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer');
  const root = new MailComposer({
    from: { name: '', address: input.from },
    to: { name: '', address: input.to },
    subject,
    date,
    messageId,
    headers: { 'TLS-Report-Domain': input.domain, 'TLS-Report-Submitter': input.submitter, 'Auto-Submitted': 'auto-generated' },
    alternatives: [{ contentType: 'text/plain; charset=us-ascii', content: text }],
    attachments: [{ filename: input.fileName, content: input.gzipped, contentType: 'application/tlsrpt+gzip', contentTransferEncoding: 'base64' }],
  }).compile();
  // MailComposer makes a multipart/mixed; §5.3 wants a multipart/report of type tlsrpt.
  root.setHeader('Content-Type', 'multipart/report; report-type="tlsrpt"');
  const body = await root.build();
  return {
    queueId,
    sender: input.from,
    recipients: [input.to],
    body,
    messageId,
    subject,
    clientIp: null,
    authUser: null,
    receivedAt: date.getTime(),
  };
}
