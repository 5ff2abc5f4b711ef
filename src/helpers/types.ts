// The contract between the engine and a session helper (ALG). A helper is one small parser, in
// the manner of the kernel's nf_conntrack_ftp.c: it reads the control channel of its session and
// returns what it wants opened (expectations) or refused. It owns no timers, tables or I/O; the
// engine keeps expectations, limits, pinholes and child sessions (src/engine/expectations.ts).

import type { Direction, FlowTuple } from '../packet/types.js';

/** A connection read from the control channel that the firewall should let through. */
export interface ExpectRequest {
  /** Class, for views, metrics and limits: 'ftp-data', 'tftp-data', 'rtp', 'rtcp', 'dcerpc', 'rpc'. */
  kind: string;
  proto: number;
  /** Address the expected connection comes from. */
  src: string;
  /** Its source port, 0 for any (the usual case: only the destination is negotiated). */
  sport: number;
  dst: string;
  dport: number;
  /**
   * Lifetime in seconds if no matching traffic arrives. 0: no strict timeout, the expectation
   * lives as long as its parent (shown with a negative expire). Omitted: the configured default.
   */
  timeout?: number;
  /** A helper the child session gets (e.g. a SunRPC service that is itself a control channel). */
  childHelper?: string;
  /** The helper's handle to end it early with `release` (e.g. a SIP Call-ID). */
  tag?: string;
}

/** A request the helper saw but will not turn into an expectation, and why. */
export interface Refusal {
  /** Stable counter label: 'ftp-bounce', 'ftp-third-party', 'sip-media-peer', 'malformed', ... */
  reason: string;
  detail: string;
}

export interface HelperResult {
  expect?: ExpectRequest[];
  refuse?: Refusal[];
  /** Tags whose expectations end now (SIP BYE/CANCEL end a call's media expectations). */
  release?: string[];
}

/** What a helper may know about its control session. */
export interface ControlView {
  /** The control session's original tuple (client → server as first seen). */
  orig: FlowTuple;
  /** The tuple its replies travel with. */
  reply: FlowTuple;
}

/** Operator choices that loosen a helper's checks (config system session-helper-options). */
export interface HelperOptions {
  /** FTP: accept PORT/EPRT/227 addresses other than the sender's own (kernel `loose=1`). */
  ftpThirdParty: boolean;
  /** SIP: let SDP open media towards hosts other than the signalling peers (kernel sip_direct_media=0). */
  sipMediaAnyPeer: boolean;
}

export const DEFAULT_HELPER_OPTIONS: HelperOptions = { ftpThirdParty: false, sipMediaAnyPeer: false };

/**
 * One helper. `data` gets, for a TCP control session, the stream bytes of one direction in order
 * (reassembled across segments, retransmissions removed; possibly split anywhere), and for UDP
 * one datagram's payload per call. It must never throw: hostile input yields nothing or a refusal.
 * State must be plain data (JSON-serialisable, Buffers allowed) so the table can be snapshotted.
 */
export interface SessionHelper<S = unknown> {
  readonly name: string;
  init(ctl: ControlView): S;
  data(state: S, dir: Direction, bytes: Buffer, ctl: ControlView, opts: HelperOptions): HelperResult | undefined;
}
