import t from 'tap';
import { splitMessages, encodeNfMessage, attrU32 } from '../../src/kernel/nfnetlink.js';
import {
  encodeConfig, encodeBind, encodeUnbind, parsePacket, planVerdicts, encodeVerdicts, encodePacketMessage,
  NFQNL_CFG_CMD_BIND, NFQNL_COPY_PACKET, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO, NFQA_CFG_F_UID_GID,
  NF_ACCEPT, NF_DROP, NF_REPEAT,
} from '../../src/kernel/nfqueue-codec.js';

const hex = (b: Buffer): string => b.toString('hex');

t.test('bind, unbind: exact bytes', (t) => {
  // len 28, type 0x0302 (QUEUE<<8 | CONFIG), flags REQUEST, seq 9, pid 0, nfgenmsg AF_UNSPEC v0 res_id 5,
  // NFQA_CFG_CMD {cmd 1, pad, be16 pf 0}
  t.equal(hex(encodeBind(5, 9)), '1c000000' + '0203' + '0100' + '09000000' + '00000000' + '00000005' + '08000100' + '01000000');
  t.equal(hex(encodeUnbind(0x102)).slice(32), '00000102' + '08000100' + '02000000');
  t.end();
});

t.test('one config message carries bind, params, maxlen, mask and flags', (t) => {
  const buf = encodeConfig({
    queue: 7, cmd: NFQNL_CFG_CMD_BIND, copyMode: NFQNL_COPY_PACKET, copyRange: 0xffff, maxLen: 4096,
    flags: { mask: NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID, value: NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO },
  });
  t.equal(buf.readUInt32LE(0), buf.length);
  t.equal(hex(buf.subarray(16)),
    '00000007' +
    '08000100' + '01000000' + // CMD bind, pf 0
    '09000200' + '0000ffff' + '02' + '000000' + // PARAMS be32 range, u8 mode (packed 5 bytes), padded
    '08000300' + '00001000' + // QUEUE_MAXLEN 4096
    '08000400' + '0000000d' + // MASK 1|4|8
    '08000500' + '00000005'); // FLAGS 1|4
  t.end();
});

t.test('copy range is capped at the kernel maximum', (t) => {
  const buf = encodeConfig({ queue: 0, copyMode: NFQNL_COPY_PACKET, copyRange: 1 << 20 });
  t.equal(buf.readUInt32BE(24), 0xffff);
  t.end();
});

t.test('verdict runs: batches for runs, single verdicts for isolated packets, marks split runs', (t) => {
  const decided = [
    { id: 1, verdict: NF_ACCEPT }, { id: 2, verdict: NF_ACCEPT }, { id: 3, verdict: NF_ACCEPT },
    { id: 4, verdict: NF_DROP },
    { id: 5, verdict: NF_ACCEPT, mark: 7 }, { id: 6, verdict: NF_ACCEPT, mark: 7 },
  ];
  t.same(planVerdicts(decided), [
    { batch: true, id: 3, verdict: NF_ACCEPT },
    { batch: false, id: 4, verdict: NF_DROP },
    { batch: true, id: 6, verdict: NF_ACCEPT, mark: 7 },
  ]);
  const msgs = splitMessages(encodeVerdicts(5, decided));
  t.same(msgs.map((m) => m.type), [0x0303, 0x0301, 0x0303]);
  t.same(msgs.map((m) => m.flags), [1, 1, 1]);
  // BATCH(3, accept): nfgenmsg res_id 5, VERDICT_HDR {be32 verdict 1, be32 id 3}
  t.equal(hex(msgs[0].body), '00000005' + '0c000200' + '00000001' + '00000003');
  t.equal(hex(msgs[1].body), '00000005' + '0c000200' + '00000000' + '00000004');
  // mark rides as NFQA_MARK (be32) after the header
  t.equal(hex(msgs[2].body), '00000005' + '0c000200' + '00000001' + '00000006' + '08000300' + '00000007');
  t.end();
});

t.test('same verdict with and without mark are different runs', (t) => {
  t.same(planVerdicts([{ id: 1, verdict: 1 }, { id: 2, verdict: 1, mark: 0 }, { id: 3, verdict: 1, mark: 0 }]), [
    { batch: false, id: 1, verdict: 1 },
    { batch: true, id: 3, verdict: 1, mark: 0 },
  ]);
  t.end();
});

t.test('entries after an undecided packet are never batched', (t) => {
  // ids 10, 11 follow the in-order prefix; an earlier packet is still undecided, so a batch naming
  // 11 would settle it too.
  const plan = planVerdicts(
    [{ id: 1, verdict: 1 }, { id: 2, verdict: 1 }, { id: 10, verdict: 1 }, { id: 11, verdict: 1 }],
    2,
  );
  t.same(plan, [
    { batch: true, id: 2, verdict: 1 },
    { batch: false, id: 10, verdict: 1 },
    { batch: false, id: 11, verdict: 1 },
  ]);
  t.same(planVerdicts([], 0), []);
  t.same(planVerdicts([{ id: 4, verdict: NF_REPEAT }]), [{ batch: false, id: 4, verdict: NF_REPEAT }]);
  t.end();
});

