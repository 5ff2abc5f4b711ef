import { readFileSync } from 'node:fs';
import t from 'tap';
import { configReference } from '../../src/config/reference.js';

t.test("the README's config reference is the one generated from the schema", (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const m = /<!-- config-reference:start -->\n([\s\S]*?)<!-- config-reference:end -->/.exec(readme);
  t.ok(m, 'README has the reference markers');
  t.equal(m?.[1], `${configReference().replace(/\n+$/, '')}\n`, 'run scripts/config-reference.sh after changing src/config/blocks.ts');
  t.end();
});

t.test('every block and key appears with its default', (t) => {
  const ref = configReference();
  t.match(ref, '#### `config system session-ttl` (per VDOM)');
  t.match(ref, '| `refresh-direction` | both \\| outgoing \\| incoming | both |');
  t.match(ref, '#### `config firewall policy` (per VDOM, `edit <id>` entries)');
  t.match(ref, '| `queue-bypass` | enable \\| disable | enable |');
  t.end();
});
