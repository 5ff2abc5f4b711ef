// nfsessiond get test proxyworker <1|4|4444|99>, the vendor's command, and its older spelling
// diagnose test proxyworker. Each selector is its own daemon command; one that is not supported
// is refused here, naming those that are, before the daemon is asked.

import type { Command } from 'commander';
import { formatProxyWorker, type ProxyWorkerView } from '../limits-format.js';
import { controlPath } from '../protocol.js';
import { formatProxyMemory, formatProxyVdoms, PROXYWORKER_MODES, proxyWorkerMode, type ProxyMemoryView, type ProxyVdomView, type ProxyWorkerMode } from '../proxyworker.js';
import { request } from '../server.js';
import { withControl, type CommonOptions } from './call.js';

export interface RestartResult { sessions: number; before: ProxyWorkerView; after: ProxyWorkerView }

const RENDER: Record<ProxyWorkerMode, (r: never) => string> = {
  1: (r: ProxyMemoryView) => formatProxyMemory(r),
  4: (r: ProxyWorkerView) => formatProxyWorker(r),
  4444: (r: { vdoms: ProxyVdomView[] }) => formatProxyVdoms(r.vdoms),
  99: (r: RestartResult) => formatRestart(r),
};

export function formatRestart(r: RestartResult): string {
  const ok = Object.values(r.before.services).reduce((a, c) => a + c.setupOk, 0);
  const fail = Object.values(r.before.services).reduce((a, c) => a + c.setupFail, 0);
  return `proxy worker accounting restarted: setup_ok=${ok} setup_fail=${fail} before; counters and running time count from now; ${r.sessions} session(s) kept\n`;
}

export function registerProxyWorker(test: Command): void {
  const modes = Object.entries(PROXYWORKER_MODES).map(([n, m]) => `${n}: ${m.what}`).join('; ');
  withControl(test.command('proxyworker <selector>'))
    .description(`proxy worker pages: ${modes}`)
    .option('--json', 'print JSON')
    .action(async (selector: string, opts: CommonOptions) => {
      const mode = proxyWorkerMode(selector);
      const result = await request(controlPath(opts.control), { cmd: PROXYWORKER_MODES[mode].cmd, args: { mode: String(mode) } });
      const text = opts.json ? JSON.stringify(result, null, 2) : RENDER[mode](result as never);
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    });
}
