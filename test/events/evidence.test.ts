// Evidence built from a real SQLite store, signed with Ed25519 and verified: a
// signed file verifies (as JSON, pretty-printed or with its keys in another order,
// and as the HTML page); one changed byte anywhere in the payload fails; another
// key fails, also when the file brings its own key. The page is opened in real
// Chromium: no script runs, values are escaped, a screenshot is kept.
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEvidence, canonicalBytes, formatSignedEvidence, keyIdOf, signEvidence, verifyEvidence, type SignedEvidence } from '../../src/events/evidence.ts';
import { renderEvidenceHtml, verifyEvidenceDocument } from '../../src/events/evidence-html.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { useBrowser } from '../helpers/browser.ts';
import { CERT_FP, HOSTILE_AGENT, PGP_FP, SECRET_BODY, SECRET_SUBJECT, seedEvidenceStore, type Seeded } from './seed-evidence.ts';

const relayKeys = generateKeyPairSync('ed25519');
const otherKeys = generateKeyPairSync('ed25519');
let dir: string;
let seeded: Seeded;
let signed: SignedEvidence;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-evidence-'));
  const path = join(dir, 'relay.db');
  seeded = await seedEvidenceStore(path);
  const store = new SqliteStore(path);
  try {
    const records = await store.queryLog({ message: seeded.messageId });
    signed = signEvidence(buildEvidence({ relay: 'relay.clinic.example', reference: seeded.messageId, records, now: new Date('2026-12-03T10:00:00Z') }), relayKeys.privateKey);
  } finally {
    await store.close();
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The text with the byte at `i` changed (its lowest bit flipped: a digit becomes another digit, a letter another letter). */
const flip = (text: string, i: number) => text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 1) + text.slice(i + 1);

describe('evidence document', () => {
  it('tells per recipient the decision and every attempt with its TLS, certificate, MTA-STS, encryption and portal facts; never subject or body', () => {
    const { payload } = signed;
    expect(payload).toMatchObject({ type: 'sealrelay-evidence', version: 1, relay: 'relay.clinic.example', generatedAt: '2026-12-03T10:00:00.000Z', reference: seeded.messageId });
    expect(payload.messages).toHaveLength(1);
    const [message] = payload.messages;
    expect(message!.queueId).toBe(seeded.queueId);
    const [ann, bob, pat] = message!.recipients;
    expect(ann).toMatchObject({ recipient: 'ann@tls.example', finalOutcome: 'delivered', decision: { rule: 'clinics', mode: 'forced', verification: 'mta-sts' } });
    expect(ann!.attempts.map((a) => [a.attempt, a.outcome, a.method])).toEqual([
      [1, 'deferred', 'none'],
      [2, 'delivered', 'tls'],
    ]);
    expect(ann!.attempts[1]).toMatchObject({
      mx: { host: 'mx.tls.example', ip: '127.0.0.1', port: 25, preference: 10 },
      tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, peerCertFingerprint256: CERT_FP },
      mtaSts: { mode: 'enforce', result: 'pass' },
    });
    expect(bob).toMatchObject({ finalOutcome: 'delivered', attempts: [{ method: 'pgp', encryption: { method: 'pgp', keyFingerprint: PGP_FP, keySource: 'wkd' }, fallback: { tried: ['pgp: used'] } }] });
    expect(pat).toMatchObject({ finalOutcome: 'portal-notified', attempts: [{ method: 'portal', portal: { itemId: seeded.itemId } }] });
    expect(pat!.portalEvents.map((e) => [e.outcome, e.ip])).toEqual([
      ['portal-viewed', '203.0.113.7'],
      ['portal-opened', '203.0.113.8'],
    ]);
    const text = formatSignedEvidence(signed);
    expect(text).not.toContain(SECRET_SUBJECT);
    expect(text).not.toContain(SECRET_BODY);
    expect(text).not.toMatch(/"subject"/);
  });

  it('canonical form is RFC 8785 JCS: keys sorted, numbers and strings in ECMAScript form (the RFC’s example)', () => {
    expect(canonicalBytes({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }).toString()).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    // RFC 8785 §3.2.2 input and §3.2.3 output.
    const input = JSON.parse('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}');
    expect(canonicalBytes(input).toString()).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });
});

