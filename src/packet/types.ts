// What the engine needs to know about one L3 packet. Addresses are kept as canonical text
// (dotted quad, RFC 5952 IPv6) because they are session-table keys and appear in every view.

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** The five fields that identify one direction of a flow. For ICMP, sport is the echo id and dport is 0 (see decode). */
export interface FlowTuple {
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** Which way a packet travels in its flow: as the first packet did, or back. */
export type Direction = 'org' | 'reply';

export interface DecodedPacket {
  ok: true;
  tuple: FlowTuple;
  /** Length of the whole L3 packet in bytes (what conntrack counts). */
  length: number;
  /** TCP flag byte (0 for other protocols). */
  tcpFlags: number;
  /** TCP sequence number (TCP only): session helpers reassemble the control stream with it. */
  tcpSeq?: number;
  /** ICMP/ICMPv6 type and code, -1 when not ICMP. */
  icmpType: number;
  icmpCode: number;
  /** For an ICMP error: the tuple of the packet it quotes, as that packet travelled. */
  quoted?: FlowTuple;
  /** Offset and length of the L4 payload (after the TCP/UDP/SCTP header) within the buffer. */
  payloadOffset: number;
  payloadLength: number;
  /** A non-first IP fragment carries no L4 header: ports are 0 and the engine treats it specially. */
  fragment: boolean;
}

export interface MalformedPacket {
  ok: false;
  /** Short stable reason, used as a counter label: 'truncated-ipv4', 'bad-ihl', 'truncated-tcp', ... */
  reason: string;
}

export type PacketResult = DecodedPacket | MalformedPacket;
