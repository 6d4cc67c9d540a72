// Escaping on by default (src/html.ts): whatever a value holds, interpolated
// into `html` it comes out as text. In Chromium, the same payloads are shown as
// text and run nothing (browser.test.ts).
import { describe, expect, it } from 'vitest';
import { escapeHtml, html, trustedHtml, type HtmlValue } from '../../src/html.ts';
import { XSS_PAYLOADS } from '../helpers/xss-payloads.ts';


describe('html', () => {
  it('escapes every interpolated string, in text and in quoted attributes', () => {
    for (const p of XSS_PAYLOADS) {
      const out = html`<p title="${p}">${p}</p>`.toString();
      expect(out).not.toMatch(/<(script|img|svg|a|iframe|details|object)\b/i);
      expect(out.slice('<p title="'.length, out.indexOf('">'))).not.toMatch(/["<>]/);
      expect(out).toBe(`<p title="${escapeHtml(p)}">${escapeHtml(p)}</p>`);
    }
    expect(escapeHtml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&#39;');
  });

  it('nests: markup made by html stays markup, strings inside it stay escaped', () => {
    const item = (name: string) => html`<li>${name}</li>`;
    const list = html`<ul>${['a<b', 'c&d'].map(item)}</ul>`;
    expect(list.toString()).toBe('<ul><li>a&lt;b</li><li>c&amp;d</li></ul>');
    expect(html`<div>${list}</div>`.toString()).toBe('<div><ul><li>a&lt;b</li><li>c&amp;d</li></ul></div>');
  });

  it('prints nothing for null, undefined and false (conditional parts), and numbers as text', () => {
    const flag = false as boolean;
    expect(html`[${null}${undefined}${flag && html`<b>x</b>`}${0}${3.5}]`.toString()).toBe('[03.5]');
  });

  it('refuses values it cannot print safely instead of printing [object Object]', () => {
    expect(() => html`${{ toString: () => '<script>' } as unknown as HtmlValue}`).toThrow(TypeError);
    expect(() => html`${true as unknown as HtmlValue}`).toThrow(TypeError);
  });

  it('a plain object dressed up as SafeHtml is not trusted', () => {
    const fake = { toString: () => '<script>x</script>' };
    Object.setPrototypeOf(fake, Object.prototype);
    expect(() => html`${fake as unknown as HtmlValue}`).toThrow(TypeError);
    expect(trustedHtml('<hr>').toString()).toBe('<hr>');
  });
});
