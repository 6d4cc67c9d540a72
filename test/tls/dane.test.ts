// DANE matching (src/tls/dane.ts) against real certificate chains made by openssl
// (test/helpers/dane-certs.ts): which TLSA records count, DANE-EE pins the leaf and
// nothing else, DANE-TA needs a verified path, valid dates and the MX name.
import { describe, expect, it } from 'vitest';
import type { TlsaRecord } from '../../src/net/dnssec.ts';
import { formatTlsa, matchDane, MAX_TLSA_RECORDS, usableTlsa } from '../../src/tls/dane.ts';
import { association, makeCa, makeLeaf, type DaneCert } from '../helpers/dane-certs.ts';


const tlsa = (usage: number, selector: number, matchingType: number, data: Buffer): TlsaRecord => ({ usage, selector, matchingType, data });
/** A record of `cert` with the association data computed by the helper (openssl bytes, node hash). */
const record = (usage: 2 | 3, selector: 0 | 1, matchingType: 0 | 1 | 2, cert: DaneCert): TlsaRecord => tlsa(usage, selector, matchingType, association(cert, selector, matchingType));

const MX = 'mx1.example.test';
const DAY_MS = 24 * 60 * 60 * 1000;
const inDays = (days: number): Date => new Date(Date.now() + days * DAY_MS);

// The zone's own CA: root → issuing intermediate → MX leaves.
const root = makeCa({ commonName: 'Example Root' });
const inter = makeCa({ commonName: 'Example Issuing CA', issuer: root });
const leaf = makeLeaf({ commonName: MX, issuer: inter });
const chain = [leaf.der, inter.der, root.der];

describe('usableTlsa', () => {
  it('keeps DANE-TA(2) and DANE-EE(3) with selectors 0/1 and matching types 0/1/2', () => {
    const records = [record(3, 1, 1, leaf), record(3, 0, 2, leaf), record(2, 0, 1, inter), record(2, 1, 0, root)];
    expect(usableTlsa(records)).toEqual(records);
  });

  it('drops PKIX-TA(0), PKIX-EE(1) and unknown usages, selectors and matching types (RFC 7672 §3.1.3)', () => {
    const sha256 = association(leaf, 1, 1);
    const dropped = [tlsa(0, 1, 1, sha256), tlsa(1, 1, 1, sha256), tlsa(4, 1, 1, sha256), tlsa(255, 1, 1, sha256), tlsa(3, 2, 1, sha256), tlsa(3, 255, 1, sha256), tlsa(3, 1, 3, sha256), tlsa(3, 1, 255, sha256)];
    expect(usableTlsa(dropped)).toEqual([]);
    // A PKIX-EE record that matches the leaf exactly still does not count.
    expect(matchDane([tlsa(1, 1, 1, sha256), tlsa(0, 0, 1, association(inter, 0, 1))], chain, [MX])).toEqual({ ok: false, reason: 'no usable TLSA records' });
  });

  it('drops digests of the wrong length and empty full data (RFC 7671 §9)', () => {
    const sha256 = association(leaf, 1, 1);
    const sha512 = association(leaf, 1, 2);
    const malformed = [tlsa(3, 1, 1, sha256.subarray(0, 31)), tlsa(3, 1, 1, Buffer.concat([sha256, Buffer.from([0])])), tlsa(3, 1, 2, sha256), tlsa(3, 1, 1, sha512), tlsa(3, 0, 0, Buffer.alloc(0)), tlsa(2, 1, 2, sha512.subarray(0, 63))];
    expect(usableTlsa(malformed)).toEqual([]);
    expect(matchDane(malformed, chain, [MX])).toEqual({ ok: false, reason: 'no usable TLSA records' });
  });

  it(`considers at most ${MAX_TLSA_RECORDS} usable records, counting only usable ones`, () => {
    const junk = Array.from({ length: 40 }, (_, i) => tlsa(1, 1, 1, Buffer.alloc(32, i)));
    const decoys = Array.from({ length: MAX_TLSA_RECORDS }, (_, i) => tlsa(3, 1, 1, Buffer.alloc(32, i)));
    const good = record(3, 1, 1, leaf);
    expect(usableTlsa([...junk, ...decoys.slice(1), good])).toHaveLength(MAX_TLSA_RECORDS);
    expect(matchDane([...junk, ...decoys.slice(1), good], chain, [MX]).ok).toBe(true);
    // One more and the matching record is past the cap: hostile DNS cannot make us loop forever.
    expect(usableTlsa([...decoys, good])).toHaveLength(MAX_TLSA_RECORDS);
    expect(matchDane([...decoys, good], chain, [MX]).ok).toBe(false);
  });
});

