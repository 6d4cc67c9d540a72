// The last step every way in shares (SMTP ingress, the REST API, `sealrelay
// sendmail`): the message stamped with our Received field (received.ts) and
// described for the store as one NewMessage, so that policy, records and events
// see every submission alike. The hop names the queue id, the envelope recipients
// and the time; the caller names who submitted it.
import type { NewMessage } from '../store/store.ts';
import { stampMessage, type HeaderSection, type InboundHop, type ReportHeaders } from './received.ts';

export interface Submitter {
  /** Envelope sender; '' is the null sender. */
  readonly sender: string;
  readonly clientIp: string | null;
  /** An account, `token:<name>` (API) or `local:<user>` (sendmail); null when not authenticated. */
  readonly authUser: string | null;
}

export function messageToQueue(
  content: Buffer,
  hop: InboundHop,
  submitter: Submitter,
  opts: {
    /** Free bytes in front of `content` in its buffer (stampMessage writes there). */
    headroom?: number;
    section?: HeaderSection;
    /** The report headers to read; the campaign header is taken out of the message. */
    report: ReportHeaders;
    /** A campaign given apart from the header (the API's field); it wins over the header. */
    campaign?: string | null | undefined;
  },
): NewMessage {
  const stamped = stampMessage(content, hop, { report: opts.report, ...(opts.headroom ? { headroom: opts.headroom } : {}), ...(opts.section ? { section: opts.section } : {}) });
  return {
    queueId: hop.queueId,
    sender: submitter.sender,
    recipients: hop.recipients,
    body: stamped.body,
    messageId: stamped.messageId,
    subject: stamped.subject,
    campaign: opts.campaign ?? stamped.campaign,
    custom: stamped.custom,
    clientIp: submitter.clientIp,
    authUser: submitter.authUser,
    receivedAt: hop.date.getTime(),
  };
}
