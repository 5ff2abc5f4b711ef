// Which hbdev carries the sync channel: the highest-priority one with an IPv4 address in the same
// subnet as ha-peer-ip. Its address is the one the socket binds (sync datagrams never leave by
// another interface) and keepalived's unicast_src_ip.

import { networkInterfaces } from 'node:os';
import type { HaConfig } from '../config/ha.js';

export interface SyncLink { ifname: string; priority: number; local: string; prefix: number; peer: string; port: number }

export interface InterfaceAddress { address: string; prefix: number }

/** IPv4 addresses of each interface, as the OS reports them (inside the daemon's namespace). */
export function systemAddresses(): Record<string, InterfaceAddress[]> {
  const out: Record<string, InterfaceAddress[]> = {};
  for (const [name, list] of Object.entries(networkInterfaces())) {
    out[name] = (list ?? []).filter((a) => a.family === 'IPv4' && a.cidr).map((a) => ({ address: a.address, prefix: Number(a.cidr!.split('/')[1]) }));
  }
  return out;
}

const v4 = (a: string) => a.split('.').reduce((n, o) => (n * 256) + Number(o), 0);

export function sameSubnet(a: string, b: string, prefix: number): boolean {
  const size = 2 ** (32 - prefix);
  return Math.floor(v4(a) / size) === Math.floor(v4(b) / size);
}

export function selectSyncLink(ha: HaConfig, addrs: Record<string, InterfaceAddress[]>): SyncLink | { error: string } {
  for (const h of ha.hbdev) {
    for (const a of addrs[h.ifname] ?? []) {
      if (a.address !== ha.peerIp && sameSubnet(a.address, ha.peerIp, a.prefix)) {
        return { ifname: h.ifname, priority: h.priority, local: a.address, prefix: a.prefix, peer: ha.peerIp, port: ha.port };
      }
    }
  }
  const names = ha.hbdev.map((h) => `${h.ifname} (${(addrs[h.ifname] ?? []).map((a) => `${a.address}/${a.prefix}`).join(', ') || (h.ifname in addrs ? 'no IPv4 address' : 'not present')})`);
  return { error: `no hbdev has an IPv4 address in the subnet of ha-peer-ip ${ha.peerIp}: ${names.join('; ')}` };
}
