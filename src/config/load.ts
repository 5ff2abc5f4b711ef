// From config text to the settings the daemon runs with. Every rejected line is reported with
// its file, line and column; a config with any error is not used at all.

import { readFileSync } from 'node:fs';
import { defaultEngineConfig, type EngineConfig, type TtlRule } from '../engine/engine-config.js';
import type { RefreshDirection, Verdict } from '../engine/types.js';
import { BLOCKS } from './blocks.js';
import { readBody, defaults, type BlockValues } from './schema.js';
import { ConfigError, parseSyntax } from './syntax.js';

export type Hook = 'forward' | 'input' | 'output';

export interface DaemonConfig {
  queue: { first: number; count: number; bypass: boolean; failOpen: boolean; maxlen: number; copyRange: number };
  hooks: Hook[];
  table: string;
  kernelSyncInterval: number;
  controlSocket: string;
  logLevel: string;
  engine: EngineConfig;
}

export class ConfigErrors extends Error {
  constructor(public errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ConfigErrors';
  }
}

function block(path: string, found: Map<string, BlockValues>): BlockValues {
  return found.get(path) ?? { values: defaults(BLOCKS[path]), tables: {}, positions: {}, present: false };
}

export function parseConfig(text: string, file = '<config>'): DaemonConfig {
  const errors: ConfigError[] = [];
  let nodes;
  try {
    nodes = parseSyntax(text, file);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigErrors([e]);
    throw e;
  }
  const found = new Map<string, BlockValues>();
  for (const n of nodes) {
    if (n.kind !== 'config') {
      errors.push(new ConfigError(file, n.pos, `'${n.kind}' at top level: expected 'config <path>'`));
      continue;
    }
    const path = n.path.join(' ');
    const spec = BLOCKS[path];
    if (!spec) {
      errors.push(new ConfigError(file, { line: n.pos.line, col: n.pos.col + 7 }, `unknown block 'config ${path}': expected one of ${Object.keys(BLOCKS).map((p) => `'config ${p}'`).join(', ')}`));
      continue;
    }
    const prev = found.get(path);
    const read = readBody(n.body, spec, `'config ${path}'`, file, errors);
    if (prev) {
      // A block given twice amends the first, as on the vendor's CLI.
      for (const s of n.body) if (s.kind === 'set' || s.kind === 'unset') prev.values[s.key] = read.values[s.key];
      Object.assign(prev.tables, read.tables);
      Object.assign(prev.positions, read.positions);
    } else found.set(path, { ...read, present: true });
  }

  const sys = block('system nfsessiond', found).values;
  const ttl = block('system session-ttl', found);
  const glob = block('system global', found).values;
  const settings = block('system settings', found).values;

  const ttlRules: TtlRule[] = [];
  for (const e of ttl.tables.port ?? []) {
    const r: TtlRule = {
      proto: e.values.protocol as number,
      startPort: e.values['start-port'] as number,
      endPort: e.values['end-port'] as number,
      timeout: e.values.timeout as number,
      refreshDir: e.values['refresh-direction'] as RefreshDirection,
    };
    if (r.startPort > r.endPort) {
      errors.push(new ConfigError(file, e.positions['end-port'] ?? e.pos, `session-ttl port ${e.id}: end-port ${r.endPort} is below start-port ${r.startPort}`));
    }
    ttlRules.push(r);
  }
  const count = sys['queue-count'] as number;
  const first = sys['queue-num'] as number;
  if (first + count - 1 > 65535) {
    const pos = block('system nfsessiond', found).positions['queue-count'] ?? { line: 1, col: 1 };
    errors.push(new ConfigError(file, pos, `queue-num ${first} with queue-count ${count} goes past queue 65535`));
  }
  if (errors.length) throw new ConfigErrors(errors);

  return {
    queue: {
      first,
      count,
      bypass: sys['queue-bypass'] as boolean,
      failOpen: sys['queue-fail-open'] as boolean,
      maxlen: sys['queue-maxlen'] as number,
      copyRange: sys['copy-range'] as number,
    },
    hooks: sys.hooks as Hook[],
    table: sys.table as string,
    kernelSyncInterval: sys['kernel-sync-interval'] as number,
    controlSocket: sys['control-socket'] as string,
    logLevel: sys['log-level'] as string,
    engine: defaultEngineConfig({
      defaultTtl: ttl.values.default as number,
      ttlRules,
      tcpHalfOpenTimer: glob['tcp-halfopen-timer'] as number,
      tcpHalfCloseTimer: glob['tcp-halfclose-timer'] as number,
      tcpTimeWaitTimer: glob['tcp-timewait-timer'] as number,
      offload: sys.offload as boolean,
      offloadMark: sys['offload-mark'] as number,
      malformedVerdict: sys['malformed-verdict'] as Verdict,
      tcpSessionWithoutSyn: settings['tcp-session-without-syn'] as boolean,
    }),
  };
}

export function loadConfigFile(path: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigErrors([new ConfigError(path, { line: 0, col: 0 }, `cannot read: ${(e as Error).message}`)]);
  }
  return parseConfig(text, path);
}
