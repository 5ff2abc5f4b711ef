// Our helpers against the kernel's own (nf_conntrack_ftp, nf_conntrack_tftp) on the same
// traffic: the kernel helper is assigned with an nft `ct helper` in a table of its own in the
// router namespace while the daemon runs there, `conntrack -E expect` records the kernel's
// expectations, the daemon's log records ours, and for every scenario the two sets must be equal
// (protocol, source, destination, destination port; both leave the source port open).

import t from 'tap';
import { withTopology, type NsProcess, type Topology } from '../../src/topology/netns.js';
import { fixturePath } from '../../src/topology/peers.js';
import { ftpTransfer, startVsftpd } from '../../src/topology/ftp.js';
import { startDaemon, eventually, type RunningDaemon } from '../lib/daemon.js';
import { conntrackExpectKeys } from '../lib/conntrack-expect.js';
import { acceptAllConfig } from '../lib/control-only.js';

const CONFIG = acceptAllConfig(1);

const KERNEL_HELPERS = `
table inet kref {
  ct helper ftp-std { type "ftp" protocol tcp; l3proto inet; }
  ct helper tftp-std { type "tftp" protocol udp; l3proto inet; }
  chain pre {
    type filter hook prerouting priority filter; policy accept;
    tcp dport 21 ct helper set "ftp-std"
    udp dport 69 ct helper set "tftp-std"
  }
}
`;

/** "6 198.51.100.2->203.0.113.2:40000" */
type Key = string;

function kernelExpectations(watch: NsProcess): Key[] {
  return conntrackExpectKeys(watch.stdout());
}

function ourExpectations(d: RunningDaemon): Key[] {
  const out: Key[] = [];
  for (const line of d.proc.stdout().split('\n')) {
    if (!line.includes('"expectation created"')) continue;
    const r = JSON.parse(line) as { proto: number; src: string; dst: string; dport: number };
    out.push(`${r.proto} ${r.src}->${r.dst}:${r.dport}`);
  }
  return out;
}

async function both(topo: Topology, d: RunningDaemon, watch: NsProcess, since: { k: number; o: number }, n: number): Promise<{ kernel: Key[]; ours: Key[] }> {
  // Both records arrive asynchronously (netlink events, the log stream): wait until each has n new entries.
  await eventually(async () => (kernelExpectations(watch).length >= since.k + n && ourExpectations(d).length >= since.o + n ? true : undefined), 10_000);
  void topo;
  const kAll = kernelExpectations(watch);
  const oAll = ourExpectations(d);
  return { kernel: kAll.slice(since.k).sort(), ours: oAll.slice(since.o).sort() };
}

t.test('FTP: our expectations equal the kernel helpers\' on the same traffic', async (t) => {
  await withTopology(t, async (topo) => {
    await topo.execOk('router', ['nft', '-f', '-'], { input: KERNEL_HELPERS });
    const watch = topo.spawn('router', ['conntrack', '-E', 'expect']);
    const ftp = await startVsftpd(topo);
    t.teardown(() => ftp.stop());
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());

    const scenarios: Array<[string, () => Promise<unknown>]> = [
      ['PASV', () => ftpTransfer(topo, ftp.url('file.bin'), { rfc959: true })],
      ['EPSV', () => ftpTransfer(topo, ftp.url('file.bin'))],
      ['PORT', () => ftpTransfer(topo, ftp.url('file.bin'), { active: true, rfc959: true })],
      ['EPRT', () => ftpTransfer(topo, ftp.url('file.bin'), { active: true })],
      ['IPv6 EPSV', () => ftpTransfer(topo, ftp.url('file.bin', topo.addr.server.v6))],
      ['IPv6 EPRT', () => ftpTransfer(topo, ftp.url('file.bin', topo.addr.server.v6), { active: true })],
    ];
    for (const [name, run] of scenarios) {
      const since = { k: kernelExpectations(watch).length, o: ourExpectations(d).length };
      const r = (await run()) as { bytes: number };
      t.equal(r.bytes, 100_000, `${name}: transfer`);
      const { kernel, ours } = await both(topo, d, watch, since, 1);
      t.ok(kernel.length > 0, `${name}: the kernel helper expected ${kernel.join(', ')}`);
      t.same(ours, kernel, `${name}: same expectations`);
    }

    // A PORT naming a third host (FTP bounce): neither opens anything. The PASV after it is the
    // marker that both have read the PORT by the time we compare.
    const since = { k: kernelExpectations(watch).length, o: ourExpectations(d).length };
    const ctl = topo.spawn('client', [process.execPath, fixturePath('ftp-control.mjs'), topo.addr.server.v4, '21'], { stdin: true });
    await ctl.waitForLine(/"reply":"220/);
    for (const cmd of ['USER anonymous', 'PASS x', 'PORT 192,0,2,9,0,80', 'PASV']) ctl.child.stdin!.write(`send ${cmd}\n`);
    await ctl.waitForLine(/"reply":"227/);
    const { kernel, ours } = await both(topo, d, watch, since, 1);
    t.equal(kernel.length, 1, `bounce: the kernel expected only the PASV data channel: ${kernel.join(', ')}`);
    t.same(ours, kernel, 'bounce: same expectations (the PORT to 192.0.2.9 opened nothing in either)');
    t.match(d.proc.stdout(), /"reason":"ftp-bounce".*"msg":"expectation refused"/, 'and ours says why');
    ctl.child.stdin!.write('close\n');
  });
});
