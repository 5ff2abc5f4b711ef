// The `diagnose ...`, `get ...` and `execute ...` trees, one register function per concern.

import type { Command } from 'commander';
import { registerDebug } from './debug.js';
import { registerHa } from './ha.js';
import { registerLimits } from './limits.js';
import { registerExecute } from './log.js';
import { registerSession } from './session.js';
import { registerSniffer } from './sniffer.js';

export function registerDiagnose(program: Command): void {
  const diagnose = program.command('diagnose').description('inspect the running daemon');
  const sys = diagnose.command('sys').description('system views');
  const get = program.command('get').description('vendor get views of the running daemon');
  registerSession(sys);
  registerLimits(diagnose, sys, get);
  registerHa(sys, get);
  registerDebug(diagnose);
  registerSniffer(diagnose);
  registerExecute(program);
}
