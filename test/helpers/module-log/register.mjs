// `node --import …/register.mjs`: logs which modules a process loads (hooks.mjs), so a
// test can tell what a relay loads at start-up.
import { register } from 'node:module';

register(new URL('./hooks.mjs', import.meta.url));
