// The operator's config reference, generated from the schema (blocks.ts) so the README cannot
// drift from what the reader accepts; a unit test compares the README section with this output.

import { BLOCKS, TABLES, VDOM_SCOPED } from './blocks.js';
import type { BlockSpec, FieldSpec } from './schema.js';

function typeOf(f: FieldSpec): string {
  switch (f.type) {
    case 'int': return `integer ${f.min}-${f.max}`;
    case 'enum': return f.values.join(' \\| ');
    case 'flag': return 'enable \\| disable';
    case 'string': return 'string';
    case 'strings': return f.values ? `list of ${f.values.join(' \\| ')}` : 'list of names';
  }
}

function defaultOf(f: FieldSpec): string {
  if (f.type === 'flag') return f.default ? 'enable' : 'disable';
  if (f.type === 'strings') return f.default.length ? f.default.join(' ') : '(none)';
  if (f.type === 'int' && f.default > 0xffff && Number.isInteger(f.default)) return `0x${f.default.toString(16).padStart(8, '0')}`;
  return f.default === '' ? '(empty)' : String(f.default);
}

function fieldTable(spec: BlockSpec): string[] {
  const rows = Object.entries(spec.fields).map(([k, f]) => `| \`${k}\` | ${typeOf(f)} | ${defaultOf(f)} | ${f.help} |`);
  return ['| key | value | default | meaning |', '|---|---|---|---|', ...rows];
}

export function configReference(): string {
  const out: string[] = [];
  const scope = (path: string) => (VDOM_SCOPED.has(path) ? 'per VDOM' : 'global');
  for (const [path, spec] of Object.entries(BLOCKS)) {
    out.push(`#### \`config ${path}\` (${scope(path)})`, '', spec.help, '', ...fieldTable(spec), '');
    for (const [name, t] of Object.entries(spec.tables ?? {})) {
      out.push(`\`config ${name}\` inside it holds \`edit <${t.id === 'int' ? 'id' : 'name'}>\` entries: ${t.help}`, '', ...fieldTable(t.entry), '');
    }
  }
  for (const [path, t] of Object.entries(TABLES)) {
    out.push(`#### \`config ${path}\` (${scope(path)}, \`edit <${t.id === 'int' ? 'id' : 'name'}>\` entries)`, '', t.help, '', ...fieldTable(t.entry), '');
  }
  return out.join('\n');
}