describe('formatTlsa', () => {
  it('writes the presentation form with lower-case hex', () => {
    expect(formatTlsa(tlsa(3, 1, 1, Buffer.from('AB12cd', 'hex')))).toBe('3 1 1 ab12cd');
    expect(formatTlsa(record(2, 0, 1, root))).toBe(`2 0 1 ${association(root, 0, 1).toString('hex')}`);
  });
});

describe('DANE-EE(3)', () => {
  // A self-signed certificate naming some other host: DANE-EE pins the leaf alone.
  const pinned = makeLeaf({ commonName: 'unrelated.invalid', days: 1 });

  it.each([
    [0, 0],
    [0, 1],
    [0, 2],
    [1, 0],
    [1, 1],
    [1, 2],
  ] as const)('3 %i %i matches the leaf, whatever it names and whoever issued it', (selector, matchingType) => {
    const r = record(3, selector, matchingType, pinned);
    expect(matchDane([r], [pinned.der], [MX])).toEqual({ ok: true, matched: formatTlsa(r), depth: 0 });
  });

  it('a wrong digest does not match', () => {
    const wrong = association(pinned, 1, 1);
    wrong[0] = wrong[0]! ^ 1;
    const other = makeLeaf({ commonName: 'other.invalid' });
    const result = matchDane([tlsa(3, 1, 1, wrong), record(3, 0, 1, other), record(3, 1, 2, other)], [pinned.der], [MX]);
    expect(result).toEqual({ ok: false, reason: 'no TLSA record matches the leaf certificate or any issuer' });
  });

  it('selectors are not interchangeable: a certificate digest under SPKI(1) and the reverse do not match', () => {
    const swapped = [tlsa(3, 1, 1, association(pinned, 0, 1)), tlsa(3, 0, 1, association(pinned, 1, 1)), tlsa(3, 1, 0, pinned.der), tlsa(3, 0, 0, pinned.spki)];
    expect(matchDane(swapped, [pinned.der], [MX]).ok).toBe(false);
  });

  it('ignores the expiry date (RFC 7672 §3.1.1)', () => {
    const result = matchDane([record(3, 1, 1, pinned)], [pinned.der], [MX], inDays(10));
    expect(result.ok).toBe(true);
  });

  it('matches only the leaf, not an issuer', () => {
    expect(matchDane([record(3, 1, 1, inter), record(3, 0, 1, root)], chain, [MX]).ok).toBe(false);
  });
});

