// A reader that stops early (`nfsessiond ... | head`) closes the pipe under us. What is left of
// the output has nowhere to go and nobody wants it, so the command ends as if it had printed
// everything: exit 0, nothing on stderr. Other write errors stay fatal.

import type { Writable } from 'node:stream';

export function endQuietlyOnBrokenPipe(stream: Writable = process.stdout, exit: (code: number) => void = (c) => process.exit(c)): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    exit(0);
  });
}
