import t from 'tap';
import {
  renderTable, renderLoad, renderXtRestore, renderNftQueue, xtQueueArgs, xtJumpArgs, xtChainName,
  resolveRulesetOptions, Ruleset, DEFAULT_RULESET_OPTIONS, nftQueueCounter, xtQueueCounter, type Runner,
} from '../../src/kernel/ruleset.js';

const DEFAULT_TABLE = `table inet nfsessiond {
	set pinholes4 {
		type ipv4_addr . ipv4_addr . inet_proto . inet_service
		flags timeout
	}
	set pinholes6 {
		type ipv6_addr . ipv6_addr . inet_proto . inet_service
		flags timeout
	}
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		ct state new ip saddr . ip daddr . meta l4proto . th dport @pinholes4 counter ct mark set ct mark | 0x00100000
		ct state new ip6 saddr . ip6 daddr . meta l4proto . th dport @pinholes6 counter ct mark set ct mark | 0x00100000
		ct mark & 0x00100000 == 0x00100000 counter comment "offloaded: not queued"
	}
}
`;

t.test('defaults render the exact table (xt fallback: no queue rule in nft)', (t) => {
  const o = resolveRulesetOptions();
  t.same(o, DEFAULT_RULESET_OPTIONS);
  t.equal(renderTable(o, 'xt-nfqueue'), DEFAULT_TABLE);
  t.equal(renderLoad(o, 'xt-nfqueue'), `table inet nfsessiond\ndelete table inet nfsessiond\n${DEFAULT_TABLE}`);
  t.end();
});

t.test('nft queue mechanism adds a queue rule that skips offloaded conntracks', (t) => {
  const o = resolveRulesetOptions({ queues: { first: 2, last: 5 } });
  const text = renderTable(o, 'nft-queue');
  t.equal(text, DEFAULT_TABLE.replace(
    '"offloaded: not queued"\n',
    '"offloaded: not queued"\n\t\tct mark & 0x00100000 != 0x00100000 counter queue flags bypass to 2-5\n',
  ));
  t.equal(renderNftQueue(resolveRulesetOptions({ bypass: false, queues: { first: 7, last: 7 } })), 'queue to 7');
  t.equal(renderNftQueue(resolveRulesetOptions()), 'queue flags bypass to 0');
  t.end();
});

t.test('one family, several hooks, custom table, mark and priority', (t) => {
  const o = resolveRulesetOptions({ table: 'fw2', families: [4], hooks: ['forward', 'input'], offloadMark: 0x80, priority: 5 });
  t.equal(renderTable(o, 'nft-queue'), `table inet fw2 {
	set pinholes4 {
		type ipv4_addr . ipv4_addr . inet_proto . inet_service
		flags timeout
	}
	chain forward {
		type filter hook forward priority filter + 5; policy accept;
		ct state new ip saddr . ip daddr . meta l4proto . th dport @pinholes4 counter ct mark set ct mark | 0x00000080
		meta nfproto ipv4 ct mark & 0x00000080 == 0x00000080 counter comment "offloaded: not queued"
		meta nfproto ipv4 ct mark & 0x00000080 != 0x00000080 counter queue flags bypass to 0
	}
	chain input {
		type filter hook input priority filter + 5; policy accept;
		ct state new ip saddr . ip daddr . meta l4proto . th dport @pinholes4 counter ct mark set ct mark | 0x00000080
		meta nfproto ipv4 ct mark & 0x00000080 == 0x00000080 counter comment "offloaded: not queued"
		meta nfproto ipv4 ct mark & 0x00000080 != 0x00000080 counter queue flags bypass to 0
	}
}
`);
  const six = renderTable(resolveRulesetOptions({ families: [6], priority: 0 }), 'xt-nfqueue');
  t.notMatch(six, /pinholes4/);
  t.match(six, /priority filter; policy accept;/);
  t.match(six, /\t\tmeta nfproto ipv6 ct mark & 0x00100000 == 0x00100000 counter/);
  t.end();
});

