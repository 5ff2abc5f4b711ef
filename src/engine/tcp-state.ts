// TCP tracking per endpoint, printed as the two proto_state digits (original side, reply side)
// with the vendor's codes: 0 NONE, 1 ESTABLISHED, 2 SYN_SENT, 3 SYN & SYN/ACK, 4 FIN_WAIT,
// 5 TIME_WAIT, 6 CLOSE, 7 CLOSE_WAIT, 8 LAST_ACK. Sequence windows are the kernel's job
// (conntrack still tracks them); this machine only needs the phases that pick the timer.

import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/types.js';
import { TcpCode, type Direction } from './types.js';

export type TcpPhase = 'opening' | 'established' | 'closing' | 'time-wait' | 'closed';

/** State of a session created by this packet, or undefined if it may not create one (no SYN). */
export function tcpInitial(flags: number): [number, number] | undefined {
  if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) !== TCP_SYN) return undefined;
  return [TcpCode.SYN_SENT, TcpCode.NONE];
}

/** Advances the endpoint states for a packet sent from `dir`. Mutates and returns `st`. */
export function tcpAdvance(st: [number, number], dir: Direction, flags: number): [number, number] {
  const me = dir === 'org' ? 0 : 1;
  const peer = 1 - me;
  if (flags & TCP_RST) {
    st[0] = TcpCode.CLOSE;
    st[1] = TcpCode.CLOSE;
    return st;
  }
  if (flags & TCP_SYN) {
    // SYN/ACK from the reply side answers the opening SYN; a bare SYN retransmission changes nothing.
    if (me === 1 && flags & TCP_ACK && st[0] === TcpCode.SYN_SENT) st[1] = TcpCode.SYN_RECV;
    return st;
  }
  if (flags & TCP_FIN) {
    if (st[me] === TcpCode.CLOSE_WAIT) st[me] = TcpCode.LAST_ACK;
    else if (st[me] === TcpCode.ESTABLISHED || st[me] === TcpCode.SYN_SENT || st[me] === TcpCode.SYN_RECV) {
      st[me] = TcpCode.FIN_WAIT;
      if (st[peer] === TcpCode.ESTABLISHED) st[peer] = TcpCode.CLOSE_WAIT;
    }
    return st;
  }
  if (flags & TCP_ACK) {
    if (me === 0 && st[0] === TcpCode.SYN_SENT && st[1] === TcpCode.SYN_RECV) {
      st[0] = TcpCode.ESTABLISHED;
      st[1] = TcpCode.ESTABLISHED;
    } else if (st[peer] === TcpCode.LAST_ACK && st[me] === TcpCode.FIN_WAIT) {
      // The last ACK of the close: the side that closed first waits, the other is done.
      st[me] = TcpCode.TIME_WAIT;
      st[peer] = TcpCode.CLOSE;
    }
  }
  return st;
}

export function tcpPhase(st: [number, number]): TcpPhase {
  const [a, b] = st;
  if (a === TcpCode.CLOSE && b === TcpCode.CLOSE) return 'closed';
  if (a === TcpCode.TIME_WAIT || b === TcpCode.TIME_WAIT) return 'time-wait';
  if (a === TcpCode.ESTABLISHED && b === TcpCode.ESTABLISHED) return 'established';
  if (a === TcpCode.SYN_SENT || a === TcpCode.SYN_RECV || b === TcpCode.SYN_RECV || b === TcpCode.NONE) return 'opening';
  return 'closing';
}

// Linux enum tcp_conntrack (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
const KERNEL_TO_CODES: Record<number, [number, number]> = {
  1: [TcpCode.SYN_SENT, TcpCode.NONE], // SYN_SENT
  2: [TcpCode.SYN_SENT, TcpCode.SYN_RECV], // SYN_RECV
  3: [TcpCode.ESTABLISHED, TcpCode.ESTABLISHED], // ESTABLISHED
  4: [TcpCode.FIN_WAIT, TcpCode.CLOSE_WAIT], // FIN_WAIT
  5: [TcpCode.FIN_WAIT, TcpCode.CLOSE_WAIT], // CLOSE_WAIT
  6: [TcpCode.FIN_WAIT, TcpCode.LAST_ACK], // LAST_ACK
  7: [TcpCode.TIME_WAIT, TcpCode.CLOSE], // TIME_WAIT
  8: [TcpCode.CLOSE, TcpCode.CLOSE], // CLOSE
  9: [TcpCode.SYN_SENT, TcpCode.NONE], // SYN_SENT2 (simultaneous open)
};

/** Endpoint states for a kernel conntrack TCP state, used while the session is offloaded. */
export function tcpFromKernel(state: number): [number, number] | undefined {
  const s = KERNEL_TO_CODES[state];
  return s ? [s[0], s[1]] : undefined;
}
