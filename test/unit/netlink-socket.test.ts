import t from 'tap';
import { constants } from 'node:os';
import { loadNative, NetlinkChannel, NetlinkError, packageRoot, errnoName } from '../../src/kernel/netlink-socket.js';
import {
  NETLINK_NETFILTER, NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_QUEUE, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NFPROTO_IPV4,
  encodeNfMessage, splitMessages, errorOf,
} from '../../src/kernel/nfnetlink.js';
import { encodeConfig } from '../../src/kernel/nfqueue-codec.js';

// A config message without a command for a queue nobody bound: the kernel answers ENODEV and
// changes nothing, which makes it a side-effect-free probe of the error path.
const unboundQueueProbe = (): Buffer => encodeConfig({ queue: 65000, maxLen: 10 });

t.test('package root and addon load', (t) => {
  t.match(packageRoot(), /\/|\\/);
  const { NetlinkSocket } = loadNative();
  t.type(NetlinkSocket, 'function');
  t.end();
});

t.test('a NETLINK_NETFILTER socket opens with a kernel-assigned port id', (t) => {
  const { NetlinkSocket } = loadNative();
  const s = new NetlinkSocket(NETLINK_NETFILTER);
  t.ok(s.portId > 0, 'portId assigned');
  t.ok(s.fd >= 0, 'fd open');
  t.ok(s.setReceiveBuffer(1 << 20) >= 1 << 20, 'receive buffer at least what was asked (kernel doubles it)');
  s.setNoEnobufs(true);
  s.setExtAck(true);
  s.close();
  s.close();
  t.pass('close is idempotent');
  t.throws(() => s.send(Buffer.alloc(16)), { errno: constants.errno.EBADF, code: 'EBADF' });
  t.end();
});

t.test('errors carry errno, code and syscall', (t) => {
  const { NetlinkSocket } = loadNative();
  t.throws(() => new NetlinkSocket(4242), { errno: constants.errno.EPROTONOSUPPORT, code: 'EPROTONOSUPPORT', syscall: 'socket' });
  t.equal(errnoName(constants.errno.ENOENT), 'ENOENT');
  t.end();
});

t.test('garbage sent to the kernel comes back as an NLMSG_ERROR', (t) => {
  const { NetlinkSocket } = loadNative();
  const s = new NetlinkSocket(NETLINK_NETFILTER);
  t.teardown(() => s.close());
  // A well-framed message to a message type nfnetlink_queue does not have.
  const bogus = encodeNfMessage({ subsys: NFNL_SUBSYS_QUEUE, msg: 0x7f, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 77, family: 0, resId: 0, attrs: [] });
  s.send(bogus);
  const reply = s.receiveSync(2000);
  t.ok(reply, 'a reply arrived');
  const [m] = splitMessages(reply!);
  t.equal(m.seq, 77);
  t.ok((errorOf(m) ?? 0) > 0, `kernel refused it (errno ${errorOf(m)})`);
  t.equal(s.receiveSync(10), null, 'nothing else is queued; timeout gives null');
  t.end();
});

t.test('transactSync: errors become NetlinkError with errno and context', (t) => {
  const ch = new NetlinkChannel(NETLINK_NETFILTER);
  t.teardown(() => ch.close());
  let err: unknown;
  try {
    ch.transactSync([unboundQueueProbe()], 2000, { context: 'probe queue 65000' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof NetlinkError);
  t.match(err, { errno: constants.errno.ENODEV, code: 'ENODEV', message: /probe queue 65000/ });
  t.end();
});

t.test('transactSync collects a dump until NLMSG_DONE', (t) => {
  const ch = new NetlinkChannel(NETLINK_NETFILTER);
  t.teardown(() => ch.close());
  const dump = encodeNfMessage({ subsys: NFNL_SUBSYS_CTNETLINK, msg: 1, flags: NLM_F_REQUEST | NLM_F_DUMP, seq: 0, family: NFPROTO_IPV4, resId: 0, attrs: [] });
  const replies = ch.transactSync([dump], 5000);
  t.ok(Array.isArray(replies));
  for (const r of replies) t.equal(r.type >> 8, NFNL_SUBSYS_CTNETLINK);
  t.end();
});

t.test('async request: ACKs, errors and dumps resolve through the polling path', async (t) => {
  const ch = new NetlinkChannel(NETLINK_NETFILTER);
  t.teardown(() => ch.close());
  const unsolicited: number[] = [];
  ch.onMessage = (m) => unsolicited.push(m.type);
  ch.start();
  await t.rejects(ch.request([unboundQueueProbe()], { timeoutMs: 2000 }), { code: 'ENODEV' });
  const dump = encodeNfMessage({ subsys: NFNL_SUBSYS_CTNETLINK, msg: 1, flags: NLM_F_REQUEST | NLM_F_DUMP, seq: 0, family: NFPROTO_IPV4, resId: 0, attrs: [] });
  const [a, b] = await Promise.all([ch.request([dump]), ch.request([Buffer.from(dump)])]);
  t.same(a.length, b.length, 'two concurrent dumps each complete');
  // An unanswered request (no ACK flag, ack:false) resolves immediately with nothing to wait for.
  t.same(await ch.request([encodeConfig({ queue: 65000, maxLen: 10 })], { ack: false }), []);
  // Its error reply still comes back, with a seq we no longer track: it is unsolicited.
  await new Promise((r) => setTimeout(r, 50));
  t.same(unsolicited, [2], 'the untracked error went to onMessage');
  ch.stop();
  await t.rejects(ch.request([dump]), /before start/);
  ch.close();
  ch.close();
  t.ok(ch.isClosed);
});

t.test('request timeout is bounded and reported as ETIMEDOUT', async (t) => {
  const ch = new NetlinkChannel(NETLINK_NETFILTER);
  t.teardown(() => ch.close());
  ch.start();
  // The kernel answers every ACK request, so make the answer unreadable instead: stop the native
  // poll behind the channel's back.
  ch.socket.stop();
  await t.rejects(ch.request([unboundQueueProbe()], { timeoutMs: 50 }), { code: 'ETIMEDOUT' });
  t.throws(() => ch.transactSync([unboundQueueProbe()]), /while started/);
});