describe('signing and verifying', () => {
  it('a signed file verifies — as written, pretty-printed, and with its keys in another order', () => {
    const text = formatSignedEvidence(signed);
    expect(verifyEvidence(text, relayKeys.publicKey)).toMatchObject({ valid: true, keyId: keyIdOf(relayKeys.publicKey) });
    expect(verifyEvidence(JSON.stringify(signed, null, 2), relayKeys.publicKey).valid).toBe(true);
    // The verifier canonicalises again: the order keys appear in the file does not matter, only their values.
    const reversed = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reversed) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversed(x)])) : v;
    const reordered = JSON.stringify(reversed(JSON.parse(text)));
    expect(reordered).not.toBe(text.trim());
    expect(verifyEvidence(reordered, relayKeys.publicKey)).toMatchObject({ valid: true });
  });

  it('one changed byte anywhere in the payload fails', () => {
    const text = formatSignedEvidence(signed);
    const from = text.indexOf('{"payload":') + '{"payload":'.length;
    const to = text.indexOf(',"signature":{');
    expect(to - from).toBeGreaterThan(1000);
    const accepted: number[] = [];
    for (let i = from; i < to; i++) if (verifyEvidence(flip(text, i), relayKeys.publicKey).valid) accepted.push(i);
    expect(accepted).toEqual([]);
    // A changed digit still parses: only the signature can tell.
    const digit = text.indexOf('"bits":256') + '"bits":'.length;
    expect(verifyEvidence(flip(text, digit), relayKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/signature does not match/) });
    // …and so does a changed signature.
    const sigAt = text.indexOf('"value":"') + '"value":"'.length + 5;
    expect(verifyEvidence(flip(text, sigAt), relayKeys.publicKey).valid).toBe(false);
  });

  it('another key fails: the wrong key given, or a file signed by another key — even one that brings its own key or names ours', () => {
    const text = formatSignedEvidence(signed);
    expect(verifyEvidence(text, otherKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/signed by key SHA256:[0-9a-f]{64}, not by the key given/) });
    // A forger re-signs changed content with their own key.
    const forgedPayload = { ...signed.payload, relay: 'forged.example' };
    const forged = signEvidence(forgedPayload, otherKeys.privateKey);
    expect(verifyEvidence(formatSignedEvidence(forged), relayKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/not by the key given/) });
    // …and brings their public key along: refused, a key is never taken from the file.
    const withKey = { ...forged, signature: { ...forged.signature, publicKey: otherKeys.publicKey.export({ type: 'spki', format: 'pem' }) } };
    expect(verifyEvidence(JSON.stringify(withKey), relayKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/never taken from the file/) });
    // …or names our key id over their own signature.
    const lying = { ...forged, signature: { ...forged.signature, keyId: keyIdOf(relayKeys.publicKey) } };
    expect(verifyEvidence(JSON.stringify(lying), relayKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/signature does not match/) });
    // A signature made with the relay's key over other bytes than the canonical payload does not count either.
    const overPretty = { ...signed, signature: { ...signed.signature, value: sign(null, Buffer.from(JSON.stringify(signed.payload, null, 2)), relayKeys.privateKey).toString('base64') } };
    expect(verifyEvidence(JSON.stringify(overPretty), relayKeys.publicKey).valid).toBe(false);
  });

  it('bad input gets a reason, never an exception', () => {
    for (const text of ['', 'null', '[]', '{"payload":{}}', '{"payload":{},"signature":{"alg":"RS256"}}', '{"payload":1,"signature":{"alg":"Ed25519","keyId":"x","value":"!!"}}']) {
      const result = verifyEvidence(text, relayKeys.publicKey);
      expect(result.valid).toBe(false);
      if (!result.valid) expect(result.reason).toBeTruthy();
    }
  });
});

describe('HTML evidence', () => {
  const browser = useBrowser({ trust: () => [] });

  it('carries the signed JSON: verifies; a changed byte in the visible page or in the embedded JSON fails', () => {
    const html = renderEvidenceHtml(signed);
    expect(verifyEvidenceDocument(html, relayKeys.publicKey)).toMatchObject({ valid: true, form: 'html' });
    // The visible text edited, the embedded record left alone.
    const visible = html.indexOf('TLS_AES_256_GCM_SHA384 (256 bits)');
    expect(visible).toBeGreaterThan(0);
    expect(verifyEvidenceDocument(flip(html, visible + 'TLS_AES_256_GCM_SHA384 ('.length), relayKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/visible page differs/) });
    // The embedded record edited.
    const embedded = html.indexOf('"bits":256') + '"bits":'.length;
    expect(verifyEvidenceDocument(flip(html, embedded), relayKeys.publicKey)).toMatchObject({ valid: false, reason: expect.stringMatching(/signature does not match/) });
    expect(verifyEvidenceDocument(html, otherKeys.publicKey).valid).toBe(false);
    // Two embedded blocks: ambiguous, refused.
    expect(verifyEvidenceDocument(html.replace('</body>', `${html.slice(html.indexOf('<script'), html.lastIndexOf('</script>') + 9)}</body>`), relayKeys.publicKey).valid).toBe(false);
    // Values are escaped in the page and in the JSON block alike.
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &quot;Evil&quot; &amp; Co');
    expect(html).toContain('\\u003cscript\\u003ealert(1)\\u003c/script\\u003e');
    expect(html).not.toContain(SECRET_SUBJECT);
  });

  it('opens in Chromium with no script run, shows the facts, and prints', async () => {
    const file = join(dir, 'evidence.html');
    writeFileSync(file, renderEvidenceHtml(signed));
    const session = await browser.session();
    const opened = await session.open(pathToFileURL(file).href);
    expect(opened.scripts).toEqual([]);
    expect(opened.pageErrors).toEqual([]);
    expect(opened.requests.filter((r) => r.url !== pathToFileURL(file).href)).toEqual([]);
    const text = await opened.page.locator('body').innerText();
    expect(text).toContain('Delivery evidence');
    expect(text).toContain(CERT_FP);
    expect(text).toContain(PGP_FP);
    expect(text).toContain(HOSTILE_AGENT);
    // The stylesheet applied (its hash is in the page's own CSP): table headers are shaded.
    const shade = await opened.page.evaluate('getComputedStyle(document.querySelector("th")).backgroundColor');
    expect(shade).toBe('rgb(238, 238, 238)');
    expect(opened.console.filter((c) => /Content Security Policy/i.test(c.text))).toEqual([]);
    await opened.shot('evidence-screen');
    await opened.page.emulateMedia({ media: 'print' });
    await opened.shot('evidence-print');
    const pdf = await opened.page.pdf({ format: 'A4' });
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
  });
});
