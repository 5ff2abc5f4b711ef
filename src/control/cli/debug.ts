// nfsessiond diagnose debug flow filter|show|trace ..., diagnose debug enable|disable|reset.
//
// Reading the trace: the vendor prints trace lines on the admin console; the daemon has none, so
// it keeps them (the last 10000 lines) and `diagnose debug flow trace read` prints the lines of
// the current or last trace; `--follow` keeps printing new lines until the trace has traced its N
// packets or was stopped (or Ctrl-C). Start and read are separate so a trace survives its reader.

import { Command } from 'commander';
import { formatFlowFilter, type FlowFilter } from '../trace.js';
import type { TraceLine, TraceStatus } from '../tracer.js';
import { controlPath } from '../protocol.js';
import { request } from '../server.js';
import { withControl, type CommonOptions } from './call.js';

function write(text: string): void {
  if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * A daemon command taking free arguments (`filter src 198.51.100.1 198.51.100.9`, `vd -1`):
 * unknown options are kept as arguments so `-1` reaches the daemon. Empty text prints nothing.
 */
export function argsCommand<T>(parent: Command, name: string, description: string, cmd: string,
  render: (result: T, args: string[]) => string): Command {
  return withControl(parent.command(name))
    .description(description)
    .argument('[args...]')
    .allowUnknownOption()
    .option('--json', 'print JSON')
    .action(async (...a: unknown[]) => {
      const command = a[a.length - 1] as Command;
      const opts = command.opts() as CommonOptions;
      const args = command.args.filter((x) => x !== '--json');
      const result = (await request(controlPath(opts.control), { cmd, args: { args } })) as T;
      write(opts.json ? JSON.stringify(result, null, 2) : render(result, args));
    });
}

function simple<T>(parent: Command, name: string, description: string, cmd: string, args: (positional: string[]) => Record<string, unknown>,
  render: (r: T) => string): Command {
  return withControl(parent.command(name))
    .description(description)
    .option('--json', 'print JSON')
    .action(async (...a: unknown[]) => {
      const command = a[a.length - 1] as Command;
      const opts = command.opts() as CommonOptions;
      const result = (await request(controlPath(opts.control), { cmd, args: args(command.args) })) as T;
      write(opts.json ? JSON.stringify(result, null, 2) : render(result));
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerDebug(diagnose: Command): void {
  const debug = diagnose.command('debug').description('debugging: flow trace');
  simple<TraceStatus>(debug, 'enable', 'also copy flow trace lines to the daemon log (the daemon has no console)', 'debug.enable', () => ({}), () => '');
  simple<TraceStatus>(debug, 'disable', 'stop copying flow trace lines to the daemon log', 'debug.disable', () => ({}), () => '');
  simple<TraceStatus>(debug, 'reset', 'clear the flow filter, stop the trace, function names and log copy off', 'debug.reset', () => ({}), () => '');

  const flow = debug.command('flow').description('trace packets through the session engine');
  argsCommand<{ filter: FlowFilter }>(flow, 'filter',
    'set the flow filter: vd|proto <n>, addr|saddr|daddr <ip> [<ip-to>], port|sport|dport <n> [<n-to>], negate <field>, clear; no argument shows it',
    'debug.flow.filter', (r, args) => (args.length ? '' : formatFlowFilter(r.filter)));

  const show = flow.command('show').description('what trace lines include');
  withControl(show.command('function-name'))
    .description('func=/line= in trace lines')
    .argument('<enable|disable>')
    .action(async (value: string, opts: CommonOptions) => {
      await request(controlPath(opts.control), { cmd: 'debug.flow.show', args: { what: 'function-name', value } });
    });

  const trace = flow.command('trace').description('start, stop and read the flow trace')
    .addHelpText('after', `
Reading the trace: the vendor prints trace lines on the admin console after 'diagnose debug
enable'. The daemon has no console, so it keeps the lines (the last 10000) and you read them:

  nfsessiond diagnose debug flow filter port 21
  nfsessiond diagnose debug flow trace start 6
  nfsessiond diagnose debug flow trace read --follow   # until 6 packets were traced, or Ctrl-C

Start and read are separate on purpose: a trace keeps running when its reader goes away, a reader
that comes late still gets every line, and several readers can follow one trace. 'trace read'
without --follow prints what the current (or last) trace has produced so far; --all prints every
buffered line. 'diagnose debug enable' also copies each line to the daemon's log (journald).`);
  withControl(trace.command('start'))
    .description('trace the next <count> packets that match the flow filter')
    .argument('<count>')
    .option('--json', 'print JSON')
    .action(async (count: string, opts: CommonOptions) => {
      const r = await request(controlPath(opts.control), { cmd: 'debug.flow.trace.start', args: { count: Number(count) } });
      if (opts.json) write(JSON.stringify(r, null, 2));
    });
  simple<TraceStatus>(trace, 'stop', 'stop tracing', 'debug.flow.trace.stop', () => ({}), () => '');
  withControl(trace.command('read'))
    .description('print the trace lines of the current or last trace; --follow waits for new ones until the trace ends')
    .option('-f, --follow', 'keep printing until the trace has traced its packets or is stopped (or Ctrl-C)')
    .option('--all', 'every buffered line, not only the current or last trace')
    .option('--json', 'print JSON lines ({seq, text})')
    .action(async (opts: CommonOptions & { follow?: boolean; all?: boolean }) => {
      const path = controlPath(opts.control);
      let after: number | undefined = opts.all ? 0 : undefined;
      for (;;) {
        const r = (await request(path, { cmd: 'debug.flow.trace.read', args: after === undefined ? { after: 0, max: 0 } : { after } })) as { lines: TraceLine[]; status: TraceStatus };
        if (after === undefined) {
          // First call: only now do we know where the current trace starts.
          after = r.status.start_seq;
          continue;
        }
        for (const l of r.lines) write(opts.json ? JSON.stringify(l) : l.text);
        if (r.lines.length) after = r.lines[r.lines.length - 1].seq;
        if (!opts.follow) { if (!r.lines.length || after >= r.status.last_seq) break; continue; }
        if (!r.status.active && after >= r.status.last_seq) break;
        if (!r.lines.length) await sleep(200);
      }
    });
}
