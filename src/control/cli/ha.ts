// nfsessiond diagnose sys ha status / get system ha status: the HA views of the running daemon.

import type { Command } from 'commander';
import { formatHaDiagnose, formatHaGet, type HaStatusResult } from '../ha-format.js';
import { daemonCommand } from './call.js';

export function registerHa(sys: Command, get: Command): void {
  const ha = sys.command('ha').description('HA: role, sync link, bulk transfers, the peer\'s table held here');
  daemonCommand<HaStatusResult>(ha, 'status', 'role, sync link state and why it is down, sequence numbers, retransmits, refusals, bulk state, synced tables (--json lists the peer\'s sessions held here)',
    'ha.status', formatHaDiagnose, () => ({ tables: true }));
  const system = get.command('system').description('vendor get system views');
  const gha = system.command('ha').description('HA views in the vendor\'s layout');
  daemonCommand<HaStatusResult>(gha, 'status', 'HA status in the vendor\'s get system ha status layout', 'ha.status', formatHaGet);
}