t.test('a packet message built here parses back, payload is a view', (t) => {
  const payload = Buffer.from('4500001c0000000040110000c6336401c6336402', 'hex');
  const raw = encodePacketMessage({
    queue: 5, id: 0x01020304, hwProtocol: 0x0800, hook: 3, mark: 42, indev: 0, outdev: 7,
    payload, origLen: 1500, uid: 1000, gid: 100, skbInfo: 2,
    timestamp: { sec: 1_700_000_000n, usec: 123_456n },
  });
  const [m] = splitMessages(raw);
  const p = parsePacket(m)!;
  t.ok(p);
  t.same(
    { ...p, payload: undefined },
    {
      queue: 5, id: 0x01020304, family: 2, hwProtocol: 0x0800, hook: 3, mark: 42, indev: 0, outdev: 7,
      payload: undefined, capLen: payload.length, origLen: 1500, uid: 1000, gid: 100, skbInfo: 2,
      timestamp: 1_700_000_000_123_456,
    },
  );
  t.equal(hex(p.payload), hex(payload));
  t.equal(p.payload.buffer, raw.buffer, 'payload shares memory with the datagram');
  t.end();
});

t.test('the conntrack entry rides along: its id from the nested NFQA_CT, its ctinfo', (t) => {
  // CTA_STATUS before the id, as the kernel sends it: the id is found among the others.
  const [m] = splitMessages(encodePacketMessage({ queue: 0, id: 3, ct: { id: 0xdeadbeef, attrs: [attrU32(3, 0x188)] }, ctInfo: 2 }));
  const p = parsePacket(m)!;
  t.same([p.ctId, p.ctInfo], [0xdeadbeef, 2]);
  const [n] = splitMessages(encodePacketMessage({ queue: 0, id: 4, ct: { attrs: [attrU32(3, 0x188)] } }));
  t.equal(parsePacket(n)!.ctId, undefined, 'an entry without an id attribute gives none');
  t.equal(parsePacket(n)!.ctInfo, undefined);
  t.end();
});

t.test('a metadata-only packet has an empty payload and defaults', (t) => {
  const [m] = splitMessages(encodePacketMessage({ queue: 1, id: 9 }));
  const p = parsePacket(m)!;
  t.equal(p.id, 9);
  t.equal(p.capLen, 0);
  t.equal(p.mark, 0);
  t.equal(p.origLen, undefined);
  t.end();
});

t.test('malformed packet messages give undefined and never throw', (t) => {
  const good = encodePacketMessage({ queue: 1, id: 9, mark: 3, payload: Buffer.alloc(10, 1) });
  const [m] = splitMessages(good);
  // wrong message type
  t.equal(parsePacket({ ...m, type: 0x0301 }), undefined);
  // body shorter than nfgenmsg
  t.equal(parsePacket({ ...m, body: m.body.subarray(0, 3) }), undefined);
  // no packet header at all
  const noHdr = splitMessages(encodeNfMessage({ subsys: 3, msg: 0, flags: 0, seq: 0, family: 2, resId: 1, attrs: [] }))[0];
  t.equal(parsePacket(noHdr), undefined);
  // header attribute too short
  const shortHdr = Buffer.from(m.body);
  shortHdr.writeUInt16LE(4 + 3, 4);
  t.equal(parsePacket({ ...m, body: shortHdr }), undefined);
  // an attribute that runs past the end
  const overrun = Buffer.from(m.body);
  overrun.writeUInt16LE(0xfff0, 4 + 12);
  t.equal(parsePacket({ ...m, body: overrun }), undefined);
  // every truncation of a valid message: either undefined or a consistent packet, never a throw
  let threw = 0;
  for (let n = 0; n <= m.body.length; n++) {
    try {
      const p = parsePacket({ ...m, body: m.body.subarray(0, n) });
      if (p && p.payload.length > n) threw++;
    } catch {
      threw++;
    }
  }
  t.equal(threw, 0, 'no truncation throws or yields a payload beyond the message');
  // random garbage
  let seed = 1;
  for (let k = 0; k < 200; k++) {
    const b = Buffer.alloc(64);
    for (let i = 0; i < b.length; i++) b[i] = (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    try {
      parsePacket({ type: 0x0300, flags: 0, seq: 0, pid: 0, body: b });
    } catch {
      threw++;
    }
  }
  t.equal(threw, 0, 'random bodies never throw');
  t.end();
});
