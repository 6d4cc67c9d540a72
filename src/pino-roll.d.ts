// pino-roll ships no types: what log-file.ts uses of it (pino-roll.js, its JSDoc).
declare module 'pino-roll' {
  import type { SonicBoom, SonicBoomOpts } from 'sonic-boom';

  export interface PinoRollOptions extends SonicBoomOpts {
    /** The path NAME.ext; files are NAME.<n>.ext. */
    file: string;
    /** '10k', '5m', '1g', '4096b'; a bare number is megabytes. */
    size?: string | number;
    /** 'hourly', 'daily', or a period in ms. */
    frequency?: 'hourly' | 'daily' | number;
    symlink?: boolean;
    limit?: { count: number; removeOtherLogFiles?: boolean };
  }

  export default function pinoRoll(opts: PinoRollOptions): Promise<SonicBoom>;
}
