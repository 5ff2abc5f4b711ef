// Branch coverage of a campaign child: V8 writes its block coverage to NODE_V8_COVERAGE when the
// process exits; c8 (which tap brings) maps it through the source maps back to src/*.ts and
// summarises it. Counted are the branches of the target's own source files.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Coverage { branches: { covered: number; total: number }; perFile: Record<string, string> }

export function summarise(repo: string, v8Dir: string, sources: string[]): Coverage | undefined {
  const c8 = join(repo, 'node_modules/c8/bin/c8.js');
  if (!existsSync(c8)) return undefined;
  const out = join(v8Dir, 'report');
  execFileSync(process.execPath, [
    c8, 'report', '--temp-directory', v8Dir, '--reporter', 'json-summary', '--report-dir', out,
    '--exclude-after-remap', '--exclude', 'dist/**', ...sources.flatMap((s) => ['--include', s]),
  ], { cwd: repo, stdio: 'ignore' });
  const summary = JSON.parse(readFileSync(join(out, 'coverage-summary.json'), 'utf8')) as Record<string, { branches: { covered: number; total: number } }>;
  const cov: Coverage = { branches: { covered: 0, total: 0 }, perFile: {} };
  for (const [file, s] of Object.entries(summary)) {
    if (file === 'total') continue;
    cov.branches.covered += s.branches.covered;
    cov.branches.total += s.branches.total;
    cov.perFile[file.slice(repo.length + 1)] = `${s.branches.covered}/${s.branches.total}`;
  }
  return cov;
}
