// The vendor's config syntax: `config <path>` / `edit <id|name>` / `set <key> <values...>` /
// `unset <key>` / `next` / `end`, nested, `#` comments, single or double quoted strings with
// backslash escapes. This module only builds the tree; what keys mean is schema.ts's job.

import { nearOrExpected } from './suggest.js';

const STATEMENTS = ['config', 'edit', 'delete', 'set', 'unset', 'next', 'end'];

export interface Pos { line: number; col: number }

export interface SetNode { kind: 'set'; key: string; values: string[]; pos: Pos; valuePos: Pos[] }
export interface UnsetNode { kind: 'unset'; key: string; pos: Pos }
export interface EditNode { kind: 'edit'; name: string; body: Node[]; pos: Pos }
export interface ConfigNode { kind: 'config'; path: string[]; body: Node[]; pos: Pos }
/** `delete <id>` in a table: removes that entry, including one the table has by default. */
export interface DeleteNode { kind: 'delete'; name: string; pos: Pos }
export type Node = SetNode | UnsetNode | EditNode | ConfigNode | DeleteNode;

export class ConfigError extends Error {
  constructor(public file: string, public pos: Pos, public detail: string) {
    super(`${file}:${pos.line}:${pos.col}: ${detail}`);
    this.name = 'ConfigError';
  }
}

interface Token { text: string; pos: Pos }

/** Splits one line into words, honouring quotes; returns undefined for blank/comment lines. */
function tokenize(line: string, lineNo: number, file: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const ch = line[i];
    if (ch === ' ' || ch === '\t' || ch === '\r') { i++; continue; }
    if (ch === '#') break;
    const start = i;
    let text = '';
    if (ch === '"' || ch === "'") {
      i++;
      let closed = false;
      while (i < line.length) {
        const c = line[i];
        if (c === '\\' && i + 1 < line.length) { text += line[i + 1]; i += 2; continue; }
        if (c === ch) { closed = true; i++; break; }
        text += c;
        i++;
      }
      if (!closed) throw new ConfigError(file, { line: lineNo, col: start + 1 }, `unterminated ${ch === '"' ? 'double' : 'single'}-quoted string`);
    } else {
      while (i < line.length && !' \t\r#'.includes(line[i])) {
        if (line[i] === '"' || line[i] === "'") {
          throw new ConfigError(file, { line: lineNo, col: i + 1 }, 'quote inside a word: separate the quoted string with a space');
        }
        text += line[i++];
      }
    }
    out.push({ text, pos: { line: lineNo, col: start + 1 } });
  }
  return out;
}

/** Parses text into a list of top-level nodes. Throws ConfigError with the line and column of the first problem. */
export function parseSyntax(text: string, file = '<config>'): Node[] {
  const lines = text.split('\n');
  const root: Node[] = [];
  // Stack of open blocks; the body of the innermost receives statements.
  const stack: Array<{ node: ConfigNode | EditNode | null; body: Node[] }> = [{ node: null, body: root }];
  const top = () => stack[stack.length - 1];

  for (let ln = 0; ln < lines.length; ln++) {
    const toks = tokenize(lines[ln], ln + 1, file);
    if (toks.length === 0) continue;
    const [kw, ...args] = toks;
    const cur = top();
    switch (kw.text) {
      case 'config': {
        if (args.length === 0) throw new ConfigError(file, kw.pos, "expected a path after 'config' (e.g. 'config system session-ttl')");
        const node: ConfigNode = { kind: 'config', path: args.map((a) => a.text), body: [], pos: kw.pos };
        cur.body.push(node);
        stack.push({ node, body: node.body });
        break;
      }
      case 'edit': {
        if (cur.node?.kind !== 'config') throw new ConfigError(file, kw.pos, "'edit' outside a 'config' block");
        if (args.length !== 1) throw new ConfigError(file, args[1]?.pos ?? kw.pos, "expected exactly one id or name after 'edit'");
        const node: EditNode = { kind: 'edit', name: args[0].text, body: [], pos: kw.pos };
        cur.body.push(node);
        stack.push({ node, body: node.body });
        break;
      }
      case 'delete': {
        if (cur.node?.kind !== 'config') throw new ConfigError(file, kw.pos, "'delete' outside a 'config' table");
        if (args.length !== 1) throw new ConfigError(file, args[1]?.pos ?? kw.pos, "expected exactly one id or name after 'delete'");
        cur.body.push({ kind: 'delete', name: args[0].text, pos: kw.pos });
        break;
      }
      case 'next': {
        if (cur.node?.kind !== 'edit') throw new ConfigError(file, kw.pos, "'next' without an open 'edit'");
        if (args.length) throw new ConfigError(file, args[0].pos, "unexpected word after 'next'");
        stack.pop();
        break;
      }
      case 'end': {
        if (cur.node?.kind === 'edit') throw new ConfigError(file, kw.pos, `'end' while 'edit ${cur.node.name}' is open: expected 'next' first`);
        if (cur.node?.kind !== 'config') throw new ConfigError(file, kw.pos, "'end' without an open 'config'");
        if (args.length) throw new ConfigError(file, args[0].pos, "unexpected word after 'end'");
        stack.pop();
        break;
      }
      case 'set': {
        if (!cur.node) throw new ConfigError(file, kw.pos, "'set' outside a 'config' block");
        if (args.length === 0) throw new ConfigError(file, { line: kw.pos.line, col: kw.pos.col + 3 }, "expected a key after 'set'");
        if (args.length === 1) throw new ConfigError(file, { line: args[0].pos.line, col: args[0].pos.col + args[0].text.length }, `expected a value after 'set ${args[0].text}'`);
        cur.body.push({ kind: 'set', key: args[0].text, values: args.slice(1).map((a) => a.text), pos: kw.pos, valuePos: args.slice(1).map((a) => a.pos) });
        break;
      }
      case 'unset': {
        if (!cur.node) throw new ConfigError(file, kw.pos, "'unset' outside a 'config' block");
        if (args.length !== 1) throw new ConfigError(file, args[1]?.pos ?? kw.pos, "expected exactly one key after 'unset'");
        cur.body.push({ kind: 'unset', key: args[0].text, pos: kw.pos });
        break;
      }
      default:
        throw new ConfigError(file, kw.pos, `unknown statement '${kw.text}': ${nearOrExpected(kw.text, STATEMENTS, 'expected config, edit, delete, set, unset, next or end')}`);
    }
  }
  if (stack.length > 1) {
    const open = top().node!;
    const what = open.kind === 'edit' ? `'edit ${open.name}'` : `'config ${open.path.join(' ')}'`;
    throw new ConfigError(file, { line: lines.length, col: 1 }, `unexpected end of file: ${what} opened at line ${open.pos.line} is not closed`);
  }
  return root;
}
