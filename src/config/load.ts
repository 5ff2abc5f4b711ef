// From config text to the settings the daemon runs with. Every rejected line is reported with
// its file, line and column; a config with any error is not used at all.

import { readFileSync } from 'node:fs';
import { defaultEngineConfig, type EngineConfig, type TtlRule, type VdomSessionSettings } from '../engine/engine-config.js';
import { acceptAllPolicySet, compileDirtyCheck, compilePolicy, type PolicySet, type SessionDirty, type VdomPolicies } from '../engine/policy.js';
import type { RefreshDirection, Verdict } from '../engine/types.js';
import { BLOCKS, TABLES, VDOM_SCOPED } from './blocks.js';
import { readVdomPolicies, type NatCollect } from './firewall.js';
import { natLayout, natMark, type NatLayout, type NatRules } from '../engine/nat.js';
import { readLimits } from './limits.js';
import { readHa, type HaConfig } from './ha.js';
import { readBody, readTable, defaults, type BlockValues, type Entry } from './schema.js';
import { nearOrExpected } from './suggest.js';
import { ConfigError, parseSyntax, type ConfigNode } from './syntax.js';
import { parseListen, type ListenAddress } from '../metrics/listen.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable, type HelperBinding } from '../helpers/registry.js';

export type Hook = 'forward' | 'input' | 'output';

export interface DaemonConfig {
  queue: { first: number; count: number; bypass: boolean; failOpen: boolean; maxlen: number; copyRange: number };
  hooks: Hook[];
  table: string;
  kernelSyncInterval: number;
  controlSocket: string;
  logLevel: string;
  /** Prometheus endpoint (metrics, metrics-listen). */
  metrics: { enabled: boolean; listen: ListenAddress };
  /** state-dir as configured; '' = $STATE_DIRECTORY, else /var/lib/nfsessiond (service/paths.ts). */
  stateDir: string;
  /** Snapshot the table on shutdown and restore it on start. */
  snapshot: boolean;
  /** Seconds between snapshots while running (snapshot-interval); the journal covers the time between. */
  snapshotInterval: number;
  restartUnknown: 'adopt' | 'expire';
  /** Traffic log: start records too, and how many records `execute log display` keeps. */
  trafficLog: { sessionStart: boolean; memoryRecords: number };
  /** VDOM names by index; 0 is root. */
  vdomNames: string[];
  policies: PolicySet;
  /** No `config firewall policy` anywhere: one accept-all policy (id 1) is used. */
  policyDefaulted: boolean;
  engine: EngineConfig;
  /** The kernel's nat chains: VIPs, pools, masquerade (src/engine/nat.ts). */
  nat: NatRules;
  /** config system ha. */
  ha: HaConfig;
}

export class ConfigErrors extends Error {
  constructor(public errors: ConfigError[]) {
    // Reported in file order, whichever check found them first.
    errors.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ConfigErrors';
  }
}

/** Blocks and tables read for one scope: the global part, or one VDOM. */
interface Scope {
  blocks: Map<string, BlockValues>;
  tables: Map<string, Entry[]>;
}

const newScope = (): Scope => ({ blocks: new Map(), tables: new Map() });

function block(path: string, scope: Scope): BlockValues {
  return scope.blocks.get(path) ?? { values: defaults(BLOCKS[path]), tables: {}, positions: {}, valuePositions: {}, present: false };
}

const table = (path: string, scope: Scope): Entry[] => scope.tables.get(path) ?? [];

const knownPaths = () => [...Object.keys(BLOCKS), ...Object.keys(TABLES)].map((p) => `'config ${p}'`).join(', ');