t.test('xt fallback: chain content, queue args, jump rule', (t) => {
  const o = resolveRulesetOptions();
  t.equal(xtChainName(o), 'NFSESSIOND');
  t.equal(renderXtRestore(o), [
    '*filter',
    ':NFSESSIOND - [0:0]',
    '-A NFSESSIOND -m connmark --mark 0x00100000/0x00100000 -j RETURN',
    '-A NFSESSIOND -j NFQUEUE --queue-num 0 --queue-bypass',
    'COMMIT',
    '',
  ].join('\n'));
  t.same(xtQueueArgs(resolveRulesetOptions({ queues: { first: 1, last: 4 }, bypass: false })), ['-j', 'NFQUEUE', '--queue-balance', '1:4']);
  t.same(xtJumpArgs(o), ['-m', 'comment', '--comment', 'nfsessiond', '-j', 'NFSESSIOND']);
  t.end();
});

t.test('options are validated', (t) => {
  t.throws(() => resolveRulesetOptions({ table: 'Bad Name' }), /table name/);
  t.throws(() => resolveRulesetOptions({ table: 'x'.repeat(29) }), /table name/);
  t.throws(() => resolveRulesetOptions({ hooks: [] }), /hooks/);
  t.throws(() => resolveRulesetOptions({ hooks: ['prerouting' as never] }), /hooks/);
  t.throws(() => resolveRulesetOptions({ families: [] }), /families/);
  t.throws(() => resolveRulesetOptions({ queues: { first: 3, last: 2 } }), /queues/);
  t.throws(() => resolveRulesetOptions({ queues: { first: 0, last: 65536 } }), /queues/);
  t.throws(() => resolveRulesetOptions({ offloadMark: 0 }), /offload mark/);
  t.same(resolveRulesetOptions({ hooks: ['forward', 'forward'], families: [6, 4, 6] }).hooks, ['forward']);
  t.same(resolveRulesetOptions({ families: [6, 4] }).families, [4, 6]);
  t.end();
});