describe('DANE-TA(2)', () => {
  it('2 0 1 of the intermediate: the chain verifies to it and the leaf names the MX', () => {
    const r = record(2, 0, 1, inter);
    expect(matchDane([r], chain, [MX])).toEqual({ ok: true, matched: formatTlsa(r), depth: 1 });
  });

  it('2 0 1 of the root: matched two levels up, even when the server sends the chain out of order', () => {
    const r = record(2, 0, 1, root);
    expect(matchDane([r], [leaf.der, root.der, inter.der], [MX])).toEqual({ ok: true, matched: formatTlsa(r), depth: 2 });
  });

  it('2 1 1 and 2 0 2 of a certificate in the chain match', () => {
    expect(matchDane([record(2, 1, 1, inter)], [leaf.der, inter.der], [MX])).toMatchObject({ ok: true, depth: 1 });
    expect(matchDane([record(2, 0, 2, root)], chain, [MX])).toMatchObject({ ok: true, depth: 2 });
  });

  it('2 1 0 with the trust anchor left out of the chain: the bare key in DNS verifies the top certificate (RFC 7671 §5.2.3)', () => {
    const r = record(2, 1, 0, root);
    expect(matchDane([r], [leaf.der, inter.der], [MX])).toEqual({ ok: true, matched: formatTlsa(r), depth: 2 });
  });

  it('2 0 0 with the trust anchor left out of the chain: the certificate in DNS is the anchor (RFC 7671 §5.2.2)', () => {
    const r = record(2, 0, 0, root);
    expect(matchDane([r], [leaf.der, inter.der], [MX])).toEqual({ ok: true, matched: formatTlsa(r), depth: 2 });
  });

  it('2 1 1 with the trust anchor left out of the chain fails: a digest cannot check a signature', () => {
    const result = matchDane([record(2, 1, 1, root)], [leaf.der, inter.der], [MX]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/^no TLSA record matches the leaf certificate or any issuer \(a DANE-TA digest needs the trust-anchor certificate in the chain/);
  });

  it('a leaf that does not name the MX fails (RFC 7672 §3.2.2)', () => {
    const wrongName = makeLeaf({ commonName: 'mx2.example.test', issuer: inter });
    const result = matchDane([record(2, 0, 1, inter)], [wrongName.der, inter.der], [MX]);
    expect(result).toEqual({ ok: false, reason: 'certificate does not name mx1.example.test; it names DNS:mx2.example.test' });
  });

  it('no reference names at all fails', () => {
    const result = matchDane([record(2, 0, 1, inter)], chain, []);
    expect(!result.ok && result.reason).toMatch(/^certificate does not name \(no reference name given\)/);
  });

  it('names compare without case and without a trailing dot; any one of them is enough', () => {
    expect(matchDane([record(2, 0, 1, inter)], chain, ['MX1.Example.TEST.']).ok).toBe(true);
    expect(matchDane([record(2, 0, 1, inter)], chain, ['mail.example.test', MX]).ok).toBe(true);
  });

  it('a wildcard matches one whole left-most label only (RFC 6125 §6.4.3)', () => {
    const wildcard = makeLeaf({ commonName: 'wildcard', dnsNames: ['*.example.test'], issuer: inter });
    const partial = makeLeaf({ commonName: 'partial', dnsNames: ['mx*.example.test'], issuer: inter });
    const ta = [record(2, 0, 1, inter)];
    expect(matchDane(ta, [wildcard.der, inter.der], [MX]).ok).toBe(true);
    expect(matchDane(ta, [wildcard.der, inter.der], ['a.mx1.example.test']).ok).toBe(false);
    expect(matchDane(ta, [wildcard.der, inter.der], ['example.test']).ok).toBe(false);
    expect(matchDane(ta, [partial.der, inter.der], [MX]).ok).toBe(false);
  });

  it('the subject CN counts only when the certificate has no DNS names', () => {
    const cnOnly = makeLeaf({ commonName: MX, dnsNames: [], issuer: inter });
    const cnAndOtherSan = makeLeaf({ commonName: MX, dnsNames: ['other.example.test'], issuer: inter });
    const ta = [record(2, 0, 1, inter)];
    expect(matchDane(ta, [cnOnly.der, inter.der], [MX]).ok).toBe(true);
    expect(matchDane(ta, [cnAndOtherSan.der, inter.der], [MX])).toEqual({ ok: false, reason: 'certificate does not name mx1.example.test; it names DNS:other.example.test' });
  });

  it('an expired leaf fails under DANE-TA, though the same leaf passes under DANE-EE', () => {
    const shortLived = makeLeaf({ commonName: MX, issuer: inter, days: 1 });
    const later = inDays(10);
    const result = matchDane([record(2, 0, 1, inter)], [shortLived.der, inter.der], [MX], later);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/^certificate expired: depth 0 \(CN=mx1\.example\.test\) was valid until /);
    expect(matchDane([record(3, 1, 1, shortLived)], [shortLived.der, inter.der], [MX], later)).toMatchObject({ ok: true, depth: 0 });
  });

  it('an expired intermediate, or a leaf not yet valid, fails', () => {
    const shortCa = makeCa({ commonName: 'Short-lived CA', issuer: root, days: 2 });
    const under = makeLeaf({ commonName: MX, issuer: shortCa, days: 300 });
    const expired = matchDane([record(2, 0, 1, root)], [under.der, shortCa.der, root.der], [MX], inDays(5));
    expect(!expired.ok && expired.reason).toMatch(/^certificate expired: depth 1 \(O=SealRelay DANE tests, CN=Short-lived CA\)/);
    const early = matchDane([record(2, 0, 1, inter)], chain, [MX], inDays(-1));
    expect(!early.ok && early.reason).toMatch(/^certificate not yet valid: depth 0 /);
  });

  it('an attacker leaf from another CA, sent along with the real trust anchor, fails', () => {
    const otherCa = makeCa({ commonName: 'Attacker CA' });
    const attacker = makeLeaf({ commonName: MX, issuer: otherCa });
    const result = matchDane([record(2, 0, 1, root), record(2, 1, 1, inter)], [attacker.der, inter.der, root.der], [MX]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/^chain does not verify to the DANE-TA certificate 2 [01] 1 [0-9a-f]{64} \(certificate at depth 0 is not issued by the one at depth 1\)$/);
  });

  it('a forged CA with the anchor\'s name and key identifier is told apart by the signature alone', () => {
    const forgedRoot = makeCa({ commonName: 'Example Root', skidOf: root });
    const forgedInter = makeCa({ commonName: 'Example Issuing CA', issuer: forgedRoot, skidOf: inter });
    const attacker = makeLeaf({ commonName: MX, issuer: forgedInter });
    // The attacker's leaf claims the real intermediate as issuer: same name, same key identifier.
    const result = matchDane([record(2, 0, 1, inter)], [attacker.der, inter.der], [MX]);
    expect(result).toEqual({ ok: false, reason: `chain does not verify to the DANE-TA certificate ${formatTlsa(record(2, 0, 1, inter))} (certificate at depth 0 is not issued by the one at depth 1)` });
    // And a forged intermediate in between does not chain to the real root either.
    expect(matchDane([record(2, 0, 1, root)], [attacker.der, forgedInter.der, root.der], [MX]).ok).toBe(false);
    // Under a bare key in DNS, the forged certificates do not verify against it.
    expect(matchDane([record(2, 1, 0, root)], [attacker.der, forgedInter.der], [MX]).ok).toBe(false);
    expect(matchDane([record(2, 0, 0, inter)], [attacker.der], [MX]).ok).toBe(false);
  });

  it('a certificate that is not a CA cannot issue the leaf, even when signed by the anchor', () => {
    // Its keyUsage even claims keyCertSign: basicConstraints CA:FALSE alone must stop it (RFC 5280 §6.1.4 (k)).
    const endEntity = makeLeaf({ commonName: 'customer.example.test', issuer: inter, keyUsage: 'digitalSignature, keyCertSign' });
    const forged = makeLeaf({ commonName: MX, issuer: endEntity });
    const result = matchDane([record(2, 0, 1, inter)], [forged.der, endEntity.der, inter.der], [MX]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/\(certificate at depth 1 is not a CA\)$/);
  });

  it('a DANE-TA record that matches the leaf itself is not an anchor', () => {
    const result = matchDane([record(2, 0, 1, leaf)], chain, [MX]);
    expect(!result.ok && result.reason).toMatch(/a DANE-TA record matches the leaf itself/);
  });

  it('a matching DANE-EE record wins over a failing DANE-TA one, and a TA match over a wrong EE digest', () => {
    expect(matchDane([record(2, 0, 1, makeCa({ commonName: 'Unrelated' })), record(3, 1, 1, leaf)], chain, ['elsewhere.test'])).toMatchObject({ ok: true, depth: 0 });
    expect(matchDane([tlsa(3, 1, 1, Buffer.alloc(32)), record(2, 0, 1, inter)], chain, [MX])).toMatchObject({ ok: true, depth: 1 });
  });
});

