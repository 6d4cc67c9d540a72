import { createHmac, timingSafeEqual } from 'node:crypto';
// body: the raw request body as received (before any JSON parsing); header: the SealRelay-Signature value.
export function verifySealRelay(body, header, secret, toleranceSeconds = 300) {
  const pairs = String(header).split(',').map((p) => p.split('='));
  const t = Number(pairs.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return pairs.some(([k, v]) => k === 'v1' && /^[0-9a-f]{64}$/.test(v) && timingSafeEqual(Buffer.from(v, 'hex'), expected));
}
