/**
 * marked-message: a lab-results message as an application sends it (text part and a
 * PDF attachment) whose subject, body and attachment name each carry a marker, so a
 * test can show that none of them appears where it must not (a database file, a
 * notification, a page).
 */
export const MARKERS = { subject: 'SUBJECTMARKER7f3a', body: 'BODYMARKER91c2', attachment: 'ATTACHMARKER55e0' } as const;

export function markedMessage(opts: { from: string; to: string; headers?: readonly string[]; attachment: Buffer }): string {
  return [
    `From: ${opts.from}`,
    `To: ${opts.to}`,
    `Subject: Results ${MARKERS.subject}`,
    ...(opts.headers ?? []),
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Dear Pat, ${MARKERS.body}: HbA1c 6.1%.`,
    '--b1',
    `Content-Type: application/pdf; name="${MARKERS.attachment}.pdf"`,
    `Content-Disposition: attachment; filename="${MARKERS.attachment}.pdf"`,
    'Content-Transfer-Encoding: base64',
    '',
    opts.attachment.toString('base64').replace(/.{76}/g, '$&\r\n'),
    '--b1--',
    '',
  ].join('\r\n');
}