/** A fake kernel: records commands, answers like iptables-nft / nft would for a given state. */
function fakeRunner(state: { jumpPresent: boolean; nftQueue: boolean; filterTable: boolean }): { runner: Runner; log: string[] } {
  const log: string[] = [];
  const runner: Runner = async (cmd, args, opts) => {
    log.push(`${cmd} ${args.join(' ')}${opts.input && opts.input.includes('queue flags bypass to 0\n\t}') ? ' <probe>' : ''}`);
    const ok = { code: 0, stdout: '', stderr: '' };
    if (cmd === 'nft' && args[0] === '-f' && opts.input?.includes('_probe_')) {
      return state.nftQueue ? ok : { code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory' };
    }
    if (cmd === 'nft' && args[0] === 'list' && args[1] === 'table') return state.filterTable ? ok : { code: 1, stdout: '', stderr: 'No such file or directory' };
    if (cmd === 'nft' && args[0] === 'list' && args[1] === 'tables') return { code: 0, stdout: 'table inet nfsessiond\ntable inet other\n', stderr: '' };
    if (args[0] === '-C') return state.jumpPresent ? ok : { code: 1, stdout: '', stderr: 'iptables: Bad rule (does a matching rule exist in that chain?).' };
    if (args[0] === '-D') return { code: 1, stdout: '', stderr: 'iptables: Bad rule (does a matching rule exist in that chain?).' };
    if (args[0] === '-S') return { code: 1, stdout: '', stderr: 'iptables: No chain/target/match by that name.' };
    return ok;
  };
  return { runner, log };
}

t.test('install flow: probe, table load, chains, jump only when absent', async (t) => {
  const fresh = fakeRunner({ jumpPresent: false, nftQueue: false, filterTable: false });
  const r = await new Ruleset({}, { runner: fresh.runner }).install();
  t.equal(r.mechanism, 'xt-nfqueue');
  t.equal(r.jumpsAdded, 2);
  t.equal(r.xtChain, 'NFSESSIOND');
  t.ok(fresh.log.includes('iptables -I FORWARD 1 -m comment --comment nfsessiond -j NFSESSIOND'));
  t.ok(fresh.log.includes('ip6tables -I FORWARD 1 -m comment --comment nfsessiond -j NFSESSIOND'));
  t.ok(fresh.log.includes('iptables-restore --noflush'));

  const again = fakeRunner({ jumpPresent: true, nftQueue: false, filterTable: true });
  const r2 = await new Ruleset({}, { runner: again.runner }).install();
  t.equal(r2.jumpsAdded, 0);
  t.notOk(again.log.some((l) => / -I /.test(l)), 'no insert when -C finds the jump');

  const nft = fakeRunner({ jumpPresent: false, nftQueue: true, filterTable: true });
  const r3 = await new Ruleset({}, { runner: nft.runner }).install();
  t.equal(r3.mechanism, 'nft-queue');
  t.equal(r3.xtChain, undefined);
  t.ok(nft.log.some((l) => /^nft delete table inet nfsessiond_probe_/.test(l)), 'probe table deleted');
  t.notOk(nft.log.some((l) => /-restore|-I /.test(l)), 'no iptables rules with nft queue');

  const rm = fakeRunner({ jumpPresent: false, nftQueue: false, filterTable: false });
  await new Ruleset({}, { runner: rm.runner }).remove();
  t.same(rm.log, ['nft list table ip filter', 'nft list table ip6 filter', 'nft list tables inet', 'nft delete table inet nfsessiond'],
    'no filter table: nothing iptables is run (it would create one)');
});

t.test('the queue rules\' packet counters are read from nft JSON and from iptables -v -x', async (t) => {
  const nft = JSON.stringify({ nftables: [
    { metainfo: { version: '1.0.6' } },
    { rule: { chain: 'forward', expr: [{ match: { op: '==', left: { ct: { key: 'mark' } }, right: 1 } }, { counter: { packets: 9, bytes: 540 } }] } },
    { rule: { chain: 'forward', expr: [{ match: { op: '!=' } }, { counter: { packets: 1234, bytes: 9 } }, { queue: { num: 0, flags: ['bypass'] } }] } },
    { rule: { chain: 'input', expr: [{ counter: { packets: 66, bytes: 9 } }, { queue: { num: 0 } }] } },
  ] });
  t.equal(nftQueueCounter(nft), 1300, 'only the rules that queue, summed over hooks');
  t.equal(nftQueueCounter(JSON.stringify({ nftables: [{ rule: { expr: [{ queue: { num: 0 } }] } }] })), undefined, 'a queue rule without counter');
  t.equal(nftQueueCounter('not json'), undefined);
  const xt = [
    'Chain NFSESSIOND (3 references)',
    '    pkts      bytes target     prot opt in     out     source               destination',
    '     812    48720 RETURN     0    --  *      *       0.0.0.0/0            0.0.0.0/0            connmark match  0x100000/0x100000',
    ' 4294967301 99 NFQUEUE    0    --  *      *       0.0.0.0/0            0.0.0.0/0            NFQUEUE num 0 bypass',
  ].join('\n');
  t.equal(xtQueueCounter(xt), 4294967301, 'the NFQUEUE rule, beyond 32 bits');
  t.equal(xtQueueCounter(xt.split('\n').slice(0, 3).join('\n')), undefined, 'no NFQUEUE rule');
});

t.test('queuedPackets sums the NFQUEUE rule over the configured families (xt) or reads the table (nft)', async (t) => {
  const calls: string[] = [];
  const out: Record<string, string> = {
    iptables: '    pkts bytes target prot opt in out source destination\n      40  2400 NFQUEUE  0 -- * * 0.0.0.0/0 0.0.0.0/0 NFQUEUE num 0\n',
    ip6tables: '    pkts bytes target prot opt in out source destination\n       2   160 NFQUEUE  0 -- * * ::/0 ::/0 NFQUEUE num 0\n',
    nft: JSON.stringify({ nftables: [{ rule: { expr: [{ counter: { packets: 7, bytes: 1 } }, { queue: { num: 0 } }] } }] }),
  };
  const runner = async (cmd: string, args: string[]) => { calls.push(`${cmd} ${args.join(' ')}`); return { code: 0, stdout: out[cmd] ?? '', stderr: '' }; };
  const rs = new Ruleset({ families: [4, 6] }, { runner });
  t.equal(await rs.queuedPackets('xt-nfqueue'), 42);
  t.equal(await rs.queuedPackets('nft-queue'), 7);
  t.same(calls, ['iptables -w -n -v -x -L NFSESSIOND', 'ip6tables -w -n -v -x -L NFSESSIOND', 'nft -j list table inet nfsessiond']);
  const failing = new Ruleset({ families: [4] }, { runner: async () => ({ code: 1, stdout: '', stderr: 'no chain' }) });
  t.equal(await failing.queuedPackets('xt-nfqueue'), undefined, 'unreadable counters are unknown, not zero');
});
