// Byte-exact connection-oriented DCE/RPC PDUs (C706 chapter 12.6) for the dcerpc helper tests:
// bind, bind_ack, bind_nak, request, response, fault, and ept_map stubs and towers.

export const EPM = 'e1af8308-5d1f-11c9-91a4-08002b14a0fa';
export const NDR32 = '8a885d04-1ceb-11c9-9fe8-08002b104860';
export const NDR64 = '71710533-beba-4937-8319-b5dbef9ccc36';
/** Some interface the client asks the endpoint mapper about. */
export const SVC = '12345778-1234-abcd-ef00-0123456789ac';

export function uuidBytes(uuid: string, le = true): Buffer {
  const h = uuid.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  if (le) {
    b.subarray(0, 4).reverse();
    b.subarray(4, 6).reverse();
    b.subarray(6, 8).reverse();
  }
  return b;
}

const u16 = (v: number, le: boolean) => { const b = Buffer.alloc(2); if (le) b.writeUInt16LE(v); else b.writeUInt16BE(v); return b; };
const u32 = (v: number, le: boolean) => { const b = Buffer.alloc(4); if (le) b.writeUInt32LE(v >>> 0); else b.writeUInt32BE(v >>> 0); return b; };
const syntax = (uuid: string, ver: number, le: boolean) => Buffer.concat([uuidBytes(uuid, le), u32(ver, le)]);

export interface PduOpts { le?: boolean; flags?: number; authLength?: number }

export function pdu(type: number, callId: number, body: Buffer, o: PduOpts = {}): Buffer {
  const le = o.le ?? true;
  const h = Buffer.alloc(16);
  h[0] = 5; h[1] = 0; h[2] = type; h[3] = o.flags ?? 0x03;
  h[4] = le ? 0x10 : 0x00;
  const len = 16 + body.length;
  if (le) { h.writeUInt16LE(len, 8); h.writeUInt16LE(o.authLength ?? 0, 10); h.writeUInt32LE(callId, 12); }
  else { h.writeUInt16BE(len, 8); h.writeUInt16BE(o.authLength ?? 0, 10); h.writeUInt32BE(callId, 12); }
  return Buffer.concat([h, body]);
}

export interface Ctx { id: number; uuid: string; ver: number; syntaxes?: string[] }

export function bind(callId: number, ctxs: Ctx[], o: PduOpts & { alter?: boolean } = {}): Buffer {
  const le = o.le ?? true;
  const parts = [u16(4280, le), u16(4280, le), u32(0, le), Buffer.from([ctxs.length, 0, 0, 0])];
  for (const c of ctxs) {
    const syn = c.syntaxes ?? [NDR32];
    parts.push(u16(c.id, le), Buffer.from([syn.length, 0]), syntax(c.uuid, c.ver, le));
    for (const s of syn) parts.push(syntax(s, s === NDR32 ? 2 : 1, le));
  }
  return pdu(o.alter ? 14 : 11, callId, Buffer.concat(parts), o);
}

export function bindAck(callId: number, results: Array<{ result: number; syntax?: string }>, o: PduOpts & { alter?: boolean; secAddr?: string } = {}): Buffer {
  const le = o.le ?? true;
  const sec = o.secAddr ?? '135\0';
  const head = Buffer.concat([u16(4280, le), u16(4280, le), u32(0x1234, le), u16(sec.length, le), Buffer.from(sec, 'latin1')]);
  const pad = Buffer.alloc((4 - ((16 + head.length) % 4)) % 4);
  const parts = [head, pad, Buffer.from([results.length, 0, 0, 0])];
  for (const r of results) {
    const s = r.syntax ?? (r.result === 0 ? NDR32 : '00000000-0000-0000-0000-000000000000');
    parts.push(u16(r.result, le), u16(r.result === 0 ? 0 : 2, le), syntax(s, s === NDR32 ? 2 : 0, le));
  }
  return pdu(o.alter ? 15 : 12, callId, Buffer.concat(parts), o);
}

export const bindNak = (callId: number, o: PduOpts = {}): Buffer => pdu(13, callId, Buffer.concat([u16(4, o.le ?? true), Buffer.alloc(2)]), o);

export function request(callId: number, ctx: number, opnum: number, stub: Buffer, o: PduOpts = {}): Buffer {
  const le = o.le ?? true;
  return pdu(0, callId, Buffer.concat([u32(stub.length, le), u16(ctx, le), u16(opnum, le), stub]), o);
}

