// The refresh set of the first-packet offload (see src/engine/kernel-cache.ts): for a session
// refreshed by one direction only, a rule of ours updates the connection's ct id in the nft set
// `refresh` on each packet of that direction, with a fixed element timeout. Reading an element
// back gives the time left on it, and so the exact moment of the last refreshing packet.

import {
  NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NLM_F_ACK, NLM_F_REQUEST,
  attrNest, attrStr, encodeNfMessage, parseAttrList, parseAttrs, u64, type NlMessage,
} from './nfnetlink.js';
import { NetlinkChannel, NetlinkError } from './netlink-socket.js';

const NFT_MSG_GETSETELEM = 13;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_EXPIRATION = 5;
const NFTA_DATA_VALUE = 1;
const NFGEN_HDRLEN = 4;
const ENOENT = 2;

export const REFRESH_SET = 'refresh';

/** The GET of one element: the key is the ct id as ctnetlink carries it (CTA_ID, big-endian). */
export function encodeRefreshGet(table: string, ctId: number, seq = 0): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32BE(ctId >>> 0, 0);
  return encodeNfMessage({
    subsys: NFNL_SUBSYS_NFTABLES, msg: NFT_MSG_GETSETELEM, flags: NLM_F_REQUEST | NLM_F_ACK, seq, family: NFPROTO_INET, resId: 0,
    attrs: [
      attrStr(NFTA_SET_ELEM_LIST_TABLE, table),
      attrStr(NFTA_SET_ELEM_LIST_SET, REFRESH_SET),
      attrNest(NFTA_SET_ELEM_LIST_ELEMENTS, [attrNest(NFTA_LIST_ELEM, [attrNest(NFTA_SET_ELEM_KEY, [{ type: NFTA_DATA_VALUE, data: key }])])]),
    ],
  });
}

/** The ms left on the element of a GETSETELEM answer, or undefined when the answer has none. */
export function decodeRefreshExpiration(m: NlMessage): number | undefined {
  if (m.body.length < NFGEN_HDRLEN) return undefined;
  const list = parseAttrs(m.body, NFGEN_HDRLEN).get(NFTA_SET_ELEM_LIST_ELEMENTS);
  if (!list) return undefined;
  for (const e of parseAttrList(list)) {
    if (e.type !== NFTA_LIST_ELEM) continue;
    const exp = u64(parseAttrs(e.data).get(NFTA_SET_ELEM_EXPIRATION));
    if (exp !== undefined) return Number(exp);
  }
  return undefined;
}

export class RefreshSet {
  private channel?: NetlinkChannel;

  constructor(private readonly table: string) {}

  private ch(): NetlinkChannel {
    if (!this.channel) {
      this.channel = new NetlinkChannel(NETLINK_NETFILTER, { receiveBuffer: 1024 * 1024 });
      this.channel.start();
    }
    return this.channel;
  }

  /** Ms left on the connection's element; null when the set holds none. Reads of one job share a sendmsg. */
  async leftMs(ctId: number): Promise<number | null> {
    const ch = this.ch();
    if (!ch.isCorked) {
      ch.cork();
      queueMicrotask(() => ch.uncork());
    }
    try {
      const replies = await ch.request([encodeRefreshGet(this.table, ctId)], { context: `refresh element ${ctId}` });
      for (const m of replies) {
        const left = decodeRefreshExpiration(m);
        if (left !== undefined) return left;
      }
      return null;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENOENT) return null;
      throw e;
    }
  }

  close(): void {
    this.channel?.close();
    this.channel = undefined;
  }
}
