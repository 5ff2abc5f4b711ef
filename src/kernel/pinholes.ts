// Pinholes in the kernel: each expectation is an element of our nft set pinholes4/pinholes6
// (addr . addr . proto . port, see ruleset.ts), with the expectation's timeout, so the expected
// connection is let through (and marked offloaded) by the kernel without waiting for us.
// Elements are added and deleted over nf_tables netlink, one batch per element: a batch is one
// transaction, and a delete that finds the element already expired must not undo the others.

import { parseIPv4, parseIPv6 } from '../packet/address.js';
import {
  NETLINK_NETFILTER, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NFPROTO_UNSPEC,
  NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, attrNest, attrStr, attrU64, encodeNfMessage, type Attr,
} from './nfnetlink.js';
import { NetlinkChannel, NetlinkError } from './netlink-socket.js';

const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_DATA_VALUE = 1;
const ENOENT = 2;

/** What a pinhole lets in: from src to dst:dport over proto (any source port). */
export interface PinholeKey { family: 4 | 6; proto: number; src: string; dst: string; dport: number }

/**
 * The set key as nf_tables stores a concatenation: every field in its own 4-byte register,
 * addresses in network order, the protocol byte and the port (big-endian) zero-padded.
 */
export function pinholeKeyBytes(k: PinholeKey): Buffer {
  const alen = k.family === 4 ? 4 : 16;
  const b = Buffer.alloc(2 * alen + 8);
  const parse = k.family === 4 ? parseIPv4 : parseIPv6;
  if (!parse(k.src, b, 0) || !parse(k.dst, b, alen)) throw new Error(`pinhole: bad IPv${k.family} address in ${k.src} -> ${k.dst}`);
  b[2 * alen] = k.proto & 0xff;
  b.writeUInt16BE(k.dport & 0xffff, 2 * alen + 4);
  return b;
}

export const pinholeSetName = (family: 4 | 6): string => (family === 4 ? 'pinholes4' : 'pinholes6');

/** One element add (timeoutMs > 0 sets its kernel timeout) or delete, framed as its own batch. */
export function encodePinholeBatch(table: string, op: 'add' | 'delete', k: PinholeKey, timeoutMs: number, seq: number): Buffer[] {
  const elem: Attr[] = [attrNest(NFTA_SET_ELEM_KEY, [{ type: NFTA_DATA_VALUE, data: pinholeKeyBytes(k) }])];
  if (op === 'add' && timeoutMs > 0) elem.push(attrU64(NFTA_SET_ELEM_TIMEOUT, BigInt(Math.round(timeoutMs))));
  const batch = (msg: number, s: number) => encodeNfMessage({ subsys: 0, msg, flags: NLM_F_REQUEST, seq: s, family: NFPROTO_UNSPEC, resId: NFNL_SUBSYS_NFTABLES, attrs: [] });
  return [
    batch(NFNL_MSG_BATCH_BEGIN, seq),
    encodeNfMessage({
      subsys: NFNL_SUBSYS_NFTABLES,
      msg: op === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
      flags: NLM_F_REQUEST | NLM_F_ACK | (op === 'add' ? NLM_F_CREATE : 0),
      seq: seq + 1,
      family: NFPROTO_INET,
      resId: 0,
      attrs: [
        attrStr(NFTA_SET_ELEM_LIST_TABLE, table),
        attrStr(NFTA_SET_ELEM_LIST_SET, pinholeSetName(k.family)),
        attrNest(NFTA_SET_ELEM_LIST_ELEMENTS, [attrNest(NFTA_LIST_ELEM, elem)]),
      ],
    }),
    batch(NFNL_MSG_BATCH_END, seq + 2),
  ];
}

export interface PinholeStats { added: number; deleted: number; alreadyGone: number; failed: number }

export class PinholeSet {
  private channel?: NetlinkChannel;
  private seq = 1;
  readonly stats: PinholeStats = { added: 0, deleted: 0, alreadyGone: 0, failed: 0 };

  constructor(private readonly table: string) {}

  private ch(): NetlinkChannel {
    if (!this.channel) {
      this.channel = new NetlinkChannel(NETLINK_NETFILTER, {});
      this.channel.start();
    }
    return this.channel;
  }

  private async send(op: 'add' | 'delete', k: PinholeKey, timeoutMs: number): Promise<boolean> {
    const seq = this.seq;
    this.seq = (this.seq + 3) >>> 0 || 1;
    const msgs = encodePinholeBatch(this.table, op, k, timeoutMs, seq);
    try {
      await this.ch().request(msgs, { ack: false, context: `pinhole ${op} ${k.src} -> ${k.dst}:${k.dport}/${k.proto}` });
      if (op === 'add') this.stats.added++;
      else this.stats.deleted++;
      return true;
    } catch (e) {
      // The kernel expired the element itself (same timeout as ours): nothing left to delete.
      if (op === 'delete' && e instanceof NetlinkError && e.errno === ENOENT) {
        this.stats.alreadyGone++;
        return false;
      }
      this.stats.failed++;
      throw e;
    }
  }

  /** Opens a pinhole; timeoutMs 0 keeps it until deleted. */
  add(k: PinholeKey, timeoutMs: number): Promise<boolean> { return this.send('add', k, timeoutMs); }

  /** Closes a pinhole; false when the kernel had already expired it. */
  delete(k: PinholeKey): Promise<boolean> { return this.send('delete', k, 0); }

  close(): void {
    this.channel?.close();
    this.channel = undefined;
  }
}
