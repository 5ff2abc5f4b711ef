// keepalived: the generated keepalived.conf, the notify FIFO's lines, the role they give and the
// hold-back value written to the track file.

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { keepalivedConfigText } from '../../src/ha/keepalived-command.js';
import { parseVip } from '../../src/ha/keepalived-config.js';
import { HOLD_WITHOUT_PEER_MS, parseFifoLine, RoleTracker } from '../../src/ha/roles.js';
import { selectSyncLink } from '../../src/ha/sync-link.js';

const conf = (extra = '') => parseConfig(`config system ha
    set group-name "HA-APP"
    set group-id 4
    set mode a-p
    set password "s3cret"
    set hbdev "sync0" 100 "sync1" 50
    set ha-peer-ip 192.0.2.2
    set priority 200
${extra}end
`, 'ha.conf');

const ADDRS = { sync0: [{ address: '192.0.2.1', prefix: 24 }], sync1: [{ address: '192.0.2.129', prefix: 25 }], lo: [{ address: '127.0.0.1', prefix: 8 }] };

t.test('keepalived.conf: instance, priority, nopreempt, unicast peer on the hbdev, FIFO, track file, VIPs', (t) => {
  t.equal(keepalivedConfigText(conf(), 'ha.conf', ['198.51.100.254/24@veth-c', '203.0.113.254/24@veth-s'], ADDRS), `# keepalived.conf for the nfsessiond HA group "HA-APP", written by \`nfsessiond ha keepalived-config\`
# from ha.conf: write it again after changing \`config system ha\`. Same file on both nodes except
# priority, unicast_src_ip and unicast_peer, which come from each node's own config.
# No VRRP authentication: VRRP's is weak (RFC 5798 removed it). The adverts stay on the sync
# link; the session table travels on the sync channel, sealed with \`password\`.
global_defs {
    vrrp_notify_fifo /run/nfsessiond/keepalived.fifo
}

# nfsessiond writes 1 until its first bulk sync from the peer is complete, then 0:
# 1 x -254 is below -253, which keeps the instance in FAULT (never master).
track_file nfsessiond_sync {
    file "/run/nfsessiond/ha-track"
    init_file 1
}

vrrp_instance HA-APP {
    state BACKUP
    interface sync0
    virtual_router_id 5
    priority 200
    advert_int 1
    # override disable: a returning node with a higher priority stays backup
    nopreempt
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
    }
    virtual_ipaddress {
        198.51.100.254/24 dev veth-c
        203.0.113.254/24 dev veth-s
    }
    track_interface {
        veth-c
        veth-s
    }
    track_file {
        nfsessiond_sync weight -254
    }
}
`);
  const pre = keepalivedConfigText(conf('    set override enable\n'), 'ha.conf', [], ADDRS);
  t.notMatch(pre, /nopreempt/, 'override enable: keepalived preempts');
  t.match(pre, '    # no --vip given: add virtual_ipaddress { ADDR/LEN dev IFNAME } here\n');
  t.end();
});

t.test('the sync link: the highest-priority hbdev whose subnet holds the peer', (t) => {
  t.match(selectSyncLink(conf().ha, ADDRS), { ifname: 'sync0', local: '192.0.2.1', peer: '192.0.2.2', port: 7030, priority: 100 });
  t.match(selectSyncLink({ ...conf().ha, peerIp: '192.0.2.130' }, ADDRS), { ifname: 'sync0', local: '192.0.2.1' }, 'both subnets hold it: the higher priority wins');
  t.match(selectSyncLink({ ...conf().ha, peerIp: '192.0.2.130' }, { ...ADDRS, sync0: [{ address: '192.0.2.1', prefix: 25 }] }), { ifname: 'sync1', local: '192.0.2.129' }, 'only sync1\'s subnet holds it');
  t.same(selectSyncLink(conf().ha, { sync1: [] }), { error: 'no hbdev has an IPv4 address in the subnet of ha-peer-ip 192.0.2.2: sync0 (not present); sync1 (no IPv4 address)' });
  t.throws(() => keepalivedConfigText(conf(), 'ha.conf', [], {}), /ha\.conf: no hbdev has an IPv4 address/);
  t.throws(() => keepalivedConfigText(parseConfig('', 'x.conf'), 'x.conf', []), /not in mode a-p/);
  t.throws(() => keepalivedConfigText(conf(), 'ha.conf', ['198.51.100.254@veth-c'], ADDRS), /--vip 198\.51\.100\.254@veth-c: expected ADDR\/LEN@IFNAME/);
  t.same(parseVip('192.0.2.10/32@sync0'), { address: '192.0.2.10', prefix: 32, ifname: 'sync0' });
  t.end();
});

