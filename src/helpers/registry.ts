// Which helper runs on which port: `config system session-helper` entries (vendor: "binds a
// session helper to a TCP or UDP port and protocol"), resolved to the helper modules here.

import { ftpHelper } from './ftp.js';
import { sipHelper } from './sip.js';
import { tftpHelper } from './tftp.js';
import { sunrpcHelper } from './sunrpc.js';
import { dcerpcHelper } from './dcerpc.js';
import type { SessionHelper } from './types.js';

/** Helpers with a parser. Names of the vendor's list without one are accepted in the config but open nothing. */
export const HELPERS: Record<string, SessionHelper<any>> = {
  ftp: ftpHelper,
  sip: sipHelper,
  tftp: tftpHelper,
  pmap: sunrpcHelper,
  dcerpc: dcerpcHelper,
};

/** Every name the vendor's `set name` accepts. */
export const HELPER_NAMES = [
  'ftp', 'tftp', 'ras', 'h323', 'tns', 'mms', 'sip', 'pptp', 'rtsp', 'dns-udp', 'dns-tcp', 'pmap', 'rsh', 'dcerpc', 'mgcp',
] as const;

export interface HelperBinding { id: number; name: string; proto: number; port: number }

/** The vendor's default list (FortiOS 6.0 `get system session-helper-info list`), plus SIP over TCP. */
export const DEFAULT_HELPER_BINDINGS: HelperBinding[] = [
  ['pptp', 6, 1723], ['h323', 6, 1720], ['ras', 17, 1719], ['tns', 6, 1521], ['tftp', 17, 69],
  ['rtsp', 6, 554], ['rtsp', 6, 7070], ['rtsp', 6, 8554], ['ftp', 6, 21], ['mms', 6, 1863],
  ['pmap', 6, 111], ['pmap', 17, 111], ['sip', 17, 5060], ['dns-udp', 17, 53], ['rsh', 6, 514],
  ['rsh', 6, 512], ['dcerpc', 6, 135], ['dcerpc', 17, 135], ['mgcp', 17, 2427], ['mgcp', 17, 2727],
  ['sip', 6, 5060],
].map(([name, proto, port], i) => ({ id: i + 1, name: name as string, proto: proto as number, port: port as number }));

/** proto/port → helper, for the engine's lookup on each new session. */
export class HelperTable {
  private readonly byPort = new Map<number, SessionHelper<any>>();
  constructor(readonly bindings: readonly HelperBinding[]) {
    for (const b of bindings) {
      const h = HELPERS[b.name];
      // The first entry for a port wins, as entries are evaluated in id order.
      if (h && !this.byPort.has(b.proto * 65536 + b.port)) this.byPort.set(b.proto * 65536 + b.port, h);
    }
  }
  lookup(proto: number, dport: number): SessionHelper<any> | undefined {
    return this.byPort.get(proto * 65536 + dport);
  }
  byName(name: string): SessionHelper<any> | undefined { return HELPERS[name]; }
}
