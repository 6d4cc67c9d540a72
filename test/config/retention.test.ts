// The retention section (config/schema.ts): documented defaults, null to keep a kind,
// and bad values refused with file, line and key.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';

function problemsOf(text: string) {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('retention settings', () => {
  it('defaults: 400 days of records and events, pruned hourly; null keeps a kind', () => {
    expect(parseConfig(base, 'test.yaml', {}).retention).toEqual({ records_days: 400, events_days: 400, interval_seconds: 3600 });
    expect(parseConfig(`${base}retention:\n  records_days: null\n  events_days: 2190\n`, 'test.yaml', {}).retention).toEqual({ records_days: null, events_days: 2190, interval_seconds: 3600 });
  });

  it('a bad age, a bad interval and an unknown key are refused with file, line and key', () => {
    expect(problemsOf(`${base}retention:\n  records_days: 0\n`)[0]).toMatchObject({ file: 'test.yaml', line: 6, key: 'retention.records_days', message: expect.stringMatching(/>=\s*1/) });
    expect(problemsOf(`${base}retention:\n  records_days: 30.5\n`)[0]).toMatchObject({ line: 6, key: 'retention.records_days' });
    expect(problemsOf(`${base}retention:\n  events_days: forever\n`)[0]).toMatchObject({ line: 6, key: 'retention.events_days' });
    expect(problemsOf(`${base}retention:\n  events_days: -1\n`)[0]).toMatchObject({ line: 6, key: 'retention.events_days' });
    expect(problemsOf(`${base}retention:\n  interval_seconds: 5\n`)[0]).toMatchObject({ line: 6, key: 'retention.interval_seconds' });
    expect(problemsOf(`${base}retention:\n  events_days: 400\n  record_days: 30\n`)[0]).toMatchObject({ file: 'test.yaml', line: 7, key: 'retention.record_days', message: 'unknown key' });
  });
});
