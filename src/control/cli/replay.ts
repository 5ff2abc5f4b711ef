// nfsessiond replay FILE... [--config FILE] [--json] [--at end|+SECONDS|<time>]: captures
// through the daemon's engine (src/capture/replay.ts), offline, no daemon needed.

import type { Command } from 'commander';
import { loadConfigFile, parseConfig } from '../../config/load.js';

export function registerReplay(program: Command): void {
  program.command('replay')
    .description('feed pcap/pcapng captures through the session engine (same config, helpers and timers as the daemon) and print the resulting table')
    .argument('<files...>', 'capture files (pcap or pcapng; Ethernet, Linux cooked v1/v2, raw IP, BSD loopback); several are merged by timestamp')
    .option('-c, --config <file>', 'config file (the daemon\'s language); default: the built-in defaults')
    .option('--json', 'print one JSON document')
    .option('--at <time>', "show the table at: 'end' (last packet, default), '+SECONDS' after the last packet, epoch seconds or an ISO-8601 time (later packets are not fed)", 'end')
    .option('--org-if <name>', 'name of interface 1, which packets in a session\'s original direction enter through (policies match it as srcintf)')
    .option('--reply-if <name>', 'name of interface 2, which replies enter through')
    .option('--stats', 'print packets/s (reading and deciding, without the report) and memory on stderr')
    .addHelpText('after', `
Interfaces: a capture has none. Interface 1 is where packets in a session's original direction
(the direction of its first packet) come in, interface 2 where replies come in: dev=1->2/2->1.
Their names default to the first two 'config system interface' entries, else port1 and port2.`)
    .action(async (files: string[], opts: { config?: string; json?: boolean; at?: string; orgIf?: string; replyIf?: string; stats?: boolean }) => {
      const { writeReplayReport, writeReplayJson, fdWriter, parseAt, replayFiles } = await import('../../capture/replay.js');
      const t0 = process.hrtime.bigint();
      const config = opts.config ? loadConfigFile(opts.config) : parseConfig('', '<defaults>');
      const report = replayFiles({ files, config, ...parseAt(opts.at), orgIf: opts.orgIf, replyIf: opts.replyIf });
      const t1 = process.hrtime.bigint();
      const w = fdWriter(1);
      (opts.json ? writeReplayJson : writeReplayReport)(report, w.write);
      w.flush();
      if (opts.stats) {
        const s = Number(t1 - t0) / 1e9;
        const m = process.memoryUsage();
        process.stderr.write(`replay: ${report.replay.packets} packets in ${s.toFixed(3)} s (${Math.round(report.replay.packets / s)} packets/s), ` +
          `${report.total} sessions, heap ${(m.heapUsed / 1048576).toFixed(0)} MiB, max RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`);
      }
    });
}
