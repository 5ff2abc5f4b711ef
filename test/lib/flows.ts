// Real packets for engine and helper tests: a TCP conversation that keeps sequence numbers per
// side (so helpers' stream reassembly sees what a kernel would queue), and UDP datagrams. Every
// packet is built with src/packet/build.ts and decoded with the daemon's decoder.

import type { SessionEngine } from '../../src/engine/engine.js';
import type { Decision, Packet } from '../../src/engine/types.js';
import { buildTcp, buildUdp } from '../../src/packet/build.js';
import { decode } from '../../src/packet/decode.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../src/packet/types.js';

export const CLIENT_IF = 2;
export const SERVER_IF = 3;

/** A decoded packet as the datapath hands it to the engine (client side enters on CLIENT_IF). */
export function packetOf(data: Buffer, fromClient = true): Packet {
  return { indev: fromClient ? CLIENT_IF : SERVER_IF, outdev: fromClient ? SERVER_IF : CLIENT_IF, mark: 0, decoded: decode(data), data };
}

export interface Endpoint { addr: string; port: number }

export class TcpConversation {
  private seq = { client: 1000, server: 50000 };

  constructor(private readonly engine: SessionEngine, readonly client: Endpoint, readonly server: Endpoint) {
  }

  private build(from: 'client' | 'server', flags: number, payload: Buffer, seq?: number): Buffer {
    const [a, b] = from === 'client' ? [this.client, this.server] : [this.server, this.client];
    const other = from === 'client' ? 'server' : 'client';
    return buildTcp({
      src: a.addr, dst: b.addr, sport: a.port, dport: b.port, flags,
      seq: seq ?? this.seq[from], ack: this.seq[other], payload,
    });
  }

  /** The three-way handshake; returns the decision on the SYN. */
  open(now: number): Decision {
    const d = this.engine.handlePacket(packetOf(this.build('client', TCP_SYN, Buffer.alloc(0))), now);
    this.seq.client++;
    this.engine.handlePacket(packetOf(this.build('server', TCP_SYN | TCP_ACK, Buffer.alloc(0)), false), now);
    this.seq.server++;
    this.engine.handlePacket(packetOf(this.build('client', TCP_ACK, Buffer.alloc(0))), now);
    return d;
  }

  /** Sends payload in order (advancing the sequence number). */
  send(from: 'client' | 'server', payload: string | Buffer, now: number): Decision {
    const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
    const d = this.engine.handlePacket(packetOf(this.build(from, TCP_ACK | TCP_PSH, data), from === 'client'), now);
    this.seq[from] = (this.seq[from] + data.length) >>> 0;
    return d;
  }

  /** A segment at an explicit offset from the current sequence number (out of order, retransmission), without advancing it. */
  sendAt(from: 'client' | 'server', offset: number, payload: string | Buffer, now: number): Decision {
    const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
    return this.engine.handlePacket(packetOf(this.build(from, TCP_ACK | TCP_PSH, data, (this.seq[from] + offset) >>> 0), from === 'client'), now);
  }

  /** Moves the sequence number on as if `n` bytes had been sent (after sendAt pieces). */
  advance(from: 'client' | 'server', n: number): void { this.seq[from] = (this.seq[from] + n) >>> 0; }

  close(now: number): void {
    this.engine.handlePacket(packetOf(this.build('client', TCP_FIN | TCP_ACK, Buffer.alloc(0))), now);
    this.seq.client++;
    this.engine.handlePacket(packetOf(this.build('server', TCP_FIN | TCP_ACK, Buffer.alloc(0)), false), now);
    this.seq.server++;
    this.engine.handlePacket(packetOf(this.build('client', TCP_ACK, Buffer.alloc(0))), now);
  }
}

/** One UDP datagram from a to b. */
export function udp(engine: SessionEngine, a: Endpoint, b: Endpoint, payload: string | Buffer, now: number, fromClient = true): Decision {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  return engine.handlePacket(packetOf(buildUdp({ src: a.addr, dst: b.addr, sport: a.port, dport: b.port, payload: data }), fromClient), now);
}

/** A TCP SYN from a to b (the first packet of an expected connection). */
export function tcpSyn(engine: SessionEngine, a: Endpoint, b: Endpoint, now: number, fromClient = true): Decision {
  return engine.handlePacket(packetOf(buildTcp({ src: a.addr, dst: b.addr, sport: a.port, dport: b.port, flags: TCP_SYN, seq: 7 }), fromClient), now);
}
