// Shared plumbing of the CLI commands that talk to the daemon.

import type { Command } from 'commander';
import { controlPath } from '../protocol.js';
import { request } from '../server.js';

export interface CommonOptions { control?: string; json?: boolean }

export function withControl(c: Command): Command {
  return c.option('--control <path>', 'control socket of the daemon (env NFSESSIOND_CONTROL)');
}

/** A daemon command with --control and --json; `render` turns the result into text. */
export function daemonCommand<T>(parent: Command, name: string, description: string, cmd: string,
  render: (result: T) => string, args: (opts: Record<string, unknown>, positional: string[]) => Record<string, unknown> = () => ({})): Command {
  return withControl(parent.command(name))
    .description(description)
    .option('--json', 'print JSON')
    .action(async (...a: unknown[]) => {
      const command = a[a.length - 1] as Command;
      // With globals: a daemon command nested under another (diagnose sys conserve reset) gets
      // --control/--json even when commander hands them to the parent.
      const opts = command.optsWithGlobals() as CommonOptions & Record<string, unknown>;
      const positional = command.args;
      const result = (await request(controlPath(opts.control), { cmd, args: args(opts, positional) })) as T;
      const text = opts.json ? JSON.stringify(result, null, 2) : render(result);
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    });
}
