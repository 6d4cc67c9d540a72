// The DANE verdict where TLS facts are shown: `log --wide` and `queue show` (recordTable).
import { describe, expect, it } from 'vitest';
import { recordTable } from '../../src/cli/log.ts';
import { record } from './harness.ts';

const TLSA = `3 1 1 ${'ab'.repeat(32)}`;

describe('DANE in the record table', () => {
  it('wide rows show the verdict and the TLSA record that matched after the TLS facts; records without DANE are unchanged', () => {
    const matched = record({ queueId: 'DANE1', seq: 0, recipient: 'pat@dane.example', attempt: 1, at: Date.parse('2026-12-04T03:00:00Z'), outcome: 'delivered', fields: { dane: { status: 'matched', tlsa: [TLSA], matched: TLSA, reason: 'certificate matched' } } });
    const bogus = record({ queueId: 'DANE2', seq: 0, recipient: 'pat@bogus.example', attempt: 1, at: Date.parse('2026-12-04T03:00:01Z'), outcome: 'deferred', fields: { method: 'none', tls: null, starttlsOffered: null, dane: { status: 'bogus', tlsa: [], matched: null, reason: 'SERVFAIL' } } });
    const plain = record({ queueId: 'DANE3', seq: 0, recipient: 'pat@plain.example', attempt: 1, at: Date.parse('2026-12-04T03:00:02Z'), outcome: 'delivered' });
    const lines = recordTable([matched, bogus, plain], true).split('\n');
    expect(lines.find((l) => l.includes('DANE1'))).toMatch(new RegExp(`verify=ok dane=matched\\(${TLSA}\\)`));
    expect(lines.find((l) => l.includes('DANE2'))).toMatch(/ - dane=bogus /);
    expect(lines.find((l) => l.includes('DANE3'))).not.toMatch(/dane=/);
  });
});
