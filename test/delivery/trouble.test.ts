// trouble.ts as a table: every mode × every host event, middle host and last host.
// Plaintext must be reachable only from `none` and the opportunistic family; after a
// host offered TLS, only for a sealed copy (pgp/smime) without a certificate check.
import { describe, expect, it } from 'vitest';
import { MODES, type Mode } from '../../src/config/schema.ts';
import { afterHostEvent, afterHostFailure, type HostEvent, type NextAction } from '../../src/delivery/trouble.ts';

const E = {
  connect: { kind: 'connect-failed' },
  noStarttls: { kind: 'no-acceptable-tls', tls: 'no-starttls' },
  handshake: { kind: 'no-acceptable-tls', tls: 'handshake-failed' },
  floor: { kind: 'no-acceptable-tls', tls: 'below-floor' },
  verify: { kind: 'no-acceptable-tls', tls: 'verify-failed' },
  okTls: { kind: 'ok', secure: true },
  okPlain: { kind: 'ok', secure: false },
  r250: { kind: 'reply', code: 250 },
  r450: { kind: 'reply', code: 450 },
  r421: { kind: 'reply', code: 421 },
  lost: { kind: 'reply', code: 451, connectionLevel: true },
  r550: { kind: 'reply', code: 550 },
} as const satisfies Record<string, HostEvent>;
type EventName = keyof typeof E;

/** [middle host, last host] for an event whose host is the only one tried so far. */
type Row = Record<EventName, readonly [NextAction, NextAction]>;

const tlsFailureMoves = ['next-host', 'defer'] as const;
const replies = {
  r250: ['delivered', 'delivered'],
  r450: ['defer', 'defer'],
  r421: ['next-host', 'defer'],
  lost: ['next-host', 'defer'],
  r550: ['bounce', 'bounce'],
} as const;

const opportunistic: Row = {
  connect: ['next-host', 'defer'],
  // RFC 3207 §4: no STARTTLS advertised → the opportunistic family sends in the clear.
  noStarttls: ['deliver-plain', 'deliver-plain'],
  handshake: tlsFailureMoves,
  floor: tlsFailureMoves,
  verify: tlsFailureMoves,
  okTls: ['deliver', 'deliver'],
  okPlain: ['deliver-plain', 'deliver-plain'],
  ...replies,
};

/** A sealed copy under verification none: a host whose TLS fails the floor still gets it, in plaintext over a new connection. */
const sealed: Row = { ...opportunistic, handshake: ['retry-plain', 'retry-plain'], floor: ['retry-plain', 'retry-plain'], verify: ['retry-plain', 'retry-plain'] };

const TABLE: Record<Mode, Row> = {
  none: { ...opportunistic },
  opportunistic,
  pgp: sealed,
  smime: sealed,
  portal: opportunistic,
  forced: {
    connect: ['next-host', 'defer'],
    noStarttls: tlsFailureMoves,
    handshake: tlsFailureMoves,
    floor: tlsFailureMoves,
    verify: tlsFailureMoves,
    okTls: ['deliver', 'deliver'],
    okPlain: tlsFailureMoves,
    ...replies,
  },
  'tls-exclusive': {
    connect: ['next-host', 'defer'],
    noStarttls: ['next-host', 'drop'],
    handshake: ['next-host', 'drop'],
    floor: ['next-host', 'drop'],
    verify: ['next-host', 'drop'],
    okTls: ['deliver', 'deliver'],
    okPlain: ['next-host', 'drop'],
    ...replies,
  },
};

describe('afterHostEvent: mode × event', () => {
  const rows = MODES.flatMap((mode) =>
    (Object.keys(E) as EventName[]).flatMap((name) =>
      ([false, true] as const).map((isLast) => ({ mode, name, isLast, expected: TABLE[mode][name][isLast ? 1 : 0] })),
    ),
  );
  it.each(rows)('$mode, $name, last=$isLast → $expected', ({ mode, name, isLast, expected }) => {
    expect(afterHostEvent({ mode, fallbackChain: [] }, E[name], isLast)).toBe(expected);
  });

  it('plaintext is never reachable from forced or tls-exclusive', () => {
    for (const mode of ['forced', 'tls-exclusive'] as const) {
      for (const event of Object.values(E)) {
        for (const isLast of [false, true]) {
          for (const fallbackChain of [[], ['pgp', 'portal']] as const) {
            expect(afterHostEvent({ mode, fallbackChain, tlsExpected: false }, event, isLast)).not.toBe('deliver-plain');
          }
        }
      }
    }
  });
});

