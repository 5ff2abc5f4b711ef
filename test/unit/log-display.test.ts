import t from 'tap';
import { Ring } from '../../src/log/ring.js';
import { applyLogFilterArgs, formatLogDisplay, formatLogFilter, formatLogRecord, selectLogs } from '../../src/log/display.js';
import type { TrafficRecord } from '../../src/log/traffic.js';

const rec = (sessionid: number, action = 'close', dstport = 80): TrafficRecord => ({
  date: '2026-11-21', time: '12:00:42', eventtime: 1795262442000000000, logid: '0000000013', type: 'traffic', subtype: 'forward', level: 'notice',
  vd: 'root', srcip: '198.51.100.2', srcport: 40000, dstip: '203.0.113.2', dstport, srcintf: 'veth-c', dstintf: 'veth-s', proto: 6,
  service: 'HTTP', policyid: 1, sessionid, action, duration: 42, sentbyte: 60, rcvdbyte: 0, sentpkt: 1, rcvdpkt: 0,
});

t.test('ring keeps the last N in order', (t) => {
  const r = new Ring<number>(3);
  for (let i = 1; i <= 5; i++) r.push(i);
  t.same(r.toArray(), [3, 4, 5]);
  t.equal(r.total, 5);
  t.equal(r.size, 3);
  const z = new Ring<number>(0);
  z.push(1);
  t.same(z.toArray(), []);
  t.throws(() => new Ring(-1));
  t.end();
});

t.test('a record in the vendor raw layout', (t) => {
  t.equal(formatLogRecord(rec(7)),
    'date=2026-11-21 time=12:00:42 logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" eventtime=1795262442000000000 ' +
    'srcip=198.51.100.2 srcport=40000 srcintf="veth-c" dstip=203.0.113.2 dstport=80 dstintf="veth-s" sessionid=7 proto=6 action="close" ' +
    'policyid=1 service="HTTP" duration=42 sentbyte=60 rcvdbyte=0 sentpkt=1 rcvdpkt=0');
  t.end();
});

t.test('display: newest first, numbered, paged, filtered by field', (t) => {
  const all = [rec(1), rec(2, 'start'), rec(3), rec(4, 'close', 53)];
  const d = selectLogs(all, {});
  t.same(d.records.map((r) => r.sessionid), [4, 3, 2, 1]);
  t.equal(formatLogDisplay(selectLogs(all.slice(0, 2), {})), `2 logs found.
2 logs returned.

1: ${formatLogRecord(rec(2, 'start'))}

2: ${formatLogRecord(rec(1))}
`);
  const f = [['field', 'action', 'close'], ['view-lines', '5'], ['start-line', '2']].reduce((a, c) => applyLogFilterArgs(a, c), {});
  const page = selectLogs(all, f);
  t.same([page.found, page.start_line, page.records.map((r) => r.sessionid)], [3, 2, [3, 1]]);
  t.match(formatLogDisplay(page), /^3 logs found\.\n2 logs returned\.\n\n2: .*sessionid=3 .*\n\n3: .*sessionid=1 /);
  t.same(selectLogs(all, applyLogFilterArgs({}, ['field', 'dstport', '53'])).records.map((r) => r.sessionid), [4], 'numbers compare as text');
  t.equal(formatLogFilter(f), 'category: traffic\ndevice: memory\nstart-line: 2\nview-lines: 5\nfield: action=close\n');
  t.same(applyLogFilterArgs(f, ['reset']), {});
  t.same(applyLogFilterArgs(f, ['field', 'action']).fields, {});
  t.throws(() => applyLogFilterArgs({}, ['view-lines', '2']), /view-lines: expected a number 5-1000/);
  t.throws(() => applyLogFilterArgs({}, ['category', '0']), /unknown log filter 'category'/);
  t.equal(formatLogDisplay(selectLogs([], {})), '0 logs found.\n0 logs returned.\n');
  t.end();
});
