// `nfsessiond ... | head`: the reader goes away before the command has printed everything, and
// the command must end with exit 0 and nothing on stderr.

import t from 'tap';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { endQuietlyOnBrokenPipe } from '../../src/cli/broken-pipe.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

t.test('EPIPE ends with exit 0; any other write error is still thrown', (t) => {
  const s = new PassThrough();
  const exits: number[] = [];
  endQuietlyOnBrokenPipe(s, (c) => exits.push(c));
  s.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  t.same(exits, [0]);
  t.throws(() => s.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' })), { code: 'EIO' });
  t.same(exits, [0]);
  t.end();
});

t.test('the CLI whose stdout reader has gone ends quietly', async (t) => {
  // The TypeScript loader this test runs under, so the CLI runs from source.
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const child = spawn(process.execPath, [...loader, 'src/cli.ts', 'config-reference'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before the CLI has started, so its first write meets a pipe without a reader.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('close', (c, s) => r([c, s])));
  t.equal(stderr, '');
  t.equal(signal, null);
  t.equal(code, 0);
});
