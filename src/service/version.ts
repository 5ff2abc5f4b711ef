// The version of the running program, from the package.json it was installed with.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../kernel/netlink-socket.js';

let cached: string | undefined;

export function programVersion(): string {
  if (cached === undefined) {
    try {
      cached = String((JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown');
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
