// What each config block accepts: one description per key (type, range, default, help). The
// reader validates against it, and the operator reference is generated from it, so the two
// cannot drift.

import { ConfigError, type ConfigNode, type EditNode, type Node, type Pos, type SetNode } from './syntax.js';
import { alsoDidYouMean, didYouMean, nearOrExpected } from './suggest.js';

export type FieldSpec =
  | { type: 'int'; min: number; max: number; default: number; help: string }
  | { type: 'enum'; values: readonly string[]; default: string; help: string }
  | { type: 'flag'; default: boolean; help: string }
  | { type: 'string'; default: string; help: string }
  | { type: 'strings'; default: string[]; values?: readonly string[]; help: string };

export interface BlockSpec {
  help: string;
  fields: Record<string, FieldSpec>;
  /** Nested `config <name>` tables of `edit` entries. */
  tables?: Record<string, TableSpec>;
}

export interface TableSpec {
  help: string;
  /** The table has entries by default (a `delete` of one is kept as a tombstone entry for the loader). */
  hasDefaults?: boolean;
  /** Entry ids: integers (policy ids, ttl entries) or free names (addresses). */
  id: 'int' | 'name';
  entry: BlockSpec;
}

export type Values = Record<string, number | string | boolean | string[]>;
/** Where each key was set, for errors found after reading (cross-field checks). */
export type Positions = Record<string, Pos>;
/** Where each value of a list key was written, to point at the one that is wrong. */
export type ValuePositions = Record<string, Pos[]>;
export interface Entry { id: string; pos: Pos; values: Values; tables: Record<string, Entry[]>; positions: Positions; valuePositions: ValuePositions; deleted?: boolean }
export interface BlockValues { values: Values; tables: Record<string, Entry[]>; positions: Positions; valuePositions: ValuePositions; present: boolean }

function parseInt10(s: string): number | undefined {
  if (/^0x[0-9a-f]+$/i.test(s)) return Number.parseInt(s, 16);
  if (/^-?\d+$/.test(s)) return Number.parseInt(s, 10);
  return undefined;
}

function readField(spec: FieldSpec, n: SetNode, where: string, file: string): Values[string] {
  const v = n.values;
  const p = n.valuePos;
  const one = () => {
    if (v.length !== 1) throw new ConfigError(file, p[1], `'${n.key}' in ${where} takes one value`);
    return v[0];
  };
  switch (spec.type) {
    case 'int': {
      const x = parseInt10(one());
      if (x === undefined) throw new ConfigError(file, p[0], `'${n.key}' in ${where}: expected an integer, got '${v[0]}'`);
      if (x < spec.min || x > spec.max) throw new ConfigError(file, p[0], `'${n.key}' in ${where}: ${x} is out of range ${spec.min}-${spec.max}`);
      return x;
    }
    case 'enum': {
      const x = one();
      if (!spec.values.includes(x)) throw new ConfigError(file, p[0], `'${n.key}' in ${where}: expected one of ${spec.values.join('|')}, got '${x}'${alsoDidYouMean(x, spec.values)}`);
      return x;
    }
    case 'flag': {
      const x = one();
      if (x !== 'enable' && x !== 'disable') throw new ConfigError(file, p[0], `'${n.key}' in ${where}: expected enable|disable, got '${x}'${alsoDidYouMean(x, ['enable', 'disable'])}`);
      return x === 'enable';
    }
    case 'string':
      return one();
    case 'strings':
      if (spec.values) {
        v.forEach((x, i) => {
          if (!spec.values!.includes(x)) throw new ConfigError(file, p[i], `'${n.key}' in ${where}: expected any of ${spec.values!.join('|')}, got '${x}'${alsoDidYouMean(x, spec.values!)}`);
        });
      }
      return [...v];
  }
}

export function defaults(spec: BlockSpec): Values {
  const out: Values = {};
  for (const [k, f] of Object.entries(spec.fields)) out[k] = Array.isArray(f.default) ? [...f.default] : f.default;
  return out;
}

/**
 * Reads the body of a block against its spec. Problems are appended to `errors` (the reader goes
 * on, so one run reports every rejected line) and the offending statement is skipped.
 */
