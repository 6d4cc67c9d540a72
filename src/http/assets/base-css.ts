// The one stylesheet every page links (served by assets.ts from the relay itself,
// never a CDN). Kept as a module rather than a .css file so the build (tsc) ships
// it without a copy step.
//
// Accessibility: body text 17px+ at ≥ 7:1 contrast, links and buttons ≥ 4.5:1, a
// focus ring (yellow and black, visible on any background) on everything that
// takes focus, targets ≥ 44px high, one column that fits a 320px phone and caps
// the line length on a desktop, no colour-only meaning, and motion off when the
// user asks for less.
export const BASE_CSS = `
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
  font-size: 1.0625rem;
  line-height: 1.5;
  color: #0b0c0c;
  background: #f3f2f1;
}
.wrap { max-width: 44rem; margin: 0 auto; padding: 0 1rem; }
.skip-link {
  position: absolute; left: -9999px; top: 0;
  padding: 0.75rem 1rem; background: #ffdd00; color: #0b0c0c; font-weight: 700;
}
.skip-link:focus { left: 0.5rem; top: 0.5rem; z-index: 10; }
.site-header { background: #0b3d6b; color: #ffffff; }
.site-header .wrap { display: flex; align-items: center; min-height: 3.5rem; gap: 0.75rem; }
.brand { font-weight: 700; font-size: 1.125rem; letter-spacing: 0.01em; }
main { display: block; }
main.wrap { padding-top: 1.5rem; padding-bottom: 2.5rem; }
main:focus { outline: none; }
.panel > :last-child { margin-bottom: 0; }
.panel {
  background: #ffffff; border: 1px solid #b1b4b6; border-radius: 6px;
  padding: 1.25rem 1.25rem 1.5rem; margin: 0 0 1.5rem;
}
h1 { font-size: 1.75rem; line-height: 1.2; margin: 0 0 1rem; }
h2 { font-size: 1.375rem; line-height: 1.25; margin: 1.5rem 0 0.75rem; }
p { margin: 0 0 1rem; max-width: 38em; }
a { color: #1d4f91; text-decoration: underline; text-underline-offset: 0.15em; }
a:visited { color: #4c2c92; }
a:hover { color: #0b2e5a; text-decoration-thickness: 0.15em; }
:focus-visible { outline: 3px solid #ffdd00; outline-offset: 0; box-shadow: 0 0 0 6px #0b0c0c; }
a:focus-visible { background: #ffdd00; color: #0b0c0c; text-decoration: none; box-shadow: 0 4px 0 #0b0c0c; outline: none; }
label { display: block; font-weight: 700; margin: 0 0 0.35rem; }
.hint { display: block; color: #484949; margin: 0 0 0.5rem; }
input[type="text"], input[type="email"], input[type="password"], input[type="number"], textarea {
  display: block; width: 100%; max-width: 24rem; min-height: 2.75rem;
  font: inherit; padding: 0.4rem 0.5rem; color: #0b0c0c; background: #ffffff;
  border: 2px solid #0b0c0c; border-radius: 0;
}
textarea { max-width: 100%; min-height: 8rem; }
.field { margin: 0 0 1.5rem; }
.field-error input, .field-error textarea { border-color: #b3261e; border-width: 3px; }
.error-text { display: block; color: #b3261e; font-weight: 700; margin: 0 0 0.5rem; }
button, .button {
  display: inline-block; min-height: 2.75rem; padding: 0.55rem 1.1rem;
  font: inherit; font-weight: 700; line-height: 1.3; color: #ffffff; background: #00703c;
  border: 0; border-radius: 4px; box-shadow: 0 2px 0 #002d18; cursor: pointer; text-decoration: none;
}
button:hover, .button:hover { background: #005a30; color: #ffffff; }
button:focus-visible, .button:focus-visible { background: #ffdd00; color: #0b0c0c; box-shadow: 0 2px 0 #0b0c0c; outline: 3px solid transparent; }
button.secondary { background: #e6e6e6; color: #0b0c0c; box-shadow: 0 2px 0 #929191; }
.notice { border-left: 6px solid #1d70b8; background: #ffffff; padding: 0.75rem 1rem; margin: 0 0 1.5rem; }
.notice.error { border-left-color: #b3261e; }
.meta { color: #484949; font-size: 0.9375rem; }
.site-footer { border-top: 1px solid #b1b4b6; padding: 1rem 0 2rem; color: #484949; font-size: 0.9375rem; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.9375em; }
@media (min-width: 40rem) {
  h1 { font-size: 2.125rem; }
  main.wrap { padding-top: 2.5rem; }
  .panel { padding: 1.75rem 2rem 2rem; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { transition: none !important; animation: none !important; scroll-behavior: auto !important; }
}
@media (forced-colors: active) {
  button, .button { border: 2px solid ButtonText; }
  :focus-visible { outline: 3px solid Highlight; }
}
`;
