// The portal's own styles, on top of base.css (served by assets.ts from the relay
// itself). The message body is someone else's HTML, sanitised (portal/message-view.ts)
// and without style attributes (the CSP allows none): these rules keep it inside a
// phone's width and readable.
export const PORTAL_CSS = `
.visually-hidden { position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); border: 0; white-space: nowrap; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0 0 1.25rem; }
.facts dt { font-weight: 700; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.message-body { overflow-wrap: anywhere; }
.message-body pre, .message-text { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; font-family: inherit; font-size: inherit; }
.message-body table { display: block; max-width: 100%; overflow-x: auto; border-collapse: collapse; }
.message-body td, .message-body th { padding: 0.25rem 0.5rem; vertical-align: top; }
.message-body blockquote { margin: 0 0 1rem; padding-left: 1rem; border-left: 4px solid #b1b4b6; }
.message-body .blocked { display: inline-block; padding: 0 0.35rem; border: 1px dashed #484949; color: #484949; font-size: 0.9375rem; }
.attachments { list-style: none; padding: 0; margin: 0 0 1rem; }
.attachments li { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1rem; padding: 0.75rem 0; border-top: 1px solid #b1b4b6; }
.attachments li:last-child { border-bottom: 1px solid #b1b4b6; }
.attachment-name { font-weight: 700; overflow-wrap: anywhere; flex: 1 1 12rem; }
.inline-form { display: inline; margin: 0; }
input.code-input { max-width: 12rem; font-size: 1.375rem; letter-spacing: 0.2em; font-variant-numeric: tabular-nums; }
input[type="file"] { display: block; max-width: 100%; font: inherit; margin: 0 0 0.5rem; }
.checkbox { display: flex; gap: 0.6rem; align-items: flex-start; margin: 0 0 1.5rem; }
.checkbox input { width: 1.5rem; height: 1.5rem; margin: 0.1rem 0 0; flex: none; }
.checkbox label { font-weight: 400; margin: 0; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin: 1.5rem 0 0; }
`;
