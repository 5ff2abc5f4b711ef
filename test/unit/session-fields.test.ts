// The README's table of the session record's fields stays true to the formatter: every field the
// record prints is in the table, every row is printed by some session, and the values listed for
// constants and placeholders are the only ones the formatter prints for them.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { formatSessionList } from '../../src/control/format.js';
import { viewOf, type SessionView } from '../../src/control/session-view.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Packet } from '../../src/engine/types.js';
import type { FlowTuple } from '../../src/packet/types.js';

const HEADING = '#### Which fields are measured and which are layout constants';

interface Row { field: string; kind: 'measured' | 'constant' | 'placeholder'; printed: string[] }

function readmeTable(): Row[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const at = readme.indexOf(`\n${HEADING}\n`);
  if (at < 0) throw new Error(`README has no '${HEADING}'`);
  const lines = readme.slice(at).split('\n');
  const head = lines.findIndex((l) => l.startsWith('| field |'));
  const rows: Row[] = [];
  for (const l of lines.slice(head + 2)) {
    if (!l.startsWith('|')) break;
    const [field, kind, printed] = l.replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
    const values = printed === '' ? [] : printed.split(' or ').map((v) => (v === '(empty)' ? '' : v.replace(/^`|`$/g, '')));
    rows.push({ field: field.replace(/^`|`$/g, ''), kind: kind as Row['kind'], printed: values });
  }
  return rows;
}

/**
 * The record as name/value pairs: `name=value` words, the labelled lines (`state=` and
 * `no_ofld_reason:` take the rest of the line, `tx speed` / `rx speed`, `orgin->sink`), a hook
 * line's tuple, and bare words (`no_offload`) as their own name.
 */
function fieldsOf(list: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let line of list.split('\n')) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^total session: (\d+)$/.exec(line))) { out.push(['total session', m[1]]); continue; }
    if ((m = /^tx speed\(Bps\/kbps\): (\S+) rx speed\(Bps\/kbps\): (\S+)$/.exec(line))) { out.push(['tx speed', m[1]], ['rx speed', m[2]]); continue; }
    if ((m = /^state=(.*)$/.exec(line))) { out.push(['state', m[1]]); continue; }
    if ((m = /^no_ofld_reason: +(.*)$/.exec(line))) { out.push(['no_ofld_reason', m[1]]); continue; }
    if ((m = /^orgin->sink: (.*?) (dev=.*)$/.exec(line))) { out.push(['orgin->sink', m[1]]); line = m[2]; }
    line = line.replace(/^(session info|statistic\(bytes\/packets\/allow_err\)|expectation): /, '');
    for (const word of line.split(' ')) {
      const eq = word.indexOf('=');
      if (eq > 0) out.push([word.slice(0, eq), word.slice(eq + 1)]);
      else if (word.includes('->')) out.push(['tuple', word]);
      else out.push([word, word]);
    }
  }
  return out;
}

const v4: FlowTuple = { family: 4, proto: 17, src: '198.51.100.2', dst: '203.0.113.2', sport: 40841, dport: 7007 };
const v6: FlowTuple = { family: 6, proto: 6, src: '2001:db8::2', dst: '2001:db8:1::2', sport: 40000, dport: 21 };
const rev = (x: FlowTuple): FlowTuple => ({ ...x, src: x.dst, dst: x.src, sport: x.dport, dport: x.sport });

function view(over: Partial<SessionView>): SessionView {
  return {
    serial: 2, proto: 17, proto_state: '01', duration: 4, expire: 296, timeout: 300, refresh_dir: 'both', policy_id: 1, vd: 0, offloaded: false,
    org: { bytes: 1280, packets: 10, allow_err: 0 }, reply: { bytes: 640, packets: 5, allow_err: 0 }, tx_speed_bps: 320, rx_speed_bps: 160,
    orig_tuple: v4, reply_tuple: rev(v4), dev_org: [2, 3], dev_reply: [3, 2], gwy: ['0.0.0.0', '0.0.0.0'], use: 3, log: true, no_ofld_reason: 'not-established',
    ...over,
  };
}

