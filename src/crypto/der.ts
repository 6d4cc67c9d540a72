// DER building blocks (X.690) for the CMS structures smime.ts writes. node-forge
// supplies the OID and time encodings; the large content never passes through
// these values: DerPrefix writes only the bytes in front of it.
import forge from 'node-forge';

export const NULL = Buffer.from([0x05, 0x00]);

/** Tag and definite length octets (X.690 §8.1.2–8.1.3); single-byte tags only. */
function header(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
  return Buffer.from([tag, 0x80 | octets.length, ...octets]);
}

export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([header(tag, body.length), body]);
}

export function integer(n: number): Buffer {
  return tlv(0x02, Buffer.from([n]));
}

export function oid(id: string): Buffer {
  return tlv(0x06, Buffer.from(forge.asn1.oidToDer(id).getBytes(), 'binary'));
}

export function algorithm(id: string, parameters?: Buffer): Buffer {
  return parameters ? tlv(0x30, oid(id), parameters) : tlv(0x30, oid(id));
}

export function attribute(id: string, value: Buffer): Buffer {
  return tlv(0x30, oid(id), tlv(0x31, value));
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5652 §11.3). */
export function time(date: Date): Buffer {
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(forge.asn1.dateToUtcTime(date), 'latin1'))
    : tlv(0x18, Buffer.from(forge.asn1.dateToGeneralizedTime(date), 'latin1'));
}

export function forgeDer(node: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(node).getBytes(), 'binary');
}

/**
 * The DER in front of a large trailing value of known length, built from the inside
 * out: `wrap` adds the header of a constructed value around everything so far,
 * `prepend` adds complete values before it.
 */
export class DerPrefix {
  private readonly parts: Buffer[] = [];
  private length: number;

  constructor(tailLength: number) {
    this.length = tailLength;
  }

  prepend(...values: Buffer[]): this {
    this.parts.unshift(...values);
    this.length += values.reduce((n, v) => n + v.length, 0);
    return this;
  }

  wrap(tag: number): this {
    return this.prepend(header(tag, this.length));
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}
