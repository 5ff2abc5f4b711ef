// The HA service with its keepalived files (a real FIFO and track file in a temporary directory),
// the two status views and the HA metrics.

import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import pino from 'pino';
import { parseConfig, engineConfigFor } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { HaService } from '../../src/ha/ha-service.js';
import { HOLD_WITHOUT_PEER_MS } from '../../src/ha/roles.js';
import type { DatagramPort } from '../../src/ha/sync-service.js';
import { formatHaDiagnose, formatHaGet } from '../../src/control/ha-format.js';
import { DaemonMetrics } from '../../src/metrics/metrics.js';
import { FakeTable, session } from '../lib/ha-table.js';

const log = pino({ level: 'silent' });

const haConfig = (dir: string) => parseConfig(`config system ha
    set mode a-p
    set group-name "HA-APP"
    set password "s3cret"
    set hbdev "sync0" 100
    set ha-peer-ip 192.0.2.2
    set session-pickup enable
    set ha-notify-fifo ${join(dir, 'run', 'ka.fifo')}
    set ha-track-file ${join(dir, 'run', 'track')}
end
`, 'ha.conf').ha;

const quietPort = (): DatagramPort => ({ bind: async () => undefined, send: () => undefined, onMessage: () => undefined, close: () => undefined });

t.test('track file, notify FIFO, and the views of a node whose peer never answered', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-ha-views-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const table = new FakeTable();
  table.start(session(1, 6, 0));
  const ha = new HaService(haConfig(dir), table, log, { addresses: { sync0: [{ address: '192.0.2.1', prefix: 24 }] }, port: quietPort(), timer: false, boot: '0123456789abcdef' }, 0);
  const roles: string[] = [];
  ha.onRole = (r) => roles.push(r);
  await ha.start(0);
  t.equal(readFileSync(join(dir, 'run', 'track'), 'utf8'), '1\n', 'held back from the start');

  // keepalived's end of the FIFO.
  const w = openSync(join(dir, 'run', 'ka.fifo'), 'w');
  writeSync(w, 'INSTANCE "HA-APP" BACKUP 128\nINSTANCE "OTHER" MAS');
  writeSync(w, 'TER 100\nINSTANCE "HA-APP" FAULT 128\n');
  closeSync(w);
  for (let i = 0; i < 100 && roles.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.same(roles, ['backup', 'fault'], 'the FIFO\'s lines, in order, ours only');

  ha.checkHold(HOLD_WITHOUT_PEER_MS - 1);
  t.equal(readFileSync(join(dir, 'run', 'track'), 'utf8'), '1\n');
  ha.checkHold(HOLD_WITHOUT_PEER_MS);
  t.equal(readFileSync(join(dir, 'run', 'track'), 'utf8'), '0\n', 'released: no peer spoke since the start');

  const st = ha.status(HOLD_WITHOUT_PEER_MS);
  t.equal(formatHaDiagnose(st).split('\n').slice(3).join('\n'), `pickup: session-pickup=enable connectionless=disable expectation=disable delay=disable
sync link: sync0 (priority 100) 192.0.2.1 -> 192.0.2.2:7030  state: down: nothing heard from 192.0.2.2:7030 since start  last heard: never
boot id: 0123456789abcdef  peer boot id: (none)
tx: last_seq=0 sent=0 acked=0 unacked=0 resent=0 overflows=0 last_ack=never
rx: expected=1 received=0 delivered=0 duplicates=0 early=0 nacks=0 gaps_too_wide=0
datagrams: in=0 out=1
refused: short=0 magic=0 version=0 auth=0 body=0 replay=0 self=0
sync lag (send to ack): samples=0 last=- ms max=- ms
bulk to the peer: sent=0 last_records=0
bulk from the peer: requested (requested 0 time(s) after the start, 0 complete, last 0 records)
ours on the peer: sessions=0 expectations=0 waiting_for_delay=0 not_synced_by_pickup=0
peer's table held here: sessions=0 expectations=0 changes=0 highest_serial=0`);
  t.match(formatHaDiagnose(st), /^mode: a-p {2}group: HA-APP {2}priority: 128 {2}override: disable\nrole: fault \(from keepalived, priority 128, since [^,]+, 2 transition\(s\)\)\nheld back: no \(no peer heard since start: nothing to catch up with\); track file .*\/run\/track = 0\n/);
  const get = formatHaGet(st);
  t.match(get, /^HA Health Status: ERROR: sync link down: nothing heard from 192\.0\.2\.2:7030 since start\nModel: nfsessiond \(Linux\)\nMode: HA A-P\nGroup Name: HA-APP\n/);
  t.match(get, '\nses_pickup: enable, ses_pickup_delay=disable\noverride: disable\n');
  t.match(get, '\nCluster Uptime: (not tracked by nfsessiond)\n');
  t.match(get, '\n(fault)   : this node, boot 0123456789abcdef, priority 128\n');
  t.equal(formatHaDiagnose({ mode: 'standalone' }), 'mode: standalone (config system ha: set mode a-p to pair two nodes)');

  const engine = new SessionEngine(engineConfigFor(parseConfig(''), (i) => `if${i}`));
  const m = new DaemonMetrics({ engine: () => engine, vdName: () => 'root', queues: () => [], ha: () => ha.status(HOLD_WITHOUT_PEER_MS) }, { processMetrics: false });
  m.haLag(3);
  m.haLag(120);
  const text = await m.text();
  for (const line of ['nfsessiond_ha_role{role="fault"} 1', 'nfsessiond_ha_role{role="master"} 0', 'nfsessiond_ha_unacked_messages 0', 'nfsessiond_ha_link_up 0', 'nfsessiond_ha_held_back 0',
    'nfsessiond_ha_refused_total{reason="auth"} 0', 'nfsessiond_ha_retransmits_total 0', 'nfsessiond_ha_synced_sessions 0',
    'nfsessiond_ha_sync_lag_seconds_bucket{le="0.005"} 1', 'nfsessiond_ha_sync_lag_seconds_bucket{le="0.25"} 2', 'nfsessiond_ha_sync_lag_seconds_count 2']) {
    t.match(text, `\n${line}\n`, line);
  }
  ha.stop();
  t.equal(readFileSync(join(dir, 'run', 'track'), 'utf8'), '1\n', 'a stopping daemon holds the node back');
  const standalone = new DaemonMetrics({ engine: () => engine, vdName: () => 'root', queues: () => [], ha: () => undefined }, { processMetrics: false });
  t.match(await standalone.text(), '\nnfsessiond_ha_role{role="standalone"} 1\n');
});
