#!/usr/bin/env node
// nfsessiond command line: `run` is the daemon, `check` validates a config, `diagnose ...` talks
// to a running daemon over its control socket. Command names follow the vendor CLI and are
// stable: operators' scripts depend on them.

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ConfigErrors, loadConfigFile } from './config/load.js';
import { registerDiagnose } from './control/cli/index.js';
import { withControl } from './control/cli/call.js';
import { registerReplay } from './control/cli/replay.js';

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function fail(e: unknown): never {
  process.stderr.write(`nfsessiond: ${(e as Error).message}\n`);
  process.exit(e instanceof ConfigErrors ? 2 : 1);
}

export function buildProgram(): Command {
  const program = new Command('nfsessiond')
    .description('Linux netfilter session controller: NFQUEUE decisions, a userspace session table, helpers and pinholes')
    .showHelpAfterError();

  withControl(program.command('run'))
    .description('run the daemon in the foreground (systemd runs it the same way)')
    .option('-c, --config <file>', 'config file')
    .action(async (opts: { config?: string; control?: string }) => {
      const { runDaemon } = await import('./daemon.js');
      await runDaemon({ configPath: opts.config, controlPath: opts.control }).catch(fail);
    });

  program.command('demo')
    .description('build a client/router/server namespace topology, run the daemon on the router with real traffic, print the session table')
    .option('--keep', 'keep the topology and daemon running until Ctrl-C')
    .action(async (opts: { keep?: boolean }) => {
      const { runDemo } = await import('./demo.js');
      await runDemo(opts).catch(fail);
    });

  program.command('config-reference')
    .description('print the reference of every config block and key (markdown), generated from the schema')
    .action(async () => {
      const { configReference } = await import('./config/reference.js');
      out(configReference());
    });

  program.command('check')
    .description('validate a config file without running; reports every error as FILE:LINE:COLUMN')
    .requiredOption('-c, --config <file>', 'config file')
    .action((opts: { config: string }) => {
      try {
        loadConfigFile(opts.config);
        out(`${opts.config}: OK`);
      } catch (e) {
        fail(e);
      }
    });

  registerDiagnose(program);
  registerReplay(program);

  return program;
}

export function main(argv: string[] = process.argv): Promise<unknown> {
  return buildProgram().parseAsync(argv).catch(fail);
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) void main();
