// GET /: a plain page that says what this address is, so that someone who
// arrives without a link (or a monitor that renders pages) finds an answer
// rather than a 404.
import type { FastifyInstance } from 'fastify';
import { html } from '../html.ts';
import { sendPage } from './layout.ts';

export function registerHome(app: FastifyInstance, text: { title: string; lead: string }): void {
  app.get('/', async (request, reply) =>
    sendPage(request, reply, {
      title: text.title,
      main: html`<h1>${text.title}</h1><div class="panel"><p>${text.lead}</p></div>`,
    }),
  );
}
