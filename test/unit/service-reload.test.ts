// `nfsessiond reload`: the unit's ExecReload. The file is checked before anything is signalled.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import t from 'tap';
import { reloadDaemon } from '../../src/service/reload.js';

t.test('a good file: SIGHUP to the pid; a bad file or a bad pid: an error and no signal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.conf');
  const bad = join(dir, 'bad.conf');
  writeFileSync(good, 'config system nfsessiond\n    set queue-num 3\nend\n');
  writeFileSync(bad, 'config system nfsessiond\n    set queue-num banana\nend\n');
  const sent: Array<[number, string]> = [];
  const kill = (pid: number, sig: NodeJS.Signals) => { sent.push([pid, sig]); };
  t.equal(reloadDaemon({ pid: '4242', config: good }, kill), `reload: SIGHUP sent to 4242 (${good}: OK)`);
  t.same(sent, [[4242, 'SIGHUP']]);
  t.throws(() => reloadDaemon({ pid: '4242', config: bad }, kill), /bad\.conf:2:/);
  t.throws(() => reloadDaemon({ pid: '1', config: good }, kill), /--pid must be the daemon's process id/);
  t.throws(() => reloadDaemon({ pid: '12x' }, kill), /--pid must be/);
  t.equal(sent.length, 1, 'nothing signalled after the first');
  const gone = (_p: number) => { throw Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' }); };
  t.throws(() => reloadDaemon({ pid: '999999' }, gone), /no process 999999/);
});

t.test('a real process gets the SIGHUP', async (t) => {
  const child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => { process.stdout.write('hup\\n'); process.exit(0); }); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);"]);
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  const got = new Promise<string>((r) => child.stdout.on('data', (b: Buffer) => r(String(b))));
  reloadDaemon({ pid: String(child.pid) });
  t.equal((await got).trim(), 'hup');
});
