// keepalived.conf from `config system ha`, so the operator never keeps two files in step by hand.
// keepalived runs VRRP on the sync link (unicast to the peer) and holds the VIPs; nfsessiond
// follows its state through the notify FIFO and holds it back through the track file (roles.ts).
//
// VRRP's own authentication is left out on purpose: PASS sends the password in clear and RFC 5798
// dropped authentication from VRRP; the adverts stay on the dedicated sync link, and what must
// not be forged (the table) travels on the sealed sync channel.

import type { HaConfig } from '../config/ha.js';
import { isIPv4 } from '../config/ha.js';
import type { SyncLink } from './sync-link.js';

export interface Vip { address: string; prefix: number; ifname: string }

/** The track_file's name in keepalived.conf and the weight that turns a 1 into FAULT (< -253). */
export const TRACK_NAME = 'nfsessiond_sync';
export const TRACK_WEIGHT = -254;

/** `--vip ADDR/LEN@IFNAME`. */
export function parseVip(text: string): Vip | { error: string } {
  const m = /^([0-9.]+)\/(\d{1,2})@([A-Za-z0-9_.:@-]{1,15})$/.exec(text);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32) return { error: `--vip ${text}: expected ADDR/LEN@IFNAME with an IPv4 address, e.g. 198.51.100.254/24@eth1` };
  return { address: m[1], prefix: Number(m[2]), ifname: m[3] };
}

export function keepalivedConfig(ha: HaConfig, link: SyncLink, vips: Vip[], source: string): string {
  const lines: string[] = [
    `# keepalived.conf for the nfsessiond HA group "${ha.groupName}", written by \`nfsessiond ha keepalived-config\``,
    `# from ${source}: write it again after changing \`config system ha\`. Same file on both nodes except`,
    '# priority, unicast_src_ip and unicast_peer, which come from each node\'s own config.',
    '# No VRRP authentication: VRRP\'s is weak (RFC 5798 removed it). The adverts stay on the sync',
    '# link; the session table travels on the sync channel, sealed with `password`.',
    'global_defs {',
    `    vrrp_notify_fifo ${ha.notifyFifo}`,
    '}',
    '',
    '# nfsessiond writes 1 until its first bulk sync from the peer is complete, then 0:',
    `# 1 x ${TRACK_WEIGHT} is below -253, which keeps the instance in FAULT (never master).`,
    `track_file ${TRACK_NAME} {`,
    `    file "${ha.trackFile}"`,
    // Not written yet (nfsessiond not started): held back.
    '    init_file 1',
    '}',
    '',
    `vrrp_instance ${ha.groupName} {`,
    '    state BACKUP',
    `    interface ${link.ifname}`,
    `    virtual_router_id ${ha.groupId + 1}`,
    `    priority ${ha.priority}`,
    '    advert_int 1',
  ];
  if (!ha.override) lines.push('    # override disable: a returning node with a higher priority stays backup', '    nopreempt');
  lines.push(
    `    unicast_src_ip ${link.local}`,
    '    unicast_peer {',
    `        ${link.peer}`,
    '    }',
  );
  if (vips.length) {
    lines.push('    virtual_ipaddress {', ...vips.map((v) => `        ${v.address}/${v.prefix} dev ${v.ifname}`), '    }');
    // A VIP's link going down must move the role, though the adverts on the sync link still flow.
    lines.push('    track_interface {', ...[...new Set(vips.map((v) => v.ifname))].map((i) => `        ${i}`), '    }');
  } else {
    lines.push('    # no --vip given: add virtual_ipaddress { ADDR/LEN dev IFNAME } here');
  }
  lines.push(
    '    track_file {',
    `        ${TRACK_NAME} weight ${TRACK_WEIGHT}`,
    '    }',
    '}',
  );
  return `${lines.join('\n')}\n`;
}
