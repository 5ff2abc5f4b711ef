// Config blocks of limits, users, conserve mode / fail-open and service accounting.

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { defaultLimits } from '../../src/engine/limits.js';
import { configErrors } from '../lib/config-errors.js';

const errorsOf = (text: string) => configErrors(text, 'l.conf');

t.test('defaults: unlimited, av-failopen-session disable, av-failopen pass, 88/95/82, vendor ports', (t) => {
  const c = parseConfig('', 'empty.conf');
  t.equal(c.engine.maxSessions, 0);
  t.same(c.engine.vdomNames, ['root']);
  t.same(c.engine.limits, defaultLimits());
  t.same(c.engine.limits.servicePorts, { HTTP: [80], SMTP: [25], POP3: [110], IMAP: [143], FTP: [21], NNTP: [119] });
  t.end();
});

t.test('the seeds\' blocks read into the engine config', (t) => {
  const c = parseConfig(`
config vdom
    edit root
    next
    edit VDOM_1
    next
end
config global
    config system global
        set av-failopen-session enable
        set av-failopen one-shot
        set memory-use-threshold-red 80
        set memory-use-threshold-extreme 90
        set memory-use-threshold-green 75
    end
    config system resource-limits
        set session 1000
        set proxy 50
        set user-idle-timeout 600
    end
    config system vdom-property
        edit VDOM_1
            set session 200 100
            set proxy 25
        next
        edit root
            set session 500
        next
    end
    config system session-accounting
        set http-port 80 8080
        set ftp-port 2121
    end
    config system nfsessiond
        set memory-sample-interval 2
        set failopen-bypass-timeout 60
    end
end
`, 's.conf');
  t.equal(c.engine.maxSessions, 1000);
  t.same(c.engine.vdomNames, ['root', 'VDOM_1']);
  t.same(c.engine.limits, defaultLimits({
    users: 50,
    vdom: [{ session: 500, sessionGuaranteed: 0, users: 0 }, { session: 200, sessionGuaranteed: 100, users: 25 }],
    userIdleTimeout: 600,
    failopenSession: true,
    failopen: 'one-shot',
    memoryRed: 80,
    memoryExtreme: 90,
    memoryGreen: 75,
    servicePorts: { HTTP: [80, 8080], SMTP: [25], POP3: [110], IMAP: [143], FTP: [2121], NNTP: [119] },
    bypassIdleTimeout: 60,
    memorySampleInterval: 2,
  }));
  t.end();
});

t.test('every rejected line says FILE:LINE:COLUMN', (t) => {
  t.same(errorsOf(`config system global
    set av-failopen sometimes
    set av-failopen-session yes
    set memory-use-threshold-red 99
end
config system resource-limits
    set session -1
    set proxy lots
end`), [
    "l.conf:2:21: 'av-failopen' in 'config system global': expected one of pass|off|one-shot, got 'sometimes'",
    "l.conf:3:29: 'av-failopen-session' in 'config system global': expected enable|disable, got 'yes'",
    "l.conf:4:34: 'memory-use-threshold-red' in 'config system global': 99 is out of range 70-97",
    "l.conf:7:17: 'session' in 'config system resource-limits': -1 is out of range 0-2147483647",
    "l.conf:8:15: 'proxy' in 'config system resource-limits': expected an integer, got 'lots'",
  ]);
  t.same(errorsOf(`config system global
    set memory-use-threshold-red 90
    set memory-use-threshold-green 92
    set memory-use-threshold-extreme 85
end`), [
    'l.conf:2:34: memory-use-threshold-red 90 is above memory-use-threshold-extreme 85',
    'l.conf:3:36: memory-use-threshold-green 92 is above memory-use-threshold-red 90: conserve mode could never be left',
  ]);
  t.same(errorsOf(`config system resource-limits
    set session 100
end
config system vdom-property
    edit nosuch
        set proxy 1
    next
    edit root
        set session 50 60
    next
    edit root
        set session x
    next
end`), [
    "l.conf:5:10: vdom-property 'nosuch': unknown VDOM (defined: root)",
    "l.conf:12:21: vdom-property 'root': session: expected a number 0-2147483647, got 'x'",
  ], 'an entry edited twice is amended: only its last session value is checked');
  t.same(errorsOf(`config system vdom-property
    edit root
        set session 50 60
    next
end`), ["l.conf:3:24: vdom-property 'root': 60 guaranteed sessions are more than its maximum 50"]);
  t.same(errorsOf(`config system resource-limits
    set session 10
end
config system vdom-property
    edit root
        set session 0 20
    next
end`), ["l.conf:6:23: vdom-property 'root': guaranteed sessions of all VDOMs (20) exceed resource-limits session 10"]);
  t.same(errorsOf(`config system session-accounting
    set http-port 80 http
    set smtp-port 25 80
    set imap-port 70000
end`), [
    "l.conf:2:22: 'http-port' in 'config system session-accounting': expected a port 1-65535, got 'http'",
    "l.conf:3:22: 'smtp-port' in 'config system session-accounting': port 80 is already HTTP's",
    "l.conf:4:19: 'imap-port' in 'config system session-accounting': expected a port 1-65535, got '70000'",
  ]);
  t.same(errorsOf(`config system session-accounting
    set pop3-port 25
end`), ["l.conf:2:19: 'pop3-port' in 'config system session-accounting': port 25 is already SMTP's"], 'a clash with a default points at the value written');
  t.same(errorsOf(`config vdom
    edit root
        config system resource-limits
            set session 1
        end
    next
end`), ["l.conf:3:9: 'config system resource-limits' is global: put it in 'config global'"]);
  t.end();
});