/** A response; with `auth` a sec_trailer (and auth value) follows the padded stub. */
export function response(callId: number, ctx: number, stub: Buffer, o: PduOpts & { auth?: { level: number; value: number } } = {}): Buffer {
  const le = o.le ?? true;
  const head = Buffer.concat([u32(stub.length, le), u16(ctx, le), Buffer.from([0, 0])]);
  if (!o.auth) return pdu(2, callId, Buffer.concat([head, stub]), o);
  const pad = (16 - (stub.length % 16)) % 16;
  const trailer = Buffer.concat([Buffer.from([0x0a, o.auth.level, pad, 0]), u32(0, le)]);
  return pdu(2, callId, Buffer.concat([head, stub, Buffer.alloc(pad), trailer, Buffer.alloc(o.auth.value, 0xaa)]), { ...o, authLength: o.auth.value });
}

export const fault = (callId: number, status = 0x1c010002, o: PduOpts = {}): Buffer => {
  const le = o.le ?? true;
  return pdu(3, callId, Buffer.concat([u32(0, le), u16(0, le), Buffer.from([0, 0]), u32(status, le), u32(0, le)]), o);
};

/** A tower: floor count, then each floor's lhs and rhs with 16-bit little-endian lengths. */
export function tower(floors: Array<[Buffer, Buffer]>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0].writeUInt16LE(floors.length);
  for (const [lhs, rhs] of floors) {
    const a = Buffer.alloc(2); a.writeUInt16LE(lhs.length);
    const b = Buffer.alloc(2); b.writeUInt16LE(rhs.length);
    parts.push(a, lhs, b, rhs);
  }
  return Buffer.concat(parts);
}

const ip4 = (a: string) => Buffer.from(a.split('.').map(Number));
const be16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };

/** The 5-floor ncacn_ip_tcp (or ncadg_ip_udp) tower Windows and Samba return. */
export function ipTower(iface: string, addr: string, port: number, udp = false): Buffer {
  const ifFloor = Buffer.concat([Buffer.from([0x0d]), uuidBytes(iface), Buffer.from([1, 0])]);
  const ndrFloor = Buffer.concat([Buffer.from([0x0d]), uuidBytes(NDR32), Buffer.from([2, 0])]);
  return tower([
    [ifFloor, Buffer.from([0, 0])],
    [ndrFloor, Buffer.from([0, 0])],
    [Buffer.from([udp ? 0x0a : 0x0b]), Buffer.from([0, 0])],
    [Buffer.from([udp ? 0x08 : 0x07]), be16(port)],
    [Buffer.from([0x09]), ip4(addr)],
  ]);
}

/** A named-pipe tower (ncacn_np): nothing to open. */
export function pipeTower(iface: string): Buffer {
  const ifFloor = Buffer.concat([Buffer.from([0x0d]), uuidBytes(iface), Buffer.from([1, 0])]);
  return tower([[ifFloor, Buffer.from([0, 0])], [Buffer.from([0x0f]), Buffer.from('\\pipe\\x\0')], [Buffer.from([0x11]), Buffer.from('HOST\0')]]);
}

/** ept_map request stub: object (null uuid), the map tower, a null entry handle, max_towers. */
export function eptMapRequest(t: Buffer, le = true, maxTowers = 4): Buffer {
  const parts = [u32(1, le), Buffer.alloc(16), u32(2, le), u32(t.length, le), u32(t.length, le), t];
  parts.push(Buffer.alloc((4 - (t.length % 4)) % 4), Buffer.alloc(20), u32(maxTowers, le));
  return Buffer.concat(parts);
}

/** ept_map response stub: entry handle, num_towers, the towers (conformant varying array of pointers), status. */
export function eptMapResponse(towers: Array<Buffer | null>, o: { le?: boolean; status?: number; maxTowers?: number } = {}): Buffer {
  const le = o.le ?? true;
  const present = towers.filter((x): x is Buffer => x !== null);
  const parts: Buffer[] = [Buffer.alloc(20), u32(towers.length, le), u32(o.maxTowers ?? Math.max(towers.length, 1), le), u32(0, le), u32(towers.length, le)];
  towers.forEach((x, i) => parts.push(u32(x ? 3 + i : 0, le)));
  for (const x of present) parts.push(u32(x.length, le), u32(x.length, le), x, Buffer.alloc((4 - (x.length % 4)) % 4));
  parts.push(u32(o.status ?? 0, le));
  return Buffer.concat(parts);
}
