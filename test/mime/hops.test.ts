// Hop counting: the Received: fields of a header block, for the hop limit at ingress and in delivery.
import { describe, expect, it } from 'vitest';
import { countHops } from '../../src/mime/hops.ts';

describe('countHops', () => {
  it('counts Received fields, folded ones once, whatever the case of the name', () => {
    const message =
      'Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n' +
      'RECEIVED: from c\r\n\tby d\r\n  Received: from a continuation, not a field\r\n' +
      'received\t : from e by f\r\n' +
      'Subject: Received: not at the line start\r\n' +
      'X-Received: another field\r\n' +
      'Receivedx: not this one either\r\n' +
      '\r\n' +
      'Received: in the body\r\n';
    expect(countHops(message)).toBe(3);
    expect(countHops(Buffer.from(message))).toBe(3);
  });

  it('never counts the body, with CRLF or bare LF line ends', () => {
    expect(countHops('Subject: x\r\n\r\nReceived: a\r\nReceived: b\r\n')).toBe(0);
    expect(countHops(Buffer.from('Received: a\nSubject: x\n\nReceived: b\n'))).toBe(1);
    expect(countHops(Buffer.from('\r\nReceived: b\r\n'))).toBe(0);
    expect(countHops('')).toBe(0);
    expect(countHops('Received:')).toBe(1);
    expect(countHops('Received')).toBe(0);
  });

  it('stays linear on a long hostile header', () => {
    const line = `Received: ${'x'.repeat(1000)}\r\n`;
    const block = line.repeat(5000) + `Received${' '.repeat(100_000)}\r\n\r\n` + 'Received: b\r\n'.repeat(1000);
    expect(countHops(Buffer.from(block))).toBe(5000);
  });
});