t.test('notify FIFO lines as keepalived 2.2.7 writes them', (t) => {
  t.same(parseFifoLine('INSTANCE "HA-APP" MASTER 200'), { kind: 'INSTANCE', name: 'HA-APP', state: 'MASTER', priority: 200 });
  t.same(parseFifoLine('GROUP "G1" BACKUP 0\n'), { kind: 'GROUP', name: 'G1', state: 'BACKUP', priority: 0 });
  t.same(parseFifoLine('INSTANCE "HA-APP" FAULT -54'), { kind: 'INSTANCE', name: 'HA-APP', state: 'FAULT', priority: -54 });
  for (const bad of ['INSTANCE HA-APP MASTER 200', 'INSTANCE "HA-APP" PRIMARY 200', 'VS [192.0.2.5]:tcp:80 UP', 'INSTANCE "HA-APP" MASTER', '']) {
    t.equal(parseFifoLine(bad), undefined, `not a state line: ${JSON.stringify(bad)}`);
  }
  t.end();
});

t.test('the role follows our instance\'s lines only', (t) => {
  const r = new RoleTracker('HA-APP', 0);
  t.equal(r.view(0, { firstBulkComplete: false, peerHeard: false }).role, 'unknown');
  t.same(r.line('INSTANCE "HA-APP" BACKUP 200', 10), { from: 'unknown', to: 'backup', priority: 200 });
  t.equal(r.line('INSTANCE "HA-APP" BACKUP 200', 11), undefined, 'the same state again is no change');
  t.equal(r.line('INSTANCE "OTHER" MASTER 250', 12), undefined, 'another instance');
  t.equal(r.line('GROUP "HA-APP" MASTER 0', 13), undefined, 'a sync group');
  t.same(r.line('INSTANCE "HA-APP" MASTER 200', 20), { from: 'backup', to: 'master', priority: 200 });
  t.same(r.line('INSTANCE "HA-APP" FAULT 200', 30), { from: 'master', to: 'fault', priority: 200 });
  t.same(r.line('INSTANCE "HA-APP" STOP 200', 40), { from: 'fault', to: 'stopped', priority: 200 });
  t.same(r.line('INSTANCE "HA-APP" DELETED 200', 41), undefined, 'deleted is stopped too');
  t.match(r.view(50, { firstBulkComplete: true, peerHeard: true }), { role: 'stopped', priority: 200, since: 40, transitions: 4, ignoredLines: 2 });
  t.equal(new RoleTracker(undefined, 0).view(0, { firstBulkComplete: false, peerHeard: false }).role, 'standalone');
  t.end();
});

t.test('held back until the first bulk sync, or while no peer speaks for a while after the start', (t) => {
  const r = new RoleTracker('HA-APP', 1000);
  t.same(r.hold(1000, { firstBulkComplete: false, peerHeard: false }), { held: true, reason: 'waiting for the peer (first bulk sync)' });
  t.same(r.hold(2000, { firstBulkComplete: false, peerHeard: true }), { held: true, reason: 'first bulk sync from the peer not complete' });
  t.same(r.hold(1000 + HOLD_WITHOUT_PEER_MS, { firstBulkComplete: false, peerHeard: true }), { held: true, reason: 'first bulk sync from the peer not complete' }, 'a peer that speaks is waited for');
  t.same(r.hold(1000 + HOLD_WITHOUT_PEER_MS + 1, { firstBulkComplete: true, peerHeard: true }), { held: false, reason: 'first bulk sync complete' });
  t.same(r.hold(1000 + HOLD_WITHOUT_PEER_MS + 2, { firstBulkComplete: false, peerHeard: true }).held, false, 'released for good');

  const alone = new RoleTracker('HA-APP', 0);
  t.equal(alone.hold(HOLD_WITHOUT_PEER_MS - 1, { firstBulkComplete: false, peerHeard: false }).held, true);
  t.same(alone.hold(HOLD_WITHOUT_PEER_MS, { firstBulkComplete: false, peerHeard: false }), { held: false, reason: 'no peer heard since start: nothing to catch up with' });
  t.end();
});
