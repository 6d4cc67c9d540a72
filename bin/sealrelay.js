#!/usr/bin/env node
// Entry point of the `sealrelay` command: runs the TypeScript sources through tsx,
// so what runs is always what is in src/ (no build step to forget).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
