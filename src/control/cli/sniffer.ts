// nfsessiond diagnose sniffer packet <interface|any> ['<filter>'|none] [verbosity] [count] [a|l]
//   live capture in the vendor's sniffer style, in this process (tcpdump captures; no daemon needed)
// nfsessiond diagnose debug capture start FILE [count] | stop | status
//   the daemon writes the packets it decides, with their verdicts, to a pcapng file

import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CaptureStatus } from '../../capture/decision-capture.js';
import { controlPath } from '../protocol.js';
import { request } from '../server.js';
import { withControl, type CommonOptions } from './call.js';

function write(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function formatCaptureStatus(s: CaptureStatus): string {
  const when = (ms?: number) => (ms ? new Date(ms).toISOString() : '-');
  return `capture: ${s.active ? 'running' : 'stopped'} file=${s.file ?? '-'} count=${s.count || 'unlimited'} written=${s.written} accepted=${s.accepted} dropped=${s.dropped} started=${when(s.started)}${s.active ? '' : ` stopped=${when(s.stopped)}`}`;
}

export function registerSniffer(diagnose: Command): void {
  const sniffer = diagnose.command('sniffer').description('packet capture on this machine (runs here, not in the daemon)');
  sniffer.command('packet')
    .description("capture and print packets: <interface|any> ['<bpf filter>'|none] [verbosity 1-6] [count, 0 = until Ctrl-C] [a (UTC) | l (local) timestamps]")
    .argument('<interface>', "interface name, or 'any'")
    .argument('[filter]', "BPF filter (tcpdump syntax), 'none' for all", 'none')
    .argument('[verbosity]', '1 header, 2 +IP hex, 3 +Ethernet hex, 4-6 the same with interface name and direction', '1')
    .argument('[count]', 'packets to capture (0 = until Ctrl-C)', '0')
    .argument('[tsformat]', "'a' absolute UTC, 'l' local time; default seconds since start")
    .option('-w, --write <file>', 'also write the packets to a pcap file (Wireshark/tshark read it)')
    .addHelpText('after', `
Example: nfsessiond diagnose sniffer packet veth-c 'tcp port 80' 4 10
  0.000000 veth-c in 198.51.100.2.33000 -> 203.0.113.2.80: syn 12345
Runs tcpdump (which compiles the filter) in the current network namespace; root is needed.`)
    .action(async (iface: string, filter: string, verbosity: string, count: string, tsformat: string | undefined, opts: { write?: string }) => {
      const v = Number(verbosity);
      const n = Number(count);
      if (!Number.isInteger(v) || v < 1 || v > 6) throw new Error(`verbosity ${verbosity}: expected 1-6`);
      if (!Number.isInteger(n) || n < 0) throw new Error(`count ${count}: expected an integer >= 0`);
      if (tsformat !== undefined && tsformat !== 'a' && tsformat !== 'l') throw new Error(`tsformat ${tsformat}: expected 'a' or 'l'`);
      const { Sniffer } = await import('../../capture/sniffer.js');
      const s = new Sniffer({ iface, filter, verbosity: v, count: n, tsformat, write: opts.write ? resolve(opts.write) : undefined });
      const stop = () => void s.stop();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await s.start();
      const r = await s.done!;
      write(`\n${r.received} packets received by filter\n${r.dropped} packets dropped by kernel`);
    });

  const debug = diagnose.commands.find((c) => c.name() === 'debug') ?? diagnose.command('debug').description('debugging');
  const capture = debug.command('capture').description('write the packets the daemon decides, with their verdicts, to a pcapng file');
  withControl(capture.command('start'))
    .description('start writing decided packets to FILE (pcapng, raw IP, the verdict in each packet comment); stops after [count] packets (0 = until stop)')
    .argument('<file>', 'output file (created by the daemon, mode 0600; an existing file is refused unless --overwrite)')
    .argument('[count]', 'packets to write', '0')
    .option('--overwrite', 'replace an existing file')
    .option('--json', 'print JSON')
    .action(async (file: string, count: string, opts: CommonOptions & { overwrite?: boolean }) => {
      const r = (await request(controlPath(opts.control), { cmd: 'debug.capture.start', args: { file: resolve(file), count: Number(count), overwrite: opts.overwrite === true } })) as CaptureStatus;
      write(opts.json ? JSON.stringify(r, null, 2) : formatCaptureStatus(r));
    });
  for (const [name, cmd, desc] of [['stop', 'debug.capture.stop', 'stop the capture and close the file'], ['status', 'debug.capture.status', 'the capture state']] as const) {
    withControl(capture.command(name))
      .description(desc)
      .option('--json', 'print JSON')
      .action(async (opts: CommonOptions) => {
        const r = (await request(controlPath(opts.control), { cmd })) as CaptureStatus;
        write(opts.json ? JSON.stringify(r, null, 2) : formatCaptureStatus(r));
      });
  }
}
