// Target: the config language, text to DaemonConfig. It either returns a config or throws
// ConfigErrors whose every error is a ConfigError naming a line and a column inside the text.
// Inputs: configs written from the schema (every block, table and key, with values in and
// out of range), the example configs, and both mutated.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { BLOCKS, TABLES } from '../../../src/config/blocks.js';
import { ConfigErrors, parseConfig } from '../../../src/config/load.js';
import type { BlockSpec, FieldSpec } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/config/syntax.js';
import { ensure } from '../check.js';
import { mutated } from '../mutate.js';
import { REPO_ROOT } from '../seeds.js';
import type { FuzzTarget } from '../target.js';

const FILE = 'fuzz.conf';

function run(text: string): void {
  let errors: ConfigError[];
  try {
    parseConfig(text, FILE);
    return;
  } catch (e) {
    ensure(e instanceof ConfigErrors, () => `threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    errors = e.errors;
  }
  ensure(errors.length > 0, 'ConfigErrors without errors');
  const lines = text.split('\n');
  for (const x of errors) {
    ensure(x instanceof ConfigError && x.file === FILE, 'an error that is not a ConfigError of this file');
    const { line, col } = x.pos;
    ensure(Number.isInteger(line) && line >= 1 && line <= lines.length, () => `error at line ${line} of ${lines.length}: ${x.message}`);
    ensure(Number.isInteger(col) && col >= 1 && col <= lines[line - 1].length + 1, () => `error at ${line}:${col}, the line has ${lines[line - 1].length} characters: ${x.message}`);
    ensure(x.message.startsWith(`${FILE}:${line}:${col}: `), `message does not start with its position: ${x.message}`);
  }
}

const word = fc.oneof(fc.stringMatching(/^[a-z0-9._:/-]{1,12}$/), fc.constantFrom('enable', 'disable', 'all', 'ALL', 'any', 'accept', 'deny', '0x100000', '-1', '4294967296', '1e3', ''));
const quoted = fc.tuple(fc.constantFrom('"', "'"), fc.string({ maxLength: 12 })).map(([q, s]) => `${q}${s.replace(/[\\"'\n]/g, (c) => (c === '\n' ? ' ' : `\\${c}`))}${q}`);

function valueFor(f: FieldSpec | undefined): fc.Arbitrary<string> {
  const other = fc.oneof(word, quoted);
  if (!f) return other;
  switch (f.type) {
    case 'int': return fc.oneof(fc.integer({ min: f.min, max: f.max }).map(String), fc.constantFrom(String(f.min - 1), String(f.max + 1), `0x${f.max.toString(16)}`), other);
    case 'enum': return fc.oneof(fc.constantFrom(...f.values), other);
    case 'flag': return fc.oneof(fc.constantFrom('enable', 'disable'), other);
    case 'string': return other;
    case 'strings': return fc.array(f.values ? fc.oneof(fc.constantFrom(...f.values), word) : word, { minLength: 1, maxLength: 3 }).map((v) => v.join(' '));
  }
}

const indent = (n: number) => '    '.repeat(n);

function setLines(spec: BlockSpec, depth: number): fc.Arbitrary<string[]> {
  const keys = Object.keys(spec.fields);
  // Own keys only: a random word may be 'constructor'.
  const set = fc.oneof(fc.constantFrom(...keys), word).chain((k) => valueFor(Object.hasOwn(spec.fields, k) ? spec.fields[k] : undefined).map((v) => `${indent(depth)}set ${k} ${v}`));
  const unset = fc.constantFrom(...keys).map((k) => `${indent(depth)}unset ${k}`);
  return fc.array(fc.oneof({ arbitrary: set, weight: 5 }, { arbitrary: unset, weight: 1 }), { maxLength: 5 });
}

function block(path: string, spec: BlockSpec): fc.Arbitrary<string> {
  return setLines(spec, 1).map((l) => [`config ${path}`, ...l, 'end'].join('\n'));
}

function table(path: string, spec: BlockSpec, idInt: boolean): fc.Arbitrary<string> {
  const id = idInt ? fc.oneof(fc.integer({ min: 0, max: 30 }).map(String), word) : fc.oneof(word, quoted);
  const entry = fc.tuple(id, setLines(spec, 2)).map(([i, l]) => [`    edit ${i}`, ...l, '    next'].join('\n'));
  const del = id.map((i) => `    delete ${i}`);
  return fc.array(fc.oneof({ arbitrary: entry, weight: 4 }, { arbitrary: del, weight: 1 }), { maxLength: 3 }).map((es) => [`config ${path}`, ...es, 'end'].join('\n'));
}

const statements = (): fc.Arbitrary<string> => fc.oneof(
  ...Object.entries(BLOCKS).map(([p, s]) => block(p, s)),
  ...Object.entries(TABLES).map(([p, t]) => table(p, t.entry, t.id === 'int')),
);

function generated(): fc.Arbitrary<string> {
  const s = statements();
  const flat = fc.array(s, { maxLength: 4 }).map((xs) => xs.join('\n'));
  // The same blocks split into `config global` and `config vdom` / `edit <name>` scopes.
  const scoped = fc.tuple(fc.array(s, { maxLength: 2 }), fc.array(fc.tuple(fc.oneof(fc.constantFrom('root', 'vd1'), word), fc.array(s, { maxLength: 2 })), { maxLength: 2 }))
    .map(([g, vs]) => ['config global', ...g, 'end', 'config vdom', ...vs.flatMap(([n, b]) => [`edit ${n}`, ...b, 'next']), 'end'].join('\n'));
  return fc.oneof({ arbitrary: flat, weight: 3 }, { arbitrary: scoped, weight: 1 });
}

/** The example configs shipped with the daemon. */
function examples(): Buffer[] {
  const dir = join(REPO_ROOT, 'systemd');
  return readdirSync(dir).filter((f) => f.endsWith('.conf')).map((f) => readFileSync(join(dir, f)));
}

function arbitrary(): fc.Arbitrary<string> {
  const gen = generated();
  const pool = examples();
  return fc.oneof(
    { arbitrary: gen, weight: 4 },
    { arbitrary: gen.chain((t) => mutated([Buffer.from(t, 'latin1')], 3).map((b) => b.toString('latin1'))), weight: 3 },
    { arbitrary: mutated(pool, 5).map((b) => b.toString('latin1')), weight: 2 },
    { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
  );
}

export const configTarget: FuzzTarget<string> = {
  name: 'config',
  invariants: [
    'parseConfig returns a config or throws ConfigErrors, nothing else',
    'every error is a ConfigError of the file, at a line 1..lines and a column 1..length+1 of that line',
    'every message starts with FILE:LINE:COLUMN of its position',
  ],
  sources: ['src/config/syntax.ts', 'src/config/schema.ts', 'src/config/load.ts', 'src/config/firewall.ts', 'src/config/limits.ts'],
  arbitrary,
  run,
};
