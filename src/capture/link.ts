// Link layers of the captures we read: where the IP packet starts. Ethernet (with 802.1Q / QinQ
// tags), Linux cooked v1 and v2 ("any" interface), raw IP, and BSD loopback (DLT_NULL, in the
// byte order of the host that wrote it, and DLT_LOOP, big-endian).

import {
  LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
} from './pcap.js';

/** Result of l3Start, reused (not re-entrant). */
export interface L3 {
  /** 4, 6, or 0 when the frame carries no IP packet. */
  family: 0 | 4 | 6;
  offset: number;
  length: number;
  /** Linux cooked v2: the interface index; cooked v1/v2: the packet type (0 to us, 4 outgoing...). -1 when unknown. */
  ifIndex: number;
  pktType: number;
  /** EtherType (or 0). */
  etherType: number;
}

const out: L3 = { family: 0, offset: 0, length: 0, ifIndex: -1, pktType: -1, etherType: 0 };

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;

function byEtherType(t: number): 0 | 4 | 6 {
  return t === ETH_IPV4 ? 4 : t === ETH_IPV6 ? 6 : 0;
}

/** BSD address families that mean IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30) or Linux 10. */
function nullFamily(af: number): 0 | 4 | 6 {
  if (af === 2) return 4;
  if (af === 24 || af === 28 || af === 30 || af === 10) return 6;
  return 0;
}

/** Locates the IP packet in a frame of the given link type. The result object is reused. */
export function l3Start(linkType: number, b: Uint8Array, off: number, len: number): L3 {
  const r = out;
  r.family = 0;
  r.ifIndex = -1;
  r.pktType = -1;
  r.etherType = 0;
  const end = off + len;
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      if (len < 14) return r;
      let p = off + 12;
      let t = (b[p] << 8) | b[p + 1];
      // 802.1Q, 802.1ad and the old QinQ type: skip the tags.
      while ((t === 0x8100 || t === 0x88a8 || t === 0x9100) && p + 6 <= end) {
        p += 4;
        t = (b[p] << 8) | b[p + 1];
      }
      r.etherType = t;
      r.family = byEtherType(t);
      r.offset = p + 2;
      break;
    }
    case LINKTYPE_LINUX_SLL: {
      if (len < 16) return r;
      r.pktType = (b[off] << 8) | b[off + 1];
      const t = (b[off + 14] << 8) | b[off + 15];
      r.etherType = t;
      r.family = byEtherType(t);
      r.offset = off + 16;
      break;
    }
    case LINKTYPE_LINUX_SLL2: {
      if (len < 20) return r;
      const t = (b[off] << 8) | b[off + 1];
      r.etherType = t;
      r.ifIndex = ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0;
      r.pktType = b[off + 10];
      r.family = byEtherType(t);
      r.offset = off + 20;
      break;
    }
    case LINKTYPE_RAW:
    case 12: // DLT_RAW on OpenBSD
    case 14: // DLT_RAW on BSD/OS
    case LINKTYPE_IPV4:
    case LINKTYPE_IPV6: {
      if (len < 1) return r;
      const v = b[off] >> 4;
      r.family = v === 4 ? 4 : v === 6 ? 6 : 0;
      r.offset = off;
      break;
    }
    case LINKTYPE_NULL: {
      if (len < 4) return r;
      // Host byte order of the writer: a small number sits in the first or the last byte.
      const le = b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24);
      const be = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
      r.family = nullFamily((le >>> 0) < 256 ? le : be);
      r.offset = off + 4;
      break;
    }
    case LINKTYPE_LOOP: {
      if (len < 4) return r;
      r.family = nullFamily(((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0);
      r.offset = off + 4;
      break;
    }
    default:
      return r;
  }
  r.length = end - r.offset;
  if (r.length <= 0) r.family = 0;
  return r;
}

export const LINK_NAMES: Record<number, string> = {
  [LINKTYPE_NULL]: 'null', [LINKTYPE_ETHERNET]: 'ethernet', [LINKTYPE_RAW]: 'raw', 12: 'raw', 14: 'raw',
  [LINKTYPE_LOOP]: 'loop', [LINKTYPE_LINUX_SLL]: 'linux-sll', [LINKTYPE_LINUX_SLL2]: 'linux-sll2',
  [LINKTYPE_IPV4]: 'ipv4', [LINKTYPE_IPV6]: 'ipv6',
};

export function linkSupported(linkType: number): boolean {
  return linkType in LINK_NAMES;
}