export function readBody(body: Node[], spec: BlockSpec, where: string, file: string, errors: ConfigError[]): { values: Values; tables: Record<string, Entry[]>; positions: Positions; valuePositions: ValuePositions } {
  const values = defaults(spec);
  const tables: Record<string, Entry[]> = {};
  const positions: Positions = {};
  const valuePositions: ValuePositions = {};
  for (const n of body) {
    try {
      if (n.kind === 'set') {
        const f = spec.fields[n.key];
        if (!f) {
          const keys = Object.keys(spec.fields);
          throw new ConfigError(file, n.valuePos[0] ? { line: n.pos.line, col: n.pos.col + 4 } : n.pos, `unknown key '${n.key}' in ${where}: ${nearOrExpected(n.key, keys, `expected one of ${keys.join(', ')}`)}`);
        }
        values[n.key] = readField(f, n, where, file);
        positions[n.key] = n.valuePos[0];
        valuePositions[n.key] = n.valuePos;
      } else if (n.kind === 'unset') {
        const f = spec.fields[n.key];
        if (!f) {
          const near = didYouMean(n.key, Object.keys(spec.fields));
          throw new ConfigError(file, { line: n.pos.line, col: n.pos.col + 6 }, `unknown key '${n.key}' in ${where}${near ? `: ${near}` : ''}`);
        }
        values[n.key] = Array.isArray(f.default) ? [...f.default] : f.default;
      } else if (n.kind === 'config') {
        const name = n.path.join(' ');
        const t = spec.tables?.[name];
        if (!t) {
          const names = Object.keys(spec.tables ?? {});
          const quote = (x: string) => `'config ${x}'`;
          throw new ConfigError(file, { line: n.pos.line, col: n.pos.col + 7 }, `unknown block 'config ${name}' in ${where}${names.length ? `: ${nearOrExpected(name, names, `expected ${names.map(quote).join(', ')}`, quote)}` : ''}`);
        }
        tables[name] = readTable(n, t, `${where} > config ${name}`, file, errors);
      } else {
        throw new ConfigError(file, n.pos, `'${n.kind}' is not valid directly in ${where}`);
      }
    } catch (e) {
      if (e instanceof ConfigError) errors.push(e);
      else throw e;
    }
  }
  return { values, tables, positions, valuePositions };
}

export function readTable(n: ConfigNode, spec: TableSpec, where: string, file: string, errors: ConfigError[]): Entry[] {
  const entries: Entry[] = [];
  const seen = new Map<string, Entry>();
  for (const c of n.body) {
    if (c.kind === 'delete') {
      const i = entries.findIndex((x) => x.id === c.name);
      if (i >= 0) entries.splice(i, 1);
      seen.delete(c.name);
      if (spec.hasDefaults) entries.push({ id: c.name, pos: c.pos, values: {}, tables: {}, positions: {}, valuePositions: {}, deleted: true });
      continue;
    }
    if (c.kind !== 'edit') {
      errors.push(new ConfigError(file, c.pos, `${where} holds entries: expected 'edit <${spec.id === 'int' ? 'id' : 'name'}>'`));
      continue;
    }
    const e = c as EditNode;
    if (spec.id === 'int' && !/^\d+$/.test(e.name)) {
      errors.push(new ConfigError(file, { line: e.pos.line, col: e.pos.col + 5 }, `${where}: entry id must be a number, got '${e.name}'`));
      continue;
    }
    const body = readBody(e.body, spec.entry, `${where} > edit ${e.name}`, file, errors);
    // Editing an existing id again amends it, as on the vendor's CLI.
    const prev = seen.get(e.name);
    if (prev) {
      for (const s of e.body) if (s.kind === 'set' || s.kind === 'unset') prev.values[s.key] = body.values[s.key];
      Object.assign(prev.tables, body.tables);
      Object.assign(prev.positions, body.positions);
      Object.assign(prev.valuePositions, body.valuePositions);
    } else {
      const entry = { id: e.name, pos: e.pos, ...body };
      seen.set(e.name, entry);
      entries.push(entry);
    }
  }
  return entries;
}
