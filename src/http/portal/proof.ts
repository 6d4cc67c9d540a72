// Proof of address: the landing page a link opens, the one-time code (asked for,
// sent by email, checked), and the sender's passphrase when the item has one. Only
// then a session, bound to the item and its recipient.
//
// The landing page is a GET: mail scanners fetch links before people do, so it
// sends nothing, counts nothing and changes no item; it leaves only the evidence
// that it was fetched (`portal-viewed`, marked possibly automated). Everything else
// here is a POST behind the CSRF check.
//
// Limits: codes sent per item, per address and per client IP (each a fixed window);
// wrong codes per item by the store (portal.code.tries, then locked for
// lock_seconds) and per address and IP here; wrong passphrases per item and IP.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hashCode, MIN_CODE_DIGITS, newCode, readCode } from '../../portal/codes.ts';
import { buildCodeEmail, portalFromAddress } from '../../portal/code-email.ts';
import { checkPassphrase } from '../../portal/passphrase.ts';
import type { PortalItemHead } from '../../store/store.ts';
import { TooManyRequests } from '../errors.ts';
import { sendPage } from '../layout.ts';
import type { AttemptRules } from '../limits.ts';
import { ipKey, type LimitRule } from '../rate-limit.ts';
import { LINK_UNKNOWN, type PortalContext, type PortalStage } from './context.ts';
import { codePage, landingPage, lockedPage, noCodePage, notVerifiedPage, passphrasePage, type ItemFacts } from './pages.ts';

const HOUR_MS = 3_600_000;

/** Codes sent: an item gets 5 an hour, an address 10 (several items), a client IP 30 (an office behind one NAT). */
export const CODE_SEND_RULES = {
  item: { name: 'portal-code-item', limit: 5, windowMs: HOUR_MS, lockoutMs: HOUR_MS },
  address: { name: 'portal-code-address', limit: 10, windowMs: HOUR_MS, lockoutMs: HOUR_MS },
  ip: { name: 'portal-code-ip', limit: 30, windowMs: HOUR_MS, lockoutMs: HOUR_MS },
} as const satisfies Record<string, LimitRule>;

/** Wrong codes beyond the item's own tries: per address across its items, and per client IP. */
export const CODE_CHECK_RULES: AttemptRules = {
  perKey: { name: 'portal-verify-address', limit: 20, windowMs: HOUR_MS, lockoutMs: HOUR_MS },
  perIp: { name: 'portal-verify-ip', limit: 50, windowMs: HOUR_MS, lockoutMs: HOUR_MS },
};

type TokenRequest = FastifyRequest<{ Params: { token: string }; Body: Record<string, unknown> | undefined }>;

export function itemFacts(item: PortalItemHead, token: string): ItemFacts {
  return { token, sender: item.sender, recipient: item.recipient, expiresAt: item.expiresAt, keyInLink: item.keyInLink };
}