/** Reads one `config <path>` statement into a scope; a block or table given twice amends the first. */
function readStatement(n: ConfigNode, scope: Scope, file: string, errors: ConfigError[], topLevel: boolean): void {
  const path = n.path.join(' ');
  const spec = BLOCKS[path];
  if (spec) {
    const read = readBody(n.body, spec, `'config ${path}'`, file, errors);
    const prev = scope.blocks.get(path);
    if (prev) {
      for (const s of n.body) if (s.kind === 'set' || s.kind === 'unset') prev.values[s.key] = read.values[s.key];
      Object.assign(prev.tables, read.tables);
      Object.assign(prev.positions, read.positions);
      Object.assign(prev.valuePositions, read.valuePositions);
    } else scope.blocks.set(path, { ...read, present: true });
    return;
  }
  const tspec = TABLES[path];
  if (tspec) {
    const entries = readTable(n, tspec, `'config ${path}'`, file, errors);
    const prev = scope.tables.get(path);
    if (!prev) { scope.tables.set(path, entries); return; }
    for (const e of entries) {
      const old = prev.find((x) => x.id === e.id);
      if (e.deleted || old?.deleted) {
        if (old) prev.splice(prev.indexOf(old), 1);
        prev.push(e);
      } else if (old) {
        Object.assign(old.values, e.values);
        Object.assign(old.positions, e.positions);
        Object.assign(old.valuePositions, e.valuePositions);
      } else prev.push(e);
    }
    return;
  }
  // 'global' and 'vdom' open scopes, so they are near misses only at the top of the file.
  const paths = [...Object.keys(BLOCKS), ...Object.keys(TABLES), ...(topLevel ? ['global', 'vdom'] : [])];
  errors.push(new ConfigError(file, { line: n.pos.line, col: n.pos.col + 7 }, `unknown block 'config ${path}': ${nearOrExpected(path, paths, `expected one of ${knownPaths()}`, (p) => `'config ${p}'`)}`));
}

/** The vendor's default helper list amended by `config system session-helper` (edit / delete). */
function readHelpers(entries: Entry[]): HelperBinding[] {
  const list = DEFAULT_HELPER_BINDINGS.map((b) => ({ ...b }));
  for (const e of entries) {
    const id = Number(e.id);
    const i = list.findIndex((b) => b.id === id);
    if (e.deleted) { if (i >= 0) list.splice(i, 1); continue; }
    const b = i >= 0 ? list[i] : { id, name: e.values.name as string, proto: e.values.protocol as number, port: e.values.port as number };
    // Only the keys the entry sets change a default entry, as on the vendor's CLI.
    if ('name' in e.positions) b.name = e.values.name as string;
    if ('protocol' in e.positions) b.proto = e.values.protocol as number;
    if ('port' in e.positions) b.port = e.values.port as number;
    if (i < 0) list.push(b);
  }
  return list.sort((a, b) => a.id - b.id);
}

