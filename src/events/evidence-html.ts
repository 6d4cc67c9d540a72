// The printable form of signed evidence, for an auditor: one self-contained HTML
// page (no script, no remote content, a CSP that allows only its own stylesheet)
// that carries the signed JSON inside it, so the page itself can be verified.
//
// The page is made from the signed envelope alone, deterministically (no clock, no
// config), so `sealrelay evidence verify page.html` checks the embedded signature
// AND renders the page again from the verified content: a page whose visible text
// was edited, even with the embedded JSON left intact, no longer matches and fails.
// (A page made by a version of sealrelay with another layout fails that second check
// too; its JSON is still authentic and can be taken out with `--format json`.)
//
// Every value is escaped (the shared `html` template, src/html.ts). Inside the
// <script type="application/json"> block — data the browser never runs — "<", ">"
// and "&" are written as JSON \u escapes, so no value can end the block.
import { createHash, type KeyObject } from 'node:crypto';
import { canonicalBytes, verifyEvidence, type EvidenceAttempt, type EvidenceRecipient, type SignedEvidence, type Verification } from './evidence.ts';
import { html, trustedHtml, type SafeHtml } from '../html.ts';

const EMBED_OPEN = '<script type="application/json" id="sealrelay-signed-evidence">';
const EMBED_CLOSE = '</script>';

const STYLE = `
body{font:11pt/1.45 Georgia,"DejaVu Serif",serif;color:#111;margin:2em auto;max-width:60em;padding:0 1em}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:2px solid #333}
h3{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.4em 0 .8em;font-size:.95em}
th,td{border:1px solid #999;padding:.2em .45em;text-align:left;vertical-align:top}
th{background:#eee;font-weight:600}
table.attempt{table-layout:fixed}col.key{width:12em}
code,.mono{font-family:"DejaVu Sans Mono",monospace;font-size:.88em;word-break:break-all}
.meta th{width:10em}
.recipient{break-inside:avoid-page;page-break-inside:avoid}
.attempt{break-inside:avoid;page-break-inside:avoid}
.outcome{font-weight:700}
.note{font-size:.9em;color:#333;border-top:1px solid #999;margin-top:2em;padding-top:.5em}
@page{margin:18mm 15mm}
@media print{body{margin:0;max-width:none}th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
`;

