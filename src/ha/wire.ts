// The sync channel's datagrams: a plaintext header, then the body sealed with ChaCha20-Poly1305.
// The header is the AEAD's additional data, so a changed header fails like a changed body.
//
//   offset  size  field
//        0     4  magic "NFHA"
//        4     1  version (2)
//        5     1  type (MessageType)
//        6     2  reserved, 0
//        8     8  sender boot id: random per daemon start
//       16     8  message counter: 1, 2, 3 ... per boot id, never reused
//       24     n  body ciphertext: DATA in binary (record-codec.ts), every other type UTF-8 JSON
//                  (Buffers as {"$buffer": base64})
//     24+n    16  Poly1305 tag
//
// Keys: HKDF-SHA256 over the configured password, salt "nfsessiond-ha-v1" + group name, info
// "sync " + the sender's boot id, 32 bytes. Each sender seals with its own key, so two nodes (or
// two boots of one node) never share a key and nonce; the nonce is 4 zero bytes and the counter.
// A peer with another password or group fails to open every message: it is refused and counted.

import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { decodeJson, encodeJson } from '../state/snapshot.js';
import type { DataBody } from './channel.js';
import { decodeDataBody, encodeDataBody } from './record-codec.js';

export const MAGIC = 0x4e464841; // "NFHA"
/** 2: DATA bodies in binary (version 1 had them in JSON). */
export const VERSION = 2;
export const HEADER_BYTES = 24;
export const TAG_BYTES = 16;

export const enum MessageType {
  /** A batch of table changes with its sequence number. */
  DATA = 1,
  /** Everything up to a sequence number arrived. */
  ACK = 2,
  /** A gap: send this range again. */
  NACK = 3,
  /** A node (re)starts: the peer forgets its old window and offers a bulk transfer. */
  HELLO = 4,
  /** Send the whole table. */
  BULK_REQUEST = 5,
  /** The bulk transfer is complete (its last DATA sequence). */
  BULK_END = 6,
  /** Nothing to send: still here (carries the last sequence sent). */
  ALIVE = 7,
}

export interface Frame {
  type: MessageType;
  /** Sender's boot id, 16 hex digits. */
  boot: string;
  counter: bigint;
  body: unknown;
}

export type OpenResult =
  | { ok: true; frame: Frame }
  | { ok: false; reason: 'short' | 'magic' | 'version' | 'auth' | 'body' };

/** Derives a sender's key; cached by the caller (one per boot id seen). */
export function senderKey(password: string, group: string, boot: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(password, 'utf8'), Buffer.from(`nfsessiond-ha-v1${group}`, 'utf8'), Buffer.from(`sync ${boot}`, 'utf8'), 32));
}

function nonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(counter, 4);
  return n;
}

export function seal(key: Buffer, f: Frame): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(MAGIC, 0);
  header[4] = VERSION;
  header[5] = f.type;
  header.write(f.boot, 8, 8, 'hex');
  header.writeBigUInt64BE(f.counter, 16);
  const c = createCipheriv('chacha20-poly1305', key, nonce(f.counter), { authTagLength: TAG_BYTES });
  const plain = f.type === MessageType.DATA ? encodeDataBody(f.body as DataBody) : Buffer.from(encodeJson(f.body), 'utf8');
  c.setAAD(header, { plaintextLength: plain.length });
  const body = c.update(plain);
  c.final();
  return Buffer.concat([header, body, c.getAuthTag()]);
}

/** The sender's boot id in a datagram's header, before it is opened (to pick the key). */
export function peekBoot(d: Buffer): string | undefined {
  return d.length >= HEADER_BYTES + TAG_BYTES && d.readUInt32BE(0) === MAGIC ? d.toString('hex', 8, 16) : undefined;
}

export function open(key: Buffer, d: Buffer): OpenResult {
  if (d.length < HEADER_BYTES + TAG_BYTES) return { ok: false, reason: 'short' };
  if (d.readUInt32BE(0) !== MAGIC) return { ok: false, reason: 'magic' };
  if (d[4] !== VERSION) return { ok: false, reason: 'version' };
  const header = d.subarray(0, HEADER_BYTES);
  const counter = d.readBigUInt64BE(16);
  const dc = createDecipheriv('chacha20-poly1305', key, nonce(counter), { authTagLength: TAG_BYTES });
  dc.setAAD(header, { plaintextLength: d.length - HEADER_BYTES - TAG_BYTES });
  dc.setAuthTag(d.subarray(d.length - TAG_BYTES));
  let plain: Buffer;
  try {
    plain = Buffer.concat([dc.update(d.subarray(HEADER_BYTES, d.length - TAG_BYTES)), dc.final()]);
  } catch {
    return { ok: false, reason: 'auth' };
  }
  let body: unknown;
  try {
    body = d[5] === MessageType.DATA ? decodeDataBody(plain) : decodeJson(plain.toString('utf8'));
  } catch {
    return { ok: false, reason: 'body' };
  }
  return { ok: true, frame: { type: d[5] as MessageType, boot: d.toString('hex', 8, 16), counter, body } };
}

/**
 * Message counters seen from one sender boot: a message whose counter was seen, or is older than
 * the window, is a replay (or a duplicate) and is dropped.
 */
export class ReplayWindow {
  private top = 0n;
  /** Bit i set: counter top - i was seen. */
  private bits = 0n;

  constructor(private readonly size = 1024n) {}

  /** True (and recorded) when the counter is new. */
  accept(counter: bigint): boolean {
    if (counter <= 0n) return false;
    if (counter > this.top) {
      const shift = counter - this.top;
      this.bits = shift >= this.size ? 1n : ((this.bits << shift) | 1n) & ((1n << this.size) - 1n);
      this.top = counter;
      return true;
    }
    const back = this.top - counter;
    if (back >= this.size) return false;
    const bit = 1n << back;
    if (this.bits & bit) return false;
    this.bits |= bit;
    return true;
  }
}
