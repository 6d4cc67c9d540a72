// Symmetric key strength of a TLS cipher by its name: shared by ingress (the
// Received header) and delivery (the floor and the DeliveryRecord), which may not
// import each other. Works on OpenSSL names (ECDHE-RSA-AES128-GCM-SHA256,
// DES-CBC3-SHA) and IANA names (TLS_AES_256_GCM_SHA384, TLS_RSA_WITH_3DES_EDE_CBC_SHA).

/**
 * First match wins. 3DES counts its effective 112 bits (NIST SP 800-57), not its
 * 168-bit key.
 */
const CIPHER_BITS: readonly (readonly [RegExp, number])[] = [
  [/NULL/, 0],
  [/EXP/, 40],
  [/RC4/, 128],
  [/3DES|DES-CBC3|DES_EDE/, 112],
  [/DES/, 56],
  [/CHACHA20/, 256],
  [/AES[_-]?256/, 256],
  [/AES[_-]?128/, 128],
  [/CAMELLIA[_-]?256/, 256],
  [/CAMELLIA[_-]?128/, 128],
  [/ARIA[_-]?256/, 256],
  [/ARIA[_-]?128/, 128],
  [/SEED|IDEA|SM4/, 128],
];

/** Key strength in bits, or null for a cipher we do not know. */
export function cipherBits(name: string): number | null {
  const upper = name.toUpperCase();
  for (const [pattern, bits] of CIPHER_BITS) if (pattern.test(upper)) return bits;
  return null;
}
