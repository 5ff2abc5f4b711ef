#!/usr/bin/env node
// nfsessiond command line: `run` is the daemon, `check` validates a config, `diagnose ...` talks
// to a running daemon over its control socket. Command names follow the vendor CLI and are
// stable: operators' scripts depend on them.

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { endQuietlyOnBrokenPipe } from './cli/broken-pipe.js';
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
    .option('--state-dir <dir>', 'state directory (table snapshot); default: state-dir from the config, else $STATE_DIRECTORY, else /var/lib/nfsessiond')
    .action(async (opts: { config?: string; control?: string; stateDir?: string }) => {
      const { runDaemon } = await import('./daemon.js');
      await runDaemon({ configPath: opts.config, controlPath: opts.control, stateDir: opts.stateDir }).catch(fail);
    });

  program.command('install')
    .description('install this built checkout as a systemd service: program, wrapper, example config (kept if present), unit; enables/starts nothing unless asked')
    .option('--root <dir>', 'write everything below this directory (DESTDIR); installed files name the paths without it', '/')
    .option('--prefix <dir>', 'program in <prefix>/lib/nfsessiond, command in <prefix>/bin', '/usr/local')
    .option('--sysconfdir <dir>', 'config in <sysconfdir>/nfsessiond/nfsessiond.conf', '/etc')
    .option('--unitdir <dir>', 'directory of the systemd unit', '/etc/systemd/system')
    .option('--node <path>', 'Node.js binary the service runs (default: this one)')
    .option('--enable', 'systemctl enable the unit (offline with --root or without a running systemd)')
    .option('--start', 'systemctl restart the unit (only into the running system with systemd as PID 1)')
    .option('-n, --dry-run', 'print what would be done and change nothing')
    .action(async (opts: { root: string; prefix: string; sysconfdir: string; unitdir: string; node?: string; enable?: boolean; start?: boolean; dryRun?: boolean }) => {
      const { install } = await import('./service/install.js');
      try {
        install({ ...opts, out });
      } catch (e) {
        fail(e);
      }
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

  program.command('reload')
    .description('check the config file, then make the running daemon re-read it (SIGHUP); what systemctl reload runs')
    .requiredOption('--pid <pid>', 'process id of the daemon ($MAINPID in the unit)')
    .option('-c, --config <file>', 'config file to check first; a bad one fails the reload and nothing is signalled')
    .action(async (opts: { pid: string; config?: string }) => {
      const { reloadDaemon } = await import('./service/reload.js');
      try {
        out(reloadDaemon(opts));
      } catch (e) {
        fail(e);
      }
    });

  const ha = program.command('ha').description('HA helpers');
  ha.command('keepalived-config')
    .description('print a keepalived.conf matching config system ha (instance, priority, nopreempt, unicast peer on the hbdev, notify FIFO, track file)')
    .requiredOption('-c, --config <file>', 'config file')
    .option('--vip <ADDR/LEN@IFNAME>', 'a virtual address keepalived holds on the primary (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (opts: { config: string; vip: string[] }) => {
      const { keepalivedConfigText } = await import('./ha/keepalived-command.js');
      try {
        out(keepalivedConfigText(loadConfigFile(opts.config), opts.config, opts.vip));
      } catch (e) {
        fail(e);
      }
    });

  registerDiagnose(program);
  registerReplay(program);

  return program;
}

export function main(argv: string[] = process.argv): Promise<unknown> {
  // The daemon logs through its own stream on fd 1, so this only concerns what commands print.
  endQuietlyOnBrokenPipe();
  return buildProgram().parseAsync(argv).catch(fail);
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) void main();