export function registerProof(app: FastifyInstance, ctx: PortalContext): void {
  const { server } = ctx;

  app.get('/m/:token', async (request: TokenRequest, reply) => {
    const item = await ctx.item(request.params.token);
    // Evidence, not state: the only write a GET makes, and the one the portal's state probe leaves out.
    await ctx.store.recordPortalEvent(item.id, 'portal-viewed', ctx.event(request, 'possibly automated'));
    const verified = ctx.session(request, item) !== null;
    return sendPage(request, reply, landingPage(itemFacts(item, request.params.token), server.csrf.token(request, reply), verified));
  });

  app.post('/m/:token/code', async (request: TokenRequest, reply) => {
    const item = await ctx.item(request.params.token);
    const facts = itemFacts(item, request.params.token);
    const limiter = server.limits.limiter;
    const keyed: [LimitRule, string][] = [
      [CODE_SEND_RULES.item, `item:${item.id}`],
      [CODE_SEND_RULES.address, `address:${item.recipient.toLowerCase()}`],
      [CODE_SEND_RULES.ip, ipKey(request.ip)],
    ];
    for (const [rule, key] of keyed) {
      const v = await limiter.consume(rule, [key]);
      if (!v.allowed) throw new TooManyRequests(v.retryAt, ctx.now());
    }
    const config = ctx.config();
    const now = ctx.now();
    const code = newCode(config.portal.code.digits);
    const set = await ctx.store.setPortalCode(item.id, { hash: hashCode(item.id, code), expiresAt: now + config.portal.code.lifetime_seconds * 1000, triesLeft: config.portal.code.tries }, ctx.event(request));
    if (set.result === 'gone') return refuseGone(ctx, item);
    if (set.result === 'locked') return sendLocked(request, reply, facts, set.until, ctx.now());
    await ctx.deps.queueMail(
      await buildCodeEmail({
        to: item.recipient,
        code,
        lifetimeSeconds: config.portal.code.lifetime_seconds,
        from: portalFromAddress(config),
        organisation: config.portal.organisation.name,
        hostname: config.server.hostname,
        now,
      }),
    );
    return reply.redirect(`/m/${request.params.token}/verify`, 303);
  });

  app.get('/m/:token/verify', async (request: TokenRequest, reply) => {
    const item = await ctx.item(request.params.token);
    return sendPage(request, reply, codePage(itemFacts(item, request.params.token), server.csrf.token(request, reply)));
  });

  app.post('/m/:token/verify', async (request: TokenRequest, reply) => {
    const item = await ctx.item(request.params.token);
    const facts = itemFacts(item, request.params.token);
    const config = ctx.config();
    const keys = [`address:${item.recipient.toLowerCase()}`];
    await server.limits.beforeAttempt(request, CODE_CHECK_RULES, keys);
    const code = readCode(request.body?.code);
    if (code === null) {
      const digits = Math.max(MIN_CODE_DIGITS, config.portal.code.digits);
      return sendPage(request, reply, codePage(facts, server.csrf.token(request, reply), `Enter the ${digits}-digit code from the email, in numbers only.`), 400);
    }
    const check = await ctx.store.checkPortalCode(item.id, hashCode(item.id, code), { lockMs: config.portal.code.lock_seconds * 1000, event: ctx.event(request) });
    switch (check.result) {
      case 'verified': {
        await server.limits.succeededAttempt(request, CODE_CHECK_RULES, keys);
        const stage: PortalStage = item.passphraseHash ? 'passphrase' : 'verified';
        await server.sessions.establish(request, reply, { portalItem: item.id, recipient: item.recipient, stage });
        return reply.redirect(`/m/${request.params.token}/${stage === 'passphrase' ? 'passphrase' : 'message'}`, 303);
      }
      case 'wrong': {
        const ours = await server.limits.failedAttempt(request, CODE_CHECK_RULES, keys);
        // The address or IP is now locked out: the check says until when (a 429 page).
        if (ours <= 0) await server.limits.beforeAttempt(request, CODE_CHECK_RULES, keys);
        const left = Math.min(check.triesLeft, ours);
        return sendPage(request, reply, codePage(facts, server.csrf.token(request, reply), `That code is not right. You have ${left} ${left === 1 ? 'try' : 'tries'} left.`), 400);
      }
      case 'locked':
        await server.limits.failedAttempt(request, CODE_CHECK_RULES, keys);
        return sendLocked(request, reply, facts, check.until, ctx.now());
      case 'no-code':
        return sendPage(request, reply, noCodePage(facts, server.csrf.token(request, reply)), 400);
      case 'gone':
        return refuseGone(ctx, item);
    }
  });

  app.get('/m/:token/passphrase', async (request: TokenRequest, reply) => {
    const item = await ctx.item(request.params.token);
    const facts = itemFacts(item, request.params.token);
    if (!ctx.session(request, item, 'passphrase')) return sendPage(request, reply, notVerifiedPage(facts), 401);
    return sendPage(request, reply, passphrasePage(facts, server.csrf.token(request, reply)));
  });

  app.post('/m/:token/passphrase', async (request: TokenRequest, reply) => {
    const item = await ctx.item(request.params.token);
    const facts = itemFacts(item, request.params.token);
    if (!ctx.session(request, item, 'passphrase') || !item.passphraseHash) return sendPage(request, reply, notVerifiedPage(facts), 401);
    const rules = passphraseRules(ctx);
    const keys = [`item:${item.id}`];
    await server.limits.beforeAttempt(request, rules, keys);
    const typed = request.body?.passphrase;
    if (typeof typed !== 'string' || !typed) return sendPage(request, reply, passphrasePage(facts, server.csrf.token(request, reply), 'Enter the passphrase the sender gave you.'), 400);
    if (!checkPassphrase(typed, item.passphraseHash)) {
      const left = await server.limits.failedAttempt(request, rules, keys);
      // The last try: the lockout page, with its time, comes from the check.
      if (left <= 0) await server.limits.beforeAttempt(request, rules, keys);
      return sendPage(request, reply, passphrasePage(facts, server.csrf.token(request, reply), `That passphrase is not right. You have ${left} ${left === 1 ? 'try' : 'tries'} left.`), 400);
    }
    await server.limits.succeededAttempt(request, rules, keys);
    await server.sessions.establish(request, reply, { portalItem: item.id, recipient: item.recipient, stage: 'verified' });
    return reply.redirect(`/m/${request.params.token}/message`, 303);
  });
}

/** Wrong passphrases: as many as codes (portal.code.tries) per item, then locked for lock_seconds. */
function passphraseRules(ctx: PortalContext): AttemptRules {
  const { tries, lock_seconds } = ctx.config().portal.code;
  return {
    perKey: { name: 'portal-passphrase-item', limit: tries, windowMs: lock_seconds * 1000, lockoutMs: lock_seconds * 1000 },
    perIp: CODE_CHECK_RULES.perIp,
  };
}

function sendLocked(request: FastifyRequest, reply: FastifyReply, facts: ItemFacts, until: number, now: number): FastifyReply {
  reply.header('retry-after', String(Math.max(1, Math.ceil((until - now) / 1000))));
  return sendPage(request, reply, lockedPage(facts, until), 429);
}

/** The item stopped being readable between the lookup and the change: say why, as the lookup would have. */
async function refuseGone(ctx: PortalContext, item: PortalItemHead): Promise<never> {
  const now = await ctx.store.getPortalItem(item.id);
  if (now) ctx.assertReadable(now);
  // Readable again is impossible; a vanished row reads as an unknown link.
  throw LINK_UNKNOWN;
}