describe('hostile input', () => {
  it('no certificate, or bytes that are not one, give a reason instead of an exception', () => {
    expect(matchDane([record(3, 1, 1, leaf)], [], [MX])).toEqual({ ok: false, reason: 'the server presented no certificate' });
    const garbage = Buffer.from('not a certificate');
    expect(matchDane([record(2, 0, 1, inter)], [garbage, inter.der], [MX])).toEqual({ ok: false, reason: 'no TLSA record matches the leaf certificate or any issuer (the leaf certificate cannot be parsed)' });
    expect(matchDane([record(3, 1, 1, leaf)], [garbage], [MX]).ok).toBe(false);
    // A 2 0 0 / 2 1 0 record whose data is not a certificate or key is no anchor.
    expect(matchDane([tlsa(2, 0, 0, garbage), tlsa(2, 1, 0, garbage)], [leaf.der, inter.der], [MX]).ok).toBe(false);
  });

  it('unparseable certificates in the middle of a chain are skipped', () => {
    const result = matchDane([record(2, 0, 1, root)], [leaf.der, Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), inter.der, root.der], [MX]);
    expect(result).toMatchObject({ ok: true, depth: 2 });
  });

  it('a chain of copies of a self-signed CA, each issuing every other, is searched within bounds', () => {
    // Every copy verifies as the issuer of every other: without a bound, path building
    // would try every ordering of them (9! paths) before giving up.
    const loopCa = makeCa({ commonName: 'Loop CA' });
    const loopLeaf = makeLeaf({ commonName: MX, issuer: loopCa });
    const copies = Array.from({ length: 50 }, () => Buffer.from(loopCa.der));
    const started = process.hrtime.bigint();
    const result = matchDane([tlsa(2, 1, 0, root.spki)], [loopLeaf.der, ...copies], [MX]);
    expect(result.ok).toBe(false);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(2000);
  });
});
