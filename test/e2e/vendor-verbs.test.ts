// The vendor's verbs against a live daemon on the router, through the built CLI: get test
// proxyworker 4 counts real HTTP connections, 99 restarts that count without dropping a session,
// 1 and 4444 answer, other selectors are refused; diagnose wad user and its alias diagnose user;
// a reader that stops early (`| true`) ends the CLI quietly.

import { spawnSync } from 'node:child_process';
import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { curlFetch, startHttpServer } from '../../src/topology/peers.js';
import type { ProxyWorkerView } from '../../src/control/limits-format.js';
import { CLI, runCli, startDaemon } from '../lib/daemon.js';

const PORT = 8080;
const CONFIG = `
config system session-accounting
    set http-port ${PORT}
end
`;

t.test('proxyworker pages, wad user views and a closed pipe on a live daemon', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { port: PORT, bodySize: 1000 });
    const d = await startDaemon(topo, CONFIG);
    t.teardown(async () => { await d.stop(); });
    const fetch3 = async () => {
      for (let i = 0; i < 3; i++) t.equal((await curlFetch(topo, http.url)).bytes, 1000, `fetch ${i + 1}`);
    };
    await fetch3();

    const page4 = await d.cli('get', 'test', 'proxyworker', '4');
    t.match(page4, /^HTTP Accounting\nsetup_ok=3 setup_fail=0 conn_ok=0 conn_inp=0$/m);
    t.equal(page4.replace(/^Running time .*$/m, ''), (await d.cli('diagnose', 'test', 'proxyworker', '4')).replace(/^Running time .*$/m, ''));
    const sessions = (await d.json<{ total: number }>('diagnose', 'sys', 'session', 'list')).total;

    t.equal(await d.cli('get', 'test', 'proxyworker', '99'),
      `proxy worker accounting restarted: setup_ok=3 setup_fail=0 before; counters and running time count from now; ${sessions} session(s) kept\n`);
    t.equal((await d.json<{ total: number }>('diagnose', 'sys', 'session', 'list')).total, sessions, 'no session dropped');
    t.equal((await d.json<ProxyWorkerView>('get', 'test', 'proxyworker', '4')).services.HTTP.setupOk, 0);
    t.equal((await curlFetch(topo, http.url)).bytes, 1000);
    const after = await d.json<ProxyWorkerView>('get', 'test', 'proxyworker', '4');
    t.same([after.services.HTTP.setupOk, after.services.HTTP.setupFail], [1, 0]);
    t.ok(after.running_time < 60, 'running time counts from the restart');

    t.match(await d.cli('get', 'test', 'proxyworker', '4444'), /^VDOM\[0\] root\nSessions \d+\/0 \(guaranteed 0\)\nUsers 1\/0\nHTTP Current Connections \d+\n/);
    t.match(await d.cli('get', 'test', 'proxyworker', '1'), /^Worker\[0\]\nMemory\nResident [1-9]\d* \(kb\)\n[\s\S]*\nUsers 1\nFail-open flows 0\n$/);
    await t.rejects(runCli(['get', 'test', 'proxyworker', '5', '--control', d.control]),
      { message: /nfsessiond: proxyworker 5: not supported; supported: 1 \(memory use\), 4 \(sessions and accounting per service\), 99 \(restart of the accounting, sessions stay\), 4444 \(statistics per VDOM\)\n$/ });

    const C = topo.addr.client.v4;
    const noClock = (s: string) => s.replace(/^ {2}(duration|expire) +: \d+$/gm, '');
    const users = await d.cli('diagnose', 'wad', 'user', 'list');
    t.match(users, new RegExp(`^ID: 1, VDOM: root, IPv4: ${C.replace(/\./g, '\\.')}\\n  user name   : ${C.replace(/\./g, '\\.')}\\n`));
    t.match(users, /\nTotal users: 1\n$/);
    t.equal(noClock(await d.cli('diagnose', 'user', 'list')), noClock(users));
    t.equal(await d.cli('diagnose', 'wad', 'user', 'clear', C), 'cleared 1 user(s)\n');
    t.equal(await d.cli('diagnose', 'wad', 'user', 'list'), 'Total users: 0\n');

    // `true` exits without reading: the CLI's first write meets a closed pipe.
    const piped = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" get test proxyworker 4 --control "${d.control}" | true`], { encoding: 'utf8', timeout: 20_000 });
    t.equal(piped.stderr, '');
    t.equal(piped.status, 0);
  });
});