/** The page for signed evidence: deterministic in the envelope alone. */
export function renderEvidenceHtml(signed: SignedEvidence): string {
  const { payload, signature } = signed;
  const styleHash = createHash('sha256').update(STYLE).digest('base64');
  const csp = `default-src 'none'; style-src 'sha256-${styleHash}'; img-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'`;
  const messages = payload.messages.map(
    (m) => html`<h2>Message ${m.queueId}</h2>
<table class="meta">
<tr><th>Queue id</th><td class="mono">${m.queueId}</td></tr>
<tr><th>Message-ID</th><td class="mono">${m.messageId ?? '(none)'}</td></tr>
<tr><th>Envelope sender</th><td>${m.sender || '(null sender)'}</td></tr>
<tr><th>Recipients</th><td>${String(m.recipients.length)}</td></tr>
</table>
${m.recipients.map(recipientSection)}`,
  );
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="referrer" content="no-referrer">
<title>Delivery evidence ${payload.reference}</title>
<style>${trustedHtml(STYLE)}</style>
</head>
<body>
<h1>Delivery evidence</h1>
<table class="meta">
<tr><th>Asked for</th><td class="mono">${payload.reference}</td></tr>
<tr><th>Relay</th><td>${payload.relay}</td></tr>
<tr><th>Generated</th><td>${payload.generatedAt}</td></tr>
<tr><th>Signed by key</th><td class="mono">${signature.keyId} (${signature.alg})</td></tr>
</table>
${payload.messages.length ? messages : html`<p>No delivery records match.</p>`}
<p class="note">This page carries the signed record it shows. To check it: <code>sealrelay evidence verify THIS-FILE --key PUBLIC-KEY-FILE</code>, with the relay's published public key; its key id must be ${signature.keyId}. The check also confirms that the text of this page is exactly what the signed record says.</p>
${trustedHtml(EMBED_OPEN)}${trustedHtml(embedJson(signed))}${trustedHtml(EMBED_CLOSE)}
</body>
</html>
`;
  return page.toString();
}

/** The signed JSON inside a page made by renderEvidenceHtml; null when the text holds no such block (or more than one). */
export function extractEmbeddedEvidence(html: string): string | null {
  const start = html.indexOf(EMBED_OPEN);
  if (start < 0 || html.indexOf(EMBED_OPEN, start + 1) >= 0) return null;
  const from = start + EMBED_OPEN.length;
  const end = html.indexOf(EMBED_CLOSE, from);
  return end < 0 ? null : html.slice(from, end);
}

/**
 * Verifies a signed evidence file in either form: JSON, or a page from
 * renderEvidenceHtml — whose embedded JSON must verify and whose whole text must be
 * exactly the page that JSON renders to.
 */
export function verifyEvidenceDocument(text: string, publicKey: KeyObject): Verification & { readonly form: 'json' | 'html' } {
  if (!/^\s*</.test(text)) return { ...verifyEvidence(text, publicKey), form: 'json' };
  const embedded = extractEmbeddedEvidence(text);
  if (embedded === null) return { valid: false, reason: 'an HTML file without exactly one embedded signed evidence block', keyId: null, form: 'html' };
  const result = verifyEvidence(embedded, publicKey);
  if (!result.valid) return { ...result, form: 'html' };
  let again: string;
  try {
    again = renderEvidenceHtml(JSON.parse(embedded) as SignedEvidence);
  } catch (err) {
    return { valid: false, reason: `the signed content cannot be shown as a page: ${(err as Error).message}`, keyId: result.keyId, form: 'html' };
  }
  if (again !== text) {
    return { valid: false, reason: 'the embedded signed record is authentic, but the visible page differs from it (edited, or made by another version of sealrelay): trust only the signed record', keyId: result.keyId, form: 'html' };
  }
  return { ...result, form: 'html' };
}

function embedJson(signed: SignedEvidence): string {
  return canonicalBytes(signed)
    .toString('utf8')
    .replace(/[<>&]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function recipientSection(r: EvidenceRecipient): SafeHtml {
  const d = r.decision;
  return html`<section class="recipient">
<h3>${r.recipient} <span class="outcome">— ${r.finalOutcome ?? 'no attempt yet'}</span></h3>
<table>
<tr><th>Recipient item</th><td class="mono">#${String(r.seq)} (domain ${r.domain || '(none)'})</td></tr>
${
  d
    ? html`<tr><th>Decision</th><td>rule <strong>${d.rule}</strong>: mode ${d.mode}, verification ${d.verification}${d.fallbackChain.length ? `, fallback ${d.fallbackChain.join(' → ')}` : ''}</td></tr>
<tr><th>Why</th><td>${d.reasons.join('; ') || '-'}</td></tr>`
    : ''
}
</table>
${r.attempts.map(attemptTable)}
${
  r.portalEvents.length
    ? html`<h3>Portal events</h3>
<table><thead><tr><th>Time</th><th>Event</th><th>Item</th><th>Who</th><th>Note</th></tr></thead><tbody>
${r.portalEvents.map((e) => html`<tr><td>${e.at}</td><td>${e.outcome}</td><td class="mono">${e.itemId}</td><td>${e.operator ? `operator ${e.operator}` : [e.ip, e.userAgent].filter(Boolean).join(' ') || '-'}</td><td>${e.detail ?? ''}</td></tr>\n`)}</tbody></table>`
    : ''
}
${
  r.operatorActions.length
    ? html`<h3>Operator actions</h3>
<table><thead><tr><th>Time</th><th>Action</th><th>Result</th><th>Operator</th><th>Attempts before</th></tr></thead><tbody>
${r.operatorActions.map((a) => html`<tr><td>${a.at}</td><td>${a.action}</td><td>${a.outcome}</td><td>${a.operator}</td><td>${String(a.attemptsBefore)}</td></tr>\n`)}</tbody></table>`
    : ''
}
</section>
`;
}

function attemptTable(a: EvidenceAttempt): SafeHtml {
  const rows: [string, string][] = [
    ['Time', `${a.at} (${a.durationMs} ms)`],
    ['Outcome', a.outcome],
    ['Method', a.method],
    ['MX', a.mx ? `${a.mx.host} [${a.mx.ip ?? 'no address'}]:${a.mx.port}${a.mx.preference === null ? ' (static route)' : ` preference ${a.mx.preference}`}` : '-'],
    ['STARTTLS offered', a.starttlsOffered === null ? '-' : a.starttlsOffered ? 'yes' : 'no'],
    ['TLS', a.tls ? `${a.tls.protocol} ${a.tls.cipher} (${a.tls.bits} bits)` : 'none'],
  ];
  if (a.tls) {
    rows.push(['Certificate', a.tls.authorized ? 'verified (chain and name)' : `not verified: ${a.tls.authorizationError ?? 'unknown'}`]);
    rows.push(['Certificate subject', a.tls.peerCertSubject ?? '-']);
    rows.push(['Certificate SHA-256', a.tls.peerCertFingerprint256 ?? '-']);
    if (a.tls.peerCertNotAfter) rows.push(['Certificate valid until', a.tls.peerCertNotAfter]);
  }
  if (a.mtaSts) rows.push(['MTA-STS', `${a.mtaSts.mode}${a.mtaSts.id ? ` (id ${a.mtaSts.id})` : ''}: ${a.mtaSts.result}`]);
  if (a.dane) rows.push(['DANE', `${a.dane.status}${a.dane.matched ? `: matched TLSA ${a.dane.matched}` : ''} — ${a.dane.reason}${a.dane.tlsa.length ? `; usable TLSA: ${a.dane.tlsa.join('; ')}` : ''}`]);
  if (a.encryption) {
    rows.push(['Encryption', `${a.encryption.method === 'pgp' ? 'OpenPGP' : 'S/MIME'}${a.encryption.signed ? ', signed by the relay' : ''}`]);
    rows.push(['Recipient key', `${a.encryption.keyFingerprint} (${a.encryption.keySource === 'wkd' ? 'found through WKD' : 'imported'})`]);
  }
  if (a.fallback) rows.push(['Fallback', `${a.fallback.reason}; tried: ${a.fallback.tried.join('; ') || '-'}`]);
  if (a.portal) rows.push(['Portal item', `${a.portal.itemId}, until ${a.portal.expiresAt}, master key ${a.portal.keyId}${a.portal.keyInLink ? ', key part in link' : ''}${a.portal.passphrase ? ', passphrase' : ''}; notification ${a.portal.notification}`]);
  rows.push(['SMTP reply', smtpReply(a.smtp)]);
  return html`<table class="attempt">
<colgroup><col class="key"><col></colgroup>
<thead><tr><th colspan="2">Attempt ${String(a.attempt)}</th></tr></thead><tbody>
${rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>\n`)}</tbody></table>
`;
}

/** "250 2.0.0 Ok", without repeating a code the response text already starts with. */
function smtpReply(smtp: EvidenceAttempt['smtp']): string {
  const prefix = [smtp.code, smtp.enhanced].filter((p) => p !== null).map(String);
  let text = smtp.response.trim();
  for (const p of prefix) if (text.startsWith(`${p} `) || text === p) text = text.slice(p.length).trimStart();
  return [...prefix, text].filter(Boolean).join(' ');
}

