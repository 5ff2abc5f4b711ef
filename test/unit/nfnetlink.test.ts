import t from 'tap';
import {
  encodeNfMessage, splitMessages, parseNfBody, attrU32, attrNest, attrStr, attrU16, u32, u16, parseAttrs,
  NFNL_SUBSYS_QUEUE, NLM_F_REQUEST, errorOf, NLMSG_ERROR,
} from '../../src/kernel/nfnetlink.js';

t.test('encode then split/parse round-trips header, nfgenmsg and nested attributes', (t) => {
  const buf = encodeNfMessage({
    subsys: NFNL_SUBSYS_QUEUE, msg: 2, flags: NLM_F_REQUEST, seq: 7, family: 2, resId: 3,
    attrs: [attrU32(3, 4096), attrNest(9, [attrU16(1, 80), attrStr(2, 'ab')])],
  });
  t.equal(buf.length % 4, 0);
  t.equal(buf.readUInt32LE(0), buf.length);
  const [m, ...rest] = splitMessages(Buffer.concat([buf, buf]));
  t.equal(rest.length, 1);
  t.equal(m.type, (3 << 8) | 2);
  t.equal(m.seq, 7);
  const body = parseNfBody(m)!;
  t.same([body.subsys, body.msg, body.family, body.resId], [3, 2, 2, 3]);
  t.equal(u32(body.attrs.get(3)), 4096);
  const nested = parseAttrs(body.attrs.get(9)!);
  t.equal(u16(nested.get(1)), 80);
  t.equal(nested.get(2)!.toString('latin1'), 'ab\0');
  t.end();
});

t.test('truncated datagrams stop the walk without throwing', (t) => {
  const buf = encodeNfMessage({ subsys: 1, msg: 0, flags: 0, seq: 1, family: 2, resId: 0, attrs: [attrU32(1, 1)] });
  t.same(splitMessages(buf.subarray(0, buf.length - 2)), []);
  t.same(splitMessages(Buffer.alloc(3)), []);
  const bad = Buffer.from(buf); bad.writeUInt32LE(4, 0);
  t.same(splitMessages(bad), []);
  t.end();
});

t.test('errorOf reads the negative errno of NLMSG_ERROR', (t) => {
  const e = Buffer.alloc(36);
  e.writeUInt32LE(36, 0); e.writeUInt16LE(NLMSG_ERROR, 4); e.writeInt32LE(-2, 16);
  const [m] = splitMessages(e);
  t.equal(errorOf(m), 2);
  t.end();
});
