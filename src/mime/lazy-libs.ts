// libmime and iconv-lite, loaded the first time a message needs them. Config
// loading reaches the DLP and the MIME repair, so every CLI command would pay
// for them at start (some 80 ms together) though few ever parse a message. They
// are CommonJS packages (libmime ships both forms): a synchronous require keeps
// their callers, the streaming scanners, synchronous.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

let libmimeModule: typeof import('libmime').default | undefined;
let iconvModule: typeof import('iconv-lite') | undefined;

export function libmime(): typeof import('libmime').default {
  return (libmimeModule ??= require('libmime') as typeof import('libmime').default);
}

export function iconvLite(): typeof import('iconv-lite') {
  return (iconvModule ??= require('iconv-lite') as typeof import('iconv-lite'));
}