function readTtl(scope: Scope, file: string, errors: ConfigError[]): { defaultTtl: number; ttlRules: TtlRule[] } {
  const ttl = block('system session-ttl', scope);
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
  return { defaultTtl: ttl.values.default as number, ttlRules };
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
  // Without `config vdom` the file is one domain, root; with it, `config global` holds the
  // global blocks and each `config vdom` / `edit <name>` its own domain's blocks.
  const global = newScope();
  const vdoms = new Map<string, Scope>([['root', newScope()]]);
  const place = (n: ConfigNode, scope: Scope, where: 'global' | 'vdom' | 'top') => {
    const path = n.path.join(' ');
    const scoped = VDOM_SCOPED.has(path);
    if (where === 'global' && scoped) { errors.push(new ConfigError(file, n.pos, `'config ${path}' belongs inside 'config vdom' / 'edit <vdom>', not 'config global'`)); return; }
    if (where === 'vdom' && !scoped && (BLOCKS[path] || TABLES[path])) { errors.push(new ConfigError(file, n.pos, `'config ${path}' is global: put it in 'config global'`)); return; }
    readStatement(n, where === 'top' ? (scoped ? vdoms.get('root')! : global) : scope, file, errors, where === 'top');
  };
  for (const n of nodes) {
    if (n.kind !== 'config') {
      errors.push(new ConfigError(file, n.pos, `'${n.kind}' at top level: expected 'config <path>'`));
      continue;
    }
    const path = n.path.join(' ');
    if (path === 'global') {
      for (const c of n.body) {
        if (c.kind === 'config') place(c, global, 'global');
        else errors.push(new ConfigError(file, c.pos, "'config global' holds 'config <path>' blocks"));
      }
    } else if (path === 'vdom') {
      for (const e of n.body) {
        if (e.kind !== 'edit') { errors.push(new ConfigError(file, e.pos, "'config vdom' holds 'edit <vdom>' entries")); continue; }
        if (!/^[A-Za-z0-9_.-]{1,31}$/.test(e.name)) { errors.push(new ConfigError(file, { line: e.pos.line, col: e.pos.col + 5 }, `bad VDOM name '${e.name}': letters, digits, '_', '.', '-', at most 31`)); continue; }
        let scope = vdoms.get(e.name);
        if (!scope) { scope = newScope(); vdoms.set(e.name, scope); }
        for (const c of e.body) {
          if (c.kind === 'config') place(c, scope, 'vdom');
          else errors.push(new ConfigError(file, c.pos, `'edit ${e.name}' in 'config vdom' holds 'config <path>' blocks`));
        }
      }
    } else {
      place(n, global, 'top');
    }
  }

  const sys = block('system nfsessiond', global).values;
  const hopt = block('system session-helper-options', global).values;
  const helperBindings = readHelpers(table('system session-helper', global));
  const glob = block('system global', global).values;
  const vdomNames = [...vdoms.keys()];
  const ha = readHa(block('system ha', global), file, errors);
  const limits = readLimits({ block: (p) => block(p, global), table: (p) => table(p, global) }, vdomNames, file, errors);

  const interfaceVdom: Record<string, number> = {};
  const interfaces = table('system interface', global);
  for (const e of interfaces) {
    const vd = vdomNames.indexOf(e.values.vdom as string);
    if (vd < 0) errors.push(new ConfigError(file, e.positions.vdom ?? e.pos, `interface '${e.id}': unknown VDOM '${e.values.vdom}' (defined: ${vdomNames.join(', ')})`));
    else interfaceVdom[e.id] = vd;
  }
  const knownInterfaces = interfaces.length ? new Set(interfaces.map((e) => e.id)) : undefined;

  const anyPolicy = [...vdoms.values()].some((v) => v.tables.has('firewall policy'));
  // NAT bits sit below the offload bit; an offload-mark too low for them is an error only where NAT is used.
  let layout: NatLayout | undefined;
  let layoutError: string | undefined;
  try { layout = natLayout(sys['offload-mark'] as number); } catch (e) { layoutError = (e as Error).message; }
  const nat: NatCollect = {
    masquerade: false, pools: [], vips: [],
    mark: (index) => {
      if (layout) return natMark(layout, index);
      if (layoutError) {
        const b = block('system nfsessiond', global);
        errors.push(new ConfigError(file, b.valuePositions['offload-mark']?.[0] ?? b.positions['offload-mark'] ?? { line: 1, col: 1 }, `${layoutError}; a policy uses nat`));
        layoutError = undefined;
      }
      return 0;
    },
  };
  const perVdom: VdomSessionSettings[] = [];
  const dirtyModes: SessionDirty[] = [];
  const policyVdoms: VdomPolicies[] = [];
  for (const [name, scope] of vdoms) {
    const settings = block('system settings', scope).values;
    dirtyModes.push(settings['firewall-session-dirty'] as SessionDirty);
    perVdom.push({ name, ...readTtl(scope, file, errors), tcpSessionWithoutSyn: settings['tcp-session-without-syn'] as boolean });
    policyVdoms.push(readVdomPolicies(name, {
      address: table('firewall address', scope),
      address6: table('firewall address6', scope),
      addrgrp: table('firewall addrgrp', scope),
      serviceCustom: table('firewall service custom', scope),
      serviceGroup: table('firewall service group', scope),
      policy: table('firewall policy', scope),
      ippool: table('firewall ippool', scope),
      vip: table('firewall vip', scope),
    }, settings['implicit-policy'] as 'accept' | 'deny', knownInterfaces, nat, file, errors));
  }
  const policies: PolicySet = {
    vdoms: anyPolicy ? policyVdoms : vdomNames.map((name, i) => (i === 0 ? acceptAllPolicySet().vdoms[0] : { name, rules: [], implicit: 'deny' as const })),
    interfaceVdom,
  };

  const count = sys['queue-count'] as number;
  const first = sys['queue-num'] as number;
  if (first + count - 1 > 65535) {
    const pos = block('system nfsessiond', global).positions['queue-count'] ?? { line: 1, col: 1 };
    errors.push(new ConfigError(file, pos, `queue-num ${first} with queue-count ${count} goes past queue 65535`));
  }
  const offloadMark = sys['offload-mark'] as number;
  if ((offloadMark & (offloadMark - 1)) !== 0) {
    const b = block('system nfsessiond', global);
    errors.push(new ConfigError(file, b.valuePositions['offload-mark']?.[0] ?? b.positions['offload-mark'] ?? { line: 1, col: 1 }, `offload-mark must be a single bit (a power of two), got 0x${offloadMark.toString(16)}`));
  }
  const metricsListen = parseListen(sys['metrics-listen'] as string);
  if ('error' in metricsListen) {
    const b = block('system nfsessiond', global);
    errors.push(new ConfigError(file, b.valuePositions['metrics-listen']?.[0] ?? b.positions['metrics-listen'] ?? { line: 1, col: 1 }, metricsListen.error));
  }
  if (errors.length) throw new ConfigErrors(errors);

  const root = perVdom[0];
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
    metrics: { enabled: sys.metrics as boolean, listen: metricsListen as ListenAddress },
    stateDir: sys['state-dir'] as string,
    snapshot: sys.snapshot as boolean,
    snapshotInterval: glob['snapshot-interval'] as number,
    restartUnknown: sys['restart-unknown-sessions'] as 'adopt' | 'expire',
    trafficLog: { sessionStart: sys['log-session-start'] as boolean, memoryRecords: sys['log-memory-records'] as number },
    vdomNames,
    policies,
    policyDefaulted: !anyPolicy,
    nat: { layout: layout ?? { shift: 0, mask: 0 }, masquerade: nat.masquerade, pools: nat.pools, vips: nat.vips },
    ha,
    engine: defaultEngineConfig({
      defaultTtl: root.defaultTtl,
      ttlRules: root.ttlRules,
      tcpSessionWithoutSyn: root.tcpSessionWithoutSyn,
      vdoms: perVdom,
      tcpHalfOpenTimer: glob['tcp-halfopen-timer'] as number,
      tcpHalfCloseTimer: glob['tcp-halfclose-timer'] as number,
      tcpTimeWaitTimer: glob['tcp-timewait-timer'] as number,
      udpIdleTimer: glob['udp-idle-timer'] as number,
      offload: sys.offload as boolean,
      offloadMark: sys['offload-mark'] as number,
      malformedVerdict: sys['malformed-verdict'] as Verdict,
      policy: compilePolicy(policies, (i) => `if${i}`),
      dirtyCheck: compileDirtyCheck(policies, dirtyModes),
      helpers: new HelperTable(helperBindings),
      helperOptions: { ftpThirdParty: hopt['ftp-third-party'] as boolean, sipMediaAnyPeer: hopt['sip-media-any-peer'] as boolean },
      expectations: {
        timeout: hopt['expectation-timeout'] as number,
        maxPerSession: hopt['max-expectations-per-session'] as number,
        max: hopt['max-expectations'] as number,
        clearChildren: hopt['clear-children'] as boolean,
        streamBuffer: hopt['stream-buffer'] as number,
      },
      ...limits,
    }),
  };
}

/** Equal for two configs with the same policies: a reload looks the sessions up again only when they differ. */
export function policyFingerprint(cfg: DaemonConfig): string {
  return JSON.stringify(cfg.policies, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
}

/** The engine config with policies resolving interface indexes through `ifname` (the daemon's sysfs view). */
export function engineConfigFor(cfg: DaemonConfig, ifname: (index: number) => string): EngineConfig {
  return { ...cfg.engine, policy: compilePolicy(cfg.policies, ifname) };
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