/** Sessions that between them take every branch of the formatter. */
function samples(): SessionView[] {
  const e = new SessionEngine(defaultEngineConfig({ offload: false }));
  const p: Packet = { indev: 18, outdev: 17, mark: 0, decoded: { ok: true, tuple: v4, length: 58, tcpFlags: 0, icmpType: -1, icmpCode: -1, payloadOffset: 28, payloadLength: 30, fragment: false } };
  e.handlePacket(p, 1000);
  const fromEngine = [...e.sessions()].map((s) => viewOf(s, 5000, false, 1, e));
  const natReply = { ...rev(v4), dst: '192.0.2.1', dport: 62458 };
  return [
    ...fromEngine,
    view({}),
    view({ offloaded: true, no_ofld_reason: undefined, log: false, snat: { addr: '192.0.2.1', port: 62458 }, reply_tuple: natReply, serial: 0x5071 }),
    view({ proto: 6, proto_state: '11', refresh_dir: 'reply', orig_tuple: v6, reply_tuple: rev(v6), helper: 'ftp', no_ofld_reason: 'helper', policy_id: 7, vd: 1, use: 5, gwy: ['2001:db8:113::1', '::'] }),
    view({ gwy: ['203.0.113.1', '198.51.100.2'], use: 4 }),
    view({ dnat: { addr: '203.0.113.9', port: 8080 }, reply_tuple: { ...rev(v4), src: '203.0.113.9', sport: 8080 }, no_ofld_reason: 'offload-pending', refresh_dir: 'org' }),
    view({ parent: 5, inherited_serial: 5, serial: 9, expected: { helper: 'ftp', kind: 'ftp-data' }, adaptive: 0.5, no_ofld_reason: 'disabled-by-config' }),
    view({ offloaded: true, no_ofld_reason: undefined, adaptive: 0.25, snat: { addr: '192.0.2.1', port: 1 }, dnat: { addr: '203.0.113.9', port: 2 } }),
  ];
}

t.test('the README field table and the formatter agree', (t) => {
  const rows = readmeTable();
  const byField = new Map(rows.map((r) => [r.field, r]));
  t.equal(byField.size, rows.length, 'no field twice');
  t.ok(rows.length > 40);
  for (const r of rows) {
    t.ok(['measured', 'constant', 'placeholder'].includes(r.kind), `${r.field}: kind '${r.kind}'`);
    if (r.kind === 'constant') t.equal(r.printed.length, 1, `${r.field}: a constant lists its one value`);
    if (r.kind === 'placeholder') t.ok(r.printed.length >= 2, `${r.field}: a placeholder lists its values`);
    if (r.kind === 'measured') t.same(r.printed, [], `${r.field}: a measured field lists no value`);
  }

  const printed = new Map<string, Set<string>>();
  for (const list of [...samples().map((v) => formatSessionList([v])), formatSessionList(samples()), formatSessionList([])]) {
    for (const [name, value] of fieldsOf(list)) {
      if (!printed.has(name)) printed.set(name, new Set());
      printed.get(name)!.add(value);
    }
  }
  for (const name of printed.keys()) t.ok(byField.has(name), `the formatter prints '${name}': it belongs in the README table`);
  for (const r of rows) {
    const values = printed.get(r.field);
    t.ok(values, `'${r.field}' is in the README table: some session prints it`);
    if (!values || r.kind === 'measured') continue;
    t.same([...values].sort(), [...r.printed].sort(), `'${r.field}' (${r.kind}) prints exactly ${r.printed.map((v) => `'${v}'`).join(' or ')}`);
  }
  t.end();
});

t.test('the tokenizer reads a record field by field', (t) => {
  t.same(fieldsOf('state=log may_dirty npu\ntx speed(Bps/kbps): 5/0 rx speed(Bps/kbps): 7/0\norgin->sink: org pre->post, reply pre->post dev=2->3/3->2 gwy=::/::\nhook=pre dir=org act=noop 198.51.100.2:1->203.0.113.2:2(0.0.0.0:0)\nnpu_state=0x000001 no_offload\norigin-shaper=\ntotal session: 1'), [
    ['state', 'log may_dirty npu'], ['tx speed', '5/0'], ['rx speed', '7/0'], ['orgin->sink', 'org pre->post, reply pre->post'], ['dev', '2->3/3->2'], ['gwy', '::/::'],
    ['hook', 'pre'], ['dir', 'org'], ['act', 'noop'], ['tuple', '198.51.100.2:1->203.0.113.2:2(0.0.0.0:0)'], ['npu_state', '0x000001'], ['no_offload', 'no_offload'], ['origin-shaper', ''], ['total session', '1'],
  ]);
  t.end();
});
