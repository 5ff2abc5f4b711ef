// config system ha: the vendor's keys plus the Linux ones, and every refusal with its position.

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { configErrors } from '../lib/config-errors.js';

const errorsOf = (text: string) => configErrors(text, 'ha.conf');

t.test('the seed\'s block, with the peer address Linux needs', (t) => {
  const c = parseConfig(`config system ha
    set group-name "HA-APP"
    set mode a-p
    set password "s3cret"
    set hbdev "sync0" 100
    set session-pickup enable
    set override enable
    set ha-peer-ip 192.0.2.2
end
`, 'ha.conf');
  t.same(c.ha, {
    mode: 'a-p', groupName: 'HA-APP', groupId: 0, password: 's3cret', hbdev: [{ ifname: 'sync0', priority: 100 }], peerIp: '192.0.2.2', port: 7030,
    pickup: { sessions: true, connectionless: false, expectation: false, delay: false }, override: true, priority: 128,
    notifyFifo: '/run/nfsessiond/keepalived.fifo', trackFile: '/run/nfsessiond/ha-track',
  });
  t.end();
});

t.test('defaults: standalone, nothing synced', (t) => {
  const c = parseConfig('', 'empty.conf');
  t.equal(c.ha.mode, 'standalone');
  t.same(c.ha.pickup, { sessions: false, connectionless: false, expectation: false, delay: false });
  t.same(c.ha.hbdev, []);
  t.end();
});

t.test('hbdev pairs are ordered by priority, highest first', (t) => {
  const c = parseConfig('config system ha\n    set hbdev "a" 10 "b" 200 "c" 10\nend\n', 'ha.conf');
  t.same(c.ha.hbdev.map((h) => h.ifname), ['b', 'a', 'c']);
  t.end();
});

t.test('a-p without its keys is refused at mode, each key named', (t) => {
  t.same(errorsOf('config system ha\n    set mode a-p\nend\n'), [
    "ha.conf:2:14: 'config system ha': mode a-p needs 'group-name' (it names the cluster and keys the sync channel)",
    "ha.conf:2:14: 'config system ha': mode a-p needs 'password' (the sync channel is authenticated and encrypted with it)",
    "ha.conf:2:14: 'config system ha': mode a-p needs 'hbdev' (the sync link's interface)",
    "ha.conf:2:14: 'config system ha': mode a-p needs 'ha-peer-ip' (the peer's address on the sync link)",
  ]);
  t.end();
});

t.test('bad values point at themselves', (t) => {
  t.same(errorsOf(`config system ha
    set group-name "HA APP"
    set hbdev "sync0" 100 "sync1"
    set ha-peer-ip 192.0.2.300
    set session-pickup-delay enable
    set priority 255
end
`), [
    "ha.conf:2:20: 'group-name' in 'config system ha': at most 32 letters, digits, '_', '.', '-', got 'HA APP'",
    "ha.conf:3:27: 'hbdev' in 'config system ha': 'sync1' needs its priority ('\"<ifname>\" <priority>' pairs)",
    "ha.conf:4:20: 'ha-peer-ip' in 'config system ha': expected an IPv4 address, got '192.0.2.300'",
    "ha.conf:5:30: 'session-pickup-delay' in 'config system ha' needs 'set session-pickup enable'",
    "ha.conf:6:18: 'priority' in 'config system ha': 255 is out of range 1-254",
  ]);
  t.same(errorsOf('config system ha\n    set hbdev "sync0" 600 "sync0" 1\nend\n'), [
    "ha.conf:2:23: 'hbdev' in 'config system ha': priority of 'sync0' must be 0-512, got '600'",
  ]);
  t.same(errorsOf('config system ha\n    set hbdev "sync0" 6 "sync0" 1\nend\n'), [
    "ha.conf:2:25: 'hbdev' in 'config system ha': 'sync0' is given twice",
  ]);
  t.same(errorsOf('config system ha\n    set mode active-active\nend\n'), [
    "ha.conf:2:14: 'mode' in 'config system ha': expected one of standalone|a-p, got 'active-active'",
  ]);
  t.end();
});