describe('history of the attempt', () => {
  it('tls-exclusive drops only when every host refused for a TLS reason', () => {
    const policy = { mode: 'tls-exclusive', fallbackChain: [] } as const;
    expect(afterHostFailure(policy, E.floor, true, [E.handshake, E.noStarttls, E.floor])).toBe('drop');
    // One host was down: it might have had TLS, so the usual deferral.
    expect(afterHostFailure(policy, E.floor, true, [E.connect, E.floor])).toBe('defer');
    expect(afterHostFailure(policy, E.connect, true, [E.handshake, E.connect])).toBe('defer');
  });

  it('the history may leave out the current event', () => {
    const policy = { mode: 'tls-exclusive', fallbackChain: [] } as const;
    expect(afterHostEvent(policy, E.verify, true, [E.handshake])).toBe('drop');
    expect(afterHostEvent(policy, E.verify, true, [E.connect])).toBe('defer');
  });

  it('forced hands over to the fallback chain only when no host had acceptable TLS', () => {
    const policy = { mode: 'forced', fallbackChain: ['pgp', 'portal'] } as const;
    expect(afterHostFailure(policy, E.noStarttls, false, [E.noStarttls])).toBe('next-host');
    expect(afterHostFailure(policy, E.noStarttls, true, [E.handshake, E.noStarttls])).toBe('fallback');
    expect(afterHostFailure(policy, E.noStarttls, true, [E.connect, E.noStarttls])).toBe('defer');
    expect(afterHostFailure({ mode: 'forced', fallbackChain: [] }, E.noStarttls, true)).toBe('defer');
  });
});

describe('domain knowledge: a domain known to offer TLS never gets plaintext', () => {
  it.each(['opportunistic', 'pgp', 'smime', 'portal'] as const)('%s', (mode) => {
    const policy = { mode, fallbackChain: [], tlsExpected: true };
    expect(afterHostEvent(policy, E.noStarttls, false)).toBe('next-host');
    expect(afterHostEvent(policy, E.noStarttls, true)).toBe('defer');
    expect(afterHostEvent(policy, E.okPlain, true)).toBe('defer');
    expect(afterHostEvent(policy, E.okTls, true)).toBe('deliver');
    // Not even a sealed copy: a failed handshake there may be an attack.
    expect(afterHostEvent(policy, E.floor, true)).toBe('defer');
    expect(afterHostEvent(policy, E.handshake, false)).toBe('next-host');
  });

  it('mode none names plaintext explicitly and keeps it', () => {
    expect(afterHostEvent({ mode: 'none', fallbackChain: [], tlsExpected: true }, E.okPlain, true)).toBe('deliver-plain');
  });
});

describe('a sealed copy that asks for a certificate check keeps it', () => {
  it.each(['pgp', 'smime'] as const)('%s with verification ca: a failed check or weak TLS is never answered with plaintext', (mode) => {
    for (const verification of ['ca', 'mta-sts'] as const) {
      const policy = { mode, fallbackChain: [], verification };
      expect(afterHostEvent(policy, E.verify, false)).toBe('next-host');
      expect(afterHostEvent(policy, E.verify, true)).toBe('defer');
      expect(afterHostEvent(policy, E.floor, true)).toBe('defer');
      // No STARTTLS at all: plaintext, as for the opportunistic family (RFC 3207).
      expect(afterHostEvent(policy, E.noStarttls, true)).toBe('deliver-plain');
    }
  });

  it('plaintext after a failed handshake is never reachable from opportunistic, forced or tls-exclusive', () => {
    for (const mode of ['opportunistic', 'forced', 'tls-exclusive', 'portal'] as const) {
      for (const event of [E.handshake, E.floor, E.verify]) {
        for (const isLast of [false, true]) {
          expect(afterHostEvent({ mode, fallbackChain: [], verification: 'none' }, event, isLast)).not.toMatch(/plain/);
        }
      }
    }
  });
});
