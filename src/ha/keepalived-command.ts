// `nfsessiond ha keepalived-config`: the config's HA block and this node's sync link into
// keepalived.conf text, or an error that says what is missing.

import type { DaemonConfig } from '../config/load.js';
import { keepalivedConfig, parseVip, type Vip } from './keepalived-config.js';
import { selectSyncLink, systemAddresses, type InterfaceAddress } from './sync-link.js';

export function keepalivedConfigText(cfg: DaemonConfig, source: string, vipArgs: string[], addrs: Record<string, InterfaceAddress[]> = systemAddresses()): string {
  if (cfg.ha.mode !== 'a-p') throw new Error(`${source}: config system ha is not in mode a-p: there is nothing for keepalived to do`);
  const vips: Vip[] = [];
  for (const a of vipArgs) {
    const v = parseVip(a);
    if ('error' in v) throw new Error(v.error);
    vips.push(v);
  }
  const link = selectSyncLink(cfg.ha, addrs);
  if ('error' in link) throw new Error(`${source}: ${link.error} (run this on the node itself, with the sync link configured)`);
  return keepalivedConfig(cfg.ha, link, vips, source);
}
