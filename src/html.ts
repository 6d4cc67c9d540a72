// HTML escaped by default, shared by the web pages (http/), the portal's
// notification email and the evidence document (it sits below all of them, as
// log.ts does). Pages are TypeScript functions that build markup with the `html` tagged template: every interpolated value is
// escaped unless it is itself the result of `html` (already safe markup), so
// forgetting to escape is impossible and opting out is visible in review
// (`trustedHtml`, for constants written in our own code, never for data).
//
// Escaping covers element text and double-quoted attribute values, which is
// every place our templates put data. Never interpolate into <script>, <style>,
// an unquoted attribute, an event-handler attribute or a URL attribute whose
// scheme the data could choose: escaping does not make those safe (the CSP,
// security-headers.ts, is the second line for scripts).

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const NEEDS_ESCAPE = /[&<>"']/g;

/** Markup that is safe to send as it is: made only by `html` (and `trustedHtml`). */
export class SafeHtml {
  readonly #text: string;
  private constructor(text: string) {
    this.#text = text;
  }
  /** @internal the one door in: html() and trustedHtml() below. */
  static fromTrusted(text: string): SafeHtml {
    return new SafeHtml(text);
  }
  toString(): string {
    return this.#text;
  }
}

/** What a template may interpolate: text and numbers (escaped), markup from `html`, lists of these, or nothing. */
export type HtmlValue = string | number | SafeHtml | null | undefined | false | readonly HtmlValue[];

/** The five characters that can end a text node or a quoted attribute, as entities. */
export function escapeHtml(text: string): string {
  return text.replace(NEEDS_ESCAPE, (c) => ESCAPES[c]!);
}

/** A template whose values are escaped unless they are SafeHtml. */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return SafeHtml.fromTrusted(out);
}

/**
 * Markup taken as it is, unescaped. Only for constants written in our own source
 * (an icon, a fixed snippet): never for anything a message, a request or a config
 * file supplies.
 */
export function trustedHtml(text: string): SafeHtml {
  return SafeHtml.fromTrusted(text);
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.toString();
  if (typeof value === 'string') return escapeHtml(value);
  if (typeof value === 'number') return escapeHtml(String(value));
  if (Array.isArray(value)) return value.map(render).join('');
  // `true`, objects, functions: a template bug that would print "[object Object]" or worse.
  throw new TypeError(`html: cannot interpolate a value of type ${typeof value}`);
}
