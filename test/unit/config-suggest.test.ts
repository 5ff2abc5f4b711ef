// A misspelt key, block, statement or value is answered with the nearest valid one, at the
// position config errors always carry; a word that is no near miss gets the list of valid ones.

import t from 'tap';
import { parseSyntax, ConfigError } from '../../src/config/syntax.js';
import { editDistance, nearest } from '../../src/config/suggest.js';
import { configErrors } from '../lib/config-errors.js';

const errorsOf = (text: string) => configErrors(text, 'r.conf');

t.test('edit distance: insertions, deletions, substitutions and neighbour swaps cost 1', (t) => {
  t.equal(editDistance('', ''), 0);
  t.equal(editDistance('abc', ''), 3);
  t.equal(editDistance('', 'abc'), 3);
  t.equal(editDistance('default', 'default'), 0);
  t.equal(editDistance('defalt', 'default'), 1);
  t.equal(editDistance('defaultt', 'default'), 1);
  t.equal(editDistance('defaulx', 'default'), 1);
  t.equal(editDistance('defualt', 'default'), 1, 'a swap of two neighbours is one edit');
  t.equal(editDistance('kitten', 'sitting'), 3);
  // Optimal string alignment: a swapped pair is not edited again ('ca' -> 'ac' -> 'abc' is not allowed).
  t.equal(editDistance('ca', 'abc'), 3);
  t.end();
});

t.test('nearest: within a third of the length of the word (at least 1, at most 3 edits), the first of equals, case aside', (t) => {
  t.equal(nearest('defalt', ['port', 'default']), 'default');
  t.equal(nearest('dfaulx', ['default']), 'default', '2 edits in a 6-letter word');
  t.equal(nearest('dfalt', ['default']), undefined, '2 edits in a 5-letter word');
  t.equal(nearest('dflt', ['default']), undefined, '3 edits in a 4-letter word');
  t.equal(nearest('sett', ['set', 'next']), 'set');
  t.equal(nearest('nxt', ['next', 'set']), 'next');
  t.equal(nearest('ab', ['set', 'end']), undefined);
  t.equal(nearest('Default', ['default']), 'default', 'case alone is a near miss');
  t.equal(nearest('tcp-bogus', ['tcp-halfopen-timer', 'tcp-timewait-timer']), undefined);
  t.equal(nearest('tcp-halfopn-timr', ['tcp-halfopen-timer', 'tcp-halfclose-timer']), 'tcp-halfopen-timer');
  t.equal(nearest('edt', ['set', 'edit']), 'edit', 'the only one at distance 1');
  t.equal(nearest('sat', ['set', 'sit']), 'set', 'equals: the first');
  t.end();
});

t.test('unknown keys and blocks suggest the nearest valid one, with line and column', (t) => {
  t.same(errorsOf(`config system session-ttl
    set defalt 3600
    unset defualt
    config prot
    end
end`), [
    "r.conf:2:9: unknown key 'defalt' in 'config system session-ttl': did you mean 'default'?",
    "r.conf:3:11: unknown key 'defualt' in 'config system session-ttl': did you mean 'default'?",
    "r.conf:4:12: unknown block 'config prot' in 'config system session-ttl': did you mean 'config port'?",
  ]);
  t.same(errorsOf(`config system sesion-ttl
end
config globl
end
config firewall polcy
end`), [
    "r.conf:1:8: unknown block 'config system sesion-ttl': did you mean 'config system session-ttl'?",
    "r.conf:3:8: unknown block 'config globl': did you mean 'config global'?",
    "r.conf:5:8: unknown block 'config firewall polcy': did you mean 'config firewall policy'?",
  ]);
  t.same(errorsOf(`config system session-ttl
  config port
    edit 1
      set protocl 17
    next
  end
end`), ["r.conf:4:11: unknown key 'protocl' in 'config system session-ttl' > config port > edit 1: did you mean 'protocol'?"]);
  t.end();
});

t.test('a word that is no near miss gets the list of valid names instead', (t) => {
  t.same(errorsOf(`config system session-ttl
    set zzz 1
    unset zzz
    config zzz
    end
end`), [
    "r.conf:2:9: unknown key 'zzz' in 'config system session-ttl': expected one of default",
    "r.conf:3:11: unknown key 'zzz' in 'config system session-ttl'",
    "r.conf:4:12: unknown block 'config zzz' in 'config system session-ttl': expected 'config port'",
  ]);
  const [top] = errorsOf('config system qqqqqqqqqqqq\nend');
  t.match(top, /^r\.conf:1:8: unknown block 'config system qqqqqqqqqqqq': expected one of 'config system nfsessiond', .*'config system interface'$/);
  t.notMatch(top, /did you mean/);
  // 'vdom' opens a scope at the top of the file only: inside 'config global' it is no near miss.
  const [inGlobal] = errorsOf('config global\n  config vdm\n  end\nend');
  t.match(inGlobal, /^r\.conf:2:10: unknown block 'config vdm': expected one of /);
  t.end();
});

t.test('misspelt values and statements', (t) => {
  t.same(errorsOf(`config system session-ttl
  config port
    edit 1
      set refresh-direction incomming
    next
  end
end
config system nfsessiond
  set queue-bypass enabel
  set hooks forward inptu
  set queue-bypass sometimes
end`), [
    "r.conf:4:29: 'refresh-direction' in 'config system session-ttl' > config port > edit 1: expected one of both|outgoing|incoming, got 'incomming'; did you mean 'incoming'?",
    "r.conf:9:20: 'queue-bypass' in 'config system nfsessiond': expected enable|disable, got 'enabel'; did you mean 'enable'?",
    "r.conf:10:21: 'hooks' in 'config system nfsessiond': expected any of forward|input|output, got 'inptu'; did you mean 'input'?",
    "r.conf:11:20: 'queue-bypass' in 'config system nfsessiond': expected enable|disable, got 'sometimes'",
  ]);
  const syntax = (text: string) => {
    try { parseSyntax(text, 's.conf'); } catch (e) { return (e as ConfigError).message; }
    return '';
  };
  t.equal(syntax('confg system global\nend'), "s.conf:1:1: unknown statement 'confg': did you mean 'config'?");
  t.equal(syntax('config system global\n  sett a b\nend'), "s.conf:2:3: unknown statement 'sett': did you mean 'set'?");
  t.equal(syntax('bogus'), "s.conf:1:1: unknown statement 'bogus': expected config, edit, delete, set, unset, next or end");
  t.end();
});
