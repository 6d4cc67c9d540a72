/**
 * xss-payloads: markup that runs script or loads from elsewhere if a page prints it
 * as markup. Each script payload sets window.pwned, so a test can ask the page
 * whether any ran; remote loads point at .invalid names (never resolvable, and the
 * CSP must stop them before any lookup).
 */
export const XSS_PAYLOADS = [
  '<script>window.pwned=1</script>',
  '<img src=x onerror="window.pwned=2">',
  '"><svg onload=window.pwned=3>',
  "'><a id=\"jslink\" href='javascript:window.pwned=4'>click me</a>",
  '<iframe srcdoc="<script>parent.pwned=5</script>"></iframe>',
  '&lt;script&gt;already escaped&lt;/script&gt;',
  '</textarea></title><script>window.pwned=6</script>',
  '<details open ontoggle="window.pwned=7">',
  '<object data="javascript:window.pwned=8"></object>',
];

/** Markup that would fetch from another origin or redirect our own URLs if allowed. */
export const REMOTE_PAYLOADS = [
  '<img src="https://images.remote.invalid/pixel.png">',
  '<link rel="stylesheet" href="https://styles.remote.invalid/x.css">',
  '<iframe src="https://frames.remote.invalid/"></iframe>',
  '<script src="https://scripts.remote.invalid/x.js"></script>',
  '<style>@import url("https://styles.remote.invalid/y.css"); body { background: red }</style>',
  '<base href="https://base.remote.invalid/">',
  '<video src="https://media.remote.invalid/v.mp4" autoplay></video>',
  '<object data="https://objects.remote.invalid/x.swf"></object>',
];
