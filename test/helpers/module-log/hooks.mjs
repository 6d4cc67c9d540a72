// Module hooks for module-log/register.mjs: appends the URL of every module the
// process loads (its main thread) to the file named by SEALRELAY_MODULE_LOG.
import { appendFileSync } from 'node:fs';

export async function load(url, context, next) {
  appendFileSync(process.env.SEALRELAY_MODULE_LOG, `${url}\n`);
  return next(url, context);
}
