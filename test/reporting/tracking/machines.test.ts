// Machine marking (src/reporting/tracking/machines.ts): known proxies and scanners
// by User-Agent, Apple Mail Privacy Protection's bare "Mozilla/5.0", HEAD requests,
// no User-Agent, and opens or clicks too soon after delivery; a person's browser a
// while after delivery is not marked.
import { describe, expect, it } from 'vitest';
import { machineReason } from '../../../src/reporting/tracking/machines.ts';

const BROWSER = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';
const windows = { openSeconds: 2, clickSeconds: 10 };
const delivered = 1_000_000;
const at = (seconds: number) => delivered + seconds * 1000;

describe('machine marking', () => {
  it('leaves a person alone', () => {
    expect(machineReason('open', { method: 'GET', userAgent: BROWSER, at: at(60), deliveredAt: delivered }, windows)).toBeNull();
    expect(machineReason('click', { method: 'GET', userAgent: BROWSER, at: at(11), deliveredAt: delivered }, windows)).toBeNull();
    expect(machineReason('click', { method: 'GET', userAgent: BROWSER, at: at(5), deliveredAt: null }, windows)).toBeNull();
  });

  it('marks proxies, scanners, HEAD, no User-Agent and haste', () => {
    const cases: [string, 'open' | 'click', string, string | null, number][] = [
      ['Gmail', 'open', 'GET', 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)', 3600],
      ['Yahoo', 'open', 'GET', 'YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html', 3600],
      ['Apple MPP', 'open', 'GET', 'Mozilla/5.0', 3600],
      ['scanner', 'click', 'GET', 'Mozilla/5.0 (compatible; BingPreview/1.0b)', 3600],
      ['curl', 'click', 'GET', 'curl/8.5.0', 3600],
      ['HEAD', 'click', 'HEAD', BROWSER, 3600],
      ['no agent', 'open', 'GET', null, 3600],
      ['fast open', 'open', 'GET', BROWSER, 1],
      ['fast click', 'click', 'GET', BROWSER, 9],
    ];
    for (const [name, kind, method, userAgent, seconds] of cases) {
      expect(machineReason(kind, { method, userAgent, at: at(seconds), deliveredAt: delivered }, windows), name).not.toBeNull();
    }
  });
});
