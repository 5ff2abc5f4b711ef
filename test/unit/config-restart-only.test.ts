// A reload keeps the running value of keys only a restart can apply, and names them.
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { keepRestartOnly } from '../../src/config/restart-only.js';

t.test('restart-only keys keep their running values; the rest come from the file', async (t) => {
  const running = parseConfig('config system nfsessiond\n    set queue-num 0\n    set log-level info\nend\n');
  const file = parseConfig([
    'config system nfsessiond',
    '    set queue-num 4',
    '    set queue-count 2',
    '    set offload-mark 0x00080000',
    '    set table nfs2',
    '    set log-level debug',
    '    set kernel-sync-interval 7',
    'end',
    'config system global',
    '    set snapshot-interval 5',
    'end',
    '',
  ].join('\n'));
  const { config, kept } = keepRestartOnly(running, file);
  t.same(kept, [
    { key: 'queue-num', running: 0, file: 4 },
    { key: 'queue-count', running: 1, file: 2 },
    { key: 'table', running: running.table, file: 'nfs2' },
    { key: 'offload-mark', running: `0x${running.engine.offloadMark.toString(16).padStart(8, '0')}`, file: '0x00080000' },
  ]);
  t.same([config.queue.first, config.queue.count, config.table, config.engine.offloadMark], [0, 1, running.table, running.engine.offloadMark]);
  t.same([config.logLevel, config.kernelSyncInterval, config.snapshotInterval], ['debug', 7, 5], 'keys a reload applies come from the file');
  t.equal(running.snapshotInterval, 60, 'snapshot-interval defaults to a minute');
  t.same(keepRestartOnly(running, parseConfig('config system nfsessiond\n    set queue-num 0\nend\n')).kept, [], 'unchanged: nothing kept');
});
