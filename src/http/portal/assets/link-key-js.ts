// The portal's one script, for items whose key is partly in the link (key_in_link).
// The part lives in the link's #fragment, which browsers never send to a server, so
// this script is the only way it reaches us: it reads `#k=…`, carries the fragment
// along when a form moves to the next step (a form's action keeps a fragment, and a
// 303 redirect inherits it: RFC 9110 §10.2.2), puts the part in the hidden `k` field
// of the forms that open the message (a POST body: never in a URL, never logged),
// and opens the message by itself once the visitor is verified. No markup is built
// from data (no innerHTML), so Trusted Types never come into it.
export const LINK_KEY_JS = `(function () {
  'use strict';
  var match = /^#k=([A-Za-z0-9_-]{43})$/.exec(window.location.hash);
  var key = match ? match[1] : null;
  var each = function (selector, fn) { Array.prototype.forEach.call(document.querySelectorAll(selector), fn); };
  each('[data-needs-link]', function (el) { el.hidden = !key; });
  each('[data-link-missing]', function (el) { el.hidden = !!key; });
  if (!key) return;
  each('form[data-carry-link]', function (form) { form.setAttribute('action', form.getAttribute('action') + window.location.hash); });
  each('a[data-carry-link]', function (a) { a.setAttribute('href', a.getAttribute('href') + window.location.hash); });
  each('input[data-link-key]', function (input) { input.value = key; });
  var opener = document.querySelector('form[data-auto-open]');
  if (opener) opener.submit();
})();
`;
