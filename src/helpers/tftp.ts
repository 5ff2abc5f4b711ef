// TFTP (RFC 1350, options RFC 2347): the server answers an RRQ or WRQ from a new port of its own
// (its transfer identifier), so the reply is a new UDP flow server:any -> client:port. As
// nf_conntrack_tftp.c does, a read or write request from the client expects exactly that flow.
//
//   client → server:69   | 01 RRQ / 02 WRQ | filename NUL | mode NUL | [option NUL value NUL]* |
//   server:new → client  DATA / ACK 0 / OACK / ERROR   (the expected connection)

import { IPPROTO_UDP, type Direction } from '../packet/types.js';
import type { ControlView, HelperResult, SessionHelper } from './types.js';

const OP_RRQ = 1;
const OP_WRQ = 2;
/** Request size bound: RFC 1350 requests fit a 512-byte block; option-laden ones stay far below this. */
const MAX_REQUEST = 1500;

/** Requests seen (plain data, for views and snapshots). */
export interface TftpState { requests: number; malformed: number }

/** Splits a request body into its NUL-terminated strings, or undefined when one is unterminated. */
function cStrings(b: Buffer, from: number): string[] | undefined {
  const out: string[] = [];
  let i = from;
  while (i < b.length) {
    const z = b.indexOf(0, i);
    if (z < 0) return undefined;
    out.push(b.toString('latin1', i, z));
    i = z + 1;
  }
  return out;
}

/** Why a request is not one (undefined when it is well formed). */
export function tftpRequestProblem(b: Buffer): string | undefined {
  if (b.length < 2) return 'shorter than an opcode';
  const op = b.readUInt16BE(0);
  if (op !== OP_RRQ && op !== OP_WRQ) return `opcode ${op} is not RRQ or WRQ`;
  if (b.length > MAX_REQUEST) return `request of ${b.length} bytes`;
  const parts = cStrings(b, 2);
  if (!parts) return 'filename, mode or option not NUL-terminated';
  if (parts.length < 2) return 'no mode';
  const [file, mode] = parts;
  if (!file.length) return 'empty filename';
  if (!/^[A-Za-z]{1,16}$/.test(mode)) return `mode ${JSON.stringify(mode.slice(0, 20))}`;
  // Options come in name/value pairs (RFC 2347); some clients pad with one trailing empty string.
  const opts = parts.slice(2);
  if (opts.length % 2 === 1 && opts[opts.length - 1] !== '') return 'option without a value';
  return undefined;
}

export const tftpHelper: SessionHelper<TftpState> = {
  name: 'tftp',
  init: () => ({ requests: 0, malformed: 0 }),
  data(st: TftpState, dir: Direction, bytes: Buffer, ctl: ControlView): HelperResult | undefined {
    // Only the client's requests to the server port open anything; replies on the control tuple
    // (an ERROR from port 69 itself) and anything the server sends are not requests.
    if (dir !== 'org' || bytes.length < 2) return undefined;
    const op = bytes.readUInt16BE(0);
    if (op !== OP_RRQ && op !== OP_WRQ) return undefined;
    const problem = tftpRequestProblem(bytes);
    if (problem) {
      st.malformed++;
      return { refuse: [{ reason: 'malformed', detail: `TFTP ${op === OP_RRQ ? 'RRQ' : 'WRQ'}: ${problem}` }] };
    }
    st.requests++;
    return {
      expect: [{ kind: 'tftp-data', proto: IPPROTO_UDP, src: ctl.orig.dst, sport: 0, dst: ctl.orig.src, dport: ctl.orig.sport }],
    };
  },
};
