import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { parseSyntax, ConfigError } from '../../src/config/syntax.js';
import { configErrors } from '../lib/config-errors.js';

const seed = `
# the seed's UDP 5001 example
config system session-ttl
    set default 3600
    config port
        edit 5001
            set protocol 17
            set timeout 5001
            set refresh-direction incoming
            set start-port 5001
            set end-port 5001
        next
    end
end
`;

const errorsOf = (text: string) => configErrors(text, 'r.conf');

t.test('the seed session-ttl example reads into a TTL rule', (t) => {
  const c = parseConfig(seed, 'seed.conf');
  t.equal(c.engine.defaultTtl, 3600);
  t.same(c.engine.ttlRules, [{ proto: 17, startPort: 5001, endPort: 5001, timeout: 5001, refreshDir: 'incoming' }]);
  t.end();
});

t.test('defaults when the file is empty', (t) => {
  const c = parseConfig('', 'empty.conf');
  t.same(c.queue, { first: 0, count: 1, bypass: true, failOpen: true, maxlen: 4096, copyRange: 65535 });
  t.same(c.hooks, ['forward']);
  t.equal(c.table, 'nfsessiond');
  t.equal(c.engine.defaultTtl, 3600);
  t.equal(c.engine.tcpHalfOpenTimer, 10);
  t.equal(c.engine.tcpHalfCloseTimer, 120);
  t.equal(c.engine.tcpTimeWaitTimer, 1);
  t.equal(c.engine.offloadMark, 0x00100000);
  t.end();
});

t.test('daemon block, quoted strings, hex numbers and comments', (t) => {
  const c = parseConfig(`
config system nfsessiond   # trailing comment
    set queue-num 3
    set queue-count 2
    set queue-bypass disable
    set hooks forward input
    set offload-mark 0x00200000
    set control-socket "/run/my dir/ctl.sock"
end
config system global
    set tcp-halfclose-timer 30
end
config system settings
    set tcp-session-without-syn enable
end`, 'x.conf');
  t.same(c.queue, { first: 3, count: 2, bypass: false, failOpen: true, maxlen: 4096, copyRange: 65535 });
  t.same(c.hooks, ['forward', 'input']);
  t.equal(c.engine.offloadMark, 0x00200000);
  t.equal(c.controlSocket, '/run/my dir/ctl.sock');
  t.equal(c.engine.tcpHalfCloseTimer, 30);
  t.equal(c.engine.tcpSessionWithoutSyn, true);
  t.end();
});

t.test('every rejected line is reported with file, line and column', (t) => {
  const errs = errorsOf(`config system global
    set tcp-halfopen-timer ten
    set tcp-bogus 3
    set tcp-timewait-timer 999
end
config system nope
end`);
  t.same(errs.slice(0, 3), [
    "r.conf:2:28: 'tcp-halfopen-timer' in 'config system global': expected an integer, got 'ten'",
    "r.conf:3:9: unknown key 'tcp-bogus' in 'config system global': expected one of tcp-halfopen-timer, tcp-halfclose-timer, tcp-timewait-timer, udp-idle-timer, av-failopen-session, av-failopen, memory-use-threshold-red, memory-use-threshold-extreme, memory-use-threshold-green, adaptive-timeout-start, adaptive-timeout-end, snapshot-interval",
    "r.conf:4:28: 'tcp-timewait-timer' in 'config system global': 999 is out of range 0-300",
  ]);
  t.equal(errs.length, 4);
  t.match(errs[3], /^r\.conf:6:8: unknown block 'config system nope': expected one of 'config system nfsessiond', .*'config firewall policy'/);
  t.same(errorsOf(`config system session-ttl
  config port
    edit 1
      set refresh-direction sideways
      set start-port 9
      set end-port 8
    next
  end
end`), [
    "r.conf:4:29: 'refresh-direction' in 'config system session-ttl' > config port > edit 1: expected one of both|outgoing|incoming, got 'sideways'",
    'r.conf:6:20: session-ttl port 1: end-port 8 is below start-port 9',
  ]);
  t.same(errorsOf('config system global\n    set snapshot-interval 0\n    set snapshot-interval soon\nend\n'), [
    "r.conf:2:27: 'snapshot-interval' in 'config system global': 0 is out of range 1-86400",
    "r.conf:3:27: 'snapshot-interval' in 'config system global': expected an integer, got 'soon'",
  ]);
  t.end();
});

t.test('structure errors name what was expected', (t) => {
  const one = (text: string) => {
    try { parseSyntax(text, 's.conf'); } catch (e) { return (e as ConfigError).message; }
    return '';
  };
  t.equal(one('config system global\n  edit 1\n  set a b\nend'), "s.conf:4:1: 'end' while 'edit 1' is open: expected 'next' first");
  t.equal(one('config system global\n  set a b\n'), "s.conf:3:1: unexpected end of file: 'config system global' opened at line 1 is not closed");
  t.equal(one('next'), "s.conf:1:1: 'next' without an open 'edit'");
  t.equal(one('config a\n set x "unterminated\nend'), 's.conf:2:8: unterminated double-quoted string');
  t.equal(one('config a\n  set x\nend'), "s.conf:2:8: expected a value after 'set x'");
  t.equal(one('bogus'), "s.conf:1:1: unknown statement 'bogus': expected config, edit, delete, set, unset, next or end");
  t.equal(one('edit 1'), "s.conf:1:1: 'edit' outside a 'config' block");
  t.end();
});

t.test('unset restores the default; a block given twice amends the first', (t) => {
  const c = parseConfig(`config system global
  set tcp-halfopen-timer 5
  set tcp-timewait-timer 3
end
config system global
  unset tcp-halfopen-timer
end`);
  t.equal(c.engine.tcpHalfOpenTimer, 10);
  t.equal(c.engine.tcpTimeWaitTimer, 3);
  t.end();
});
