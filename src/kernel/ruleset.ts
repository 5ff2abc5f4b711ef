// Installs and removes exactly the daemon's own netfilter objects, idempotently.
//
// What gets installed
// -------------------
// 1. An nf_tables table `inet <table>` (default `inet nfsessiond`), loaded atomically with
//    `nft -f -` from text rendered by the pure renderTable():
//      - sets pinholes4 / pinholes6 (addr . addr . proto . port, flags timeout): holes the daemon
//        opens for expected connections (helper data channels); elements expire in the kernel.
//      - one base chain per configured hook (forward by default, input/output optional) at
//        priority filter - 10, i.e. before the iptables filter chains (priority filter):
//          a NEW connection that hits a pinhole gets the offload bit in its ct mark, so the queue
//          rule below never sees it; a counter shows how much traffic is offloaded.
//        These rules use ct expressions, and that is also what makes conntrack run at all in a
//        fresh namespace (the kernel only registers conntrack hooks once a rule needs them).
//    The load text is `table X` + `delete table X` + the full table in one transaction, so a
//    re-install swaps the whole table at once: never a moment without rules, never a duplicate.
//    Pinhole elements do not survive a re-install; the daemon re-adds them from its own table
//    (kernel state is a cache of the userspace table).
// 2. The queueing rule. The kernel may lack the nft `queue` statement (CONFIG_NFT_QUEUE unset on
//    the reference machine), and `nft -c` is not a reliable test for kernel support, so at start
//    a throw-away table with a queue rule is really created and deleted (detectNftQueue).
//      - nft queue available: one more rule at the end of each of our chains,
//          ct mark & OFFLOAD != OFFLOAD queue flags bypass to FIRST[-LAST]
//      - otherwise xt NFQUEUE through iptables-nft (and ip6tables): a user chain NFSESSIOND
//        (the table name upper-cased) in the filter table,
//          -A NFSESSIOND -m connmark --mark OFFLOAD/OFFLOAD -j RETURN
//          -A NFSESSIOND -j NFQUEUE --queue-num N | --queue-balance A:B [--queue-bypass]
//        replaced atomically with `iptables-restore --noflush` (declaring a user chain in the
//        restore input flushes just that chain), plus one jump rule at the top of each hook chain
//          -I FORWARD 1 -m comment --comment nfsessiond -j NFSESSIOND
//        added only when `iptables -C` says it is absent, so restarts never stack duplicates.
//        It goes first because the daemon is the firewall: an operator's earlier ACCEPT would
//        otherwise let sessions past it unseen.
//    Either way the queue rule itself skips offloaded packets: an accept in our nft chain does
//    not stop the iptables base chain (every base chain of a hook runs), so "accept offloaded"
//    upstream would not be enough.
//
// Crash safety
// ------------
// The daemon can be SIGKILLed and leave its rules behind. With bypass on (the default) the
// kernel accepts packets for a queue nobody listens on, so a crash degrades to "no policy on new
// sessions" rather than an outage. bypass=false + crash = every new flow through those hooks is
// dropped (a black hole) until the daemon restarts or remove() runs; only choose it when
// fail-closed is really wanted.
//
// remove() deletes our table, our jump rules (repeating -D until none is left, in every hook
// and both families, whatever the current configuration says), then flushes and deletes our
// chains. Missing objects are fine; nothing else is touched, and an iptables filter table that
// does not exist is not created just to look for our rules in it.

import { randomBytes } from 'node:crypto';
import { markLayout, type TimerClass } from '../engine/kernel-cache.js';
import { hasNat, MASQUERADE_INDEX, natMark, type NatRules, type NatVip } from '../engine/nat.js';
import { run, commandLine, CommandError, type ExecOptions, type ExecResult } from './exec.js';

export type Hook = 'forward' | 'input' | 'output';
export type QueueMechanism = 'nft-queue' | 'xt-nfqueue';

export interface RulesetOptions {
  /** nf_tables table name (family inet); the iptables chain is its upper-case form. */
  table: string;
  hooks: Hook[];
  /** NFQUEUE numbers; first === last for a single queue, else load-balanced by flow hash. */
  queues: { first: number; last: number };
  /** Kernel accepts when no process listens on the queue (see "Crash safety"). */
  bypass: boolean;
  /** ct mark bit(s) meaning "offloaded: the kernel handles this connection alone". */
  offloadMark: number;
  families: Array<4 | 6>;
  /** Base chain priority of our nft chains; must run before the iptables filter chains (0). */
  priority: number;
  /** 'auto' probes the kernel; the others force a mechanism (tests, odd kernels). */
  mechanism: 'auto' | QueueMechanism;
  /**
   * First-packet offload (src/engine/kernel-cache.ts): the timer classes to create as ct timeout
   * objects, and the refresh set's element timeout (s). Absent: no first-packet rules.
   */
  firstPacket?: { classes: TimerClass[]; refreshHold: number; refreshSetSize: number };
  /** NAT (src/engine/nat.ts): VIPs as prerouting dnat rules, source NAT selected by the verdict's mark. */
  nat?: NatRules;
}

export const DEFAULT_RULESET_OPTIONS: RulesetOptions = {
  table: 'nfsessiond',
  hooks: ['forward'],
  queues: { first: 0, last: 0 },
  bypass: true,
  offloadMark: 0x00100000,
  families: [4, 6],
  priority: -10,
  mechanism: 'auto',
};

const HOOKS: readonly Hook[] = ['forward', 'input', 'output'];
const XT_HOOK: Record<Hook, string> = { forward: 'FORWARD', input: 'INPUT', output: 'OUTPUT' };

/** Fills defaults and rejects values that would render a broken or ambiguous ruleset. */
export function resolveRulesetOptions(o: Partial<RulesetOptions> = {}): RulesetOptions {
  const r: RulesetOptions = {
    ...DEFAULT_RULESET_OPTIONS,
    ...o,
    queues: { ...(o.queues ?? DEFAULT_RULESET_OPTIONS.queues) },
    hooks: [...new Set(o.hooks ?? DEFAULT_RULESET_OPTIONS.hooks)],
    families: [...new Set(o.families ?? DEFAULT_RULESET_OPTIONS.families)].sort(),
  };
  // The name becomes an nft identifier, an iptables chain (max 28 chars) and a comment.
  if (!/^[a-z][a-z0-9_]{0,27}$/.test(r.table)) throw new Error(`ruleset table name must match [a-z][a-z0-9_]{0,27}: ${JSON.stringify(r.table)}`);
  if (r.hooks.length === 0 || r.hooks.some((h) => !HOOKS.includes(h))) throw new Error(`ruleset hooks must be a non-empty subset of ${HOOKS.join(', ')}: ${JSON.stringify(r.hooks)}`);
  if (r.families.length === 0 || r.families.some((f) => f !== 4 && f !== 6)) throw new Error(`ruleset families must be a non-empty subset of 4, 6: ${JSON.stringify(r.families)}`);
  const { first, last } = r.queues;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last > 65535 || first > last) {
    throw new Error(`ruleset queues must satisfy 0 <= first <= last <= 65535: ${first}..${last}`);
  }
  if (!Number.isInteger(r.offloadMark) || r.offloadMark <= 0 || r.offloadMark > 0xffffffff) throw new Error(`offload mark must be a non-zero 32-bit value: ${r.offloadMark}`);
  if (!Number.isInteger(r.priority) || Math.abs(r.priority) > 1000) throw new Error(`ruleset priority out of range: ${r.priority}`);
  if (r.firstPacket) {
    markLayout(r.offloadMark);
    if (r.priority >= VERDICT_PRIORITY) throw new Error(`ruleset priority must be below ${VERDICT_PRIORITY} with first-packet offload: ${r.priority}`);
  }
  return r;
}

const hex32 = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

function renderPriority(p: number): string {
  if (p === 0) return 'filter';
  return p < 0 ? `filter - ${-p}` : `filter + ${p}`;
}

/** The nft queue statement (only loaded where the kernel has it). */
export function renderNftQueue(o: RulesetOptions): string {
  const to = o.queues.first === o.queues.last ? `${o.queues.first}` : `${o.queues.first}-${o.queues.last}`;
  return `queue ${o.bypass ? 'flags bypass ' : ''}to ${to}`;
}

/** The table definition, exactly as loaded (pure; unit-tested against fixed text). */
export function renderTable(opts: RulesetOptions, mechanism: QueueMechanism): string {
  const o = opts;
  const mark = hex32(o.offloadMark);
  const v4 = o.families.includes(4);
  const v6 = o.families.includes(6);
  const fp = o.firstPacket;
  const lines: string[] = [`table inet ${o.table} {`];
  if (v4) lines.push('\tset pinholes4 {', '\t\ttype ipv4_addr . ipv4_addr . inet_proto . inet_service', '\t\tflags timeout', '\t}');
  if (v6) lines.push('\tset pinholes6 {', '\t\ttype ipv6_addr . ipv6_addr . inet_proto . inet_service', '\t\tflags timeout', '\t}');
  if (fp) {
    lines.push('\tset refresh {', '\t\ttypeof ct id', `\t\tsize ${fp.refreshSetSize}`, '\t\tflags dynamic,timeout', '\t}');
    for (const c of fp.classes) lines.push(...renderTimeoutObject(c).map((l) => `\t${l}`));
  }
  // With one family configured, the other family must pass untouched (not queued, not counted).
  const only = v4 && v6 ? '' : v4 ? 'meta nfproto ipv4 ' : 'meta nfproto ipv6 ';
  // A connection let through a pinhole is learnt from its NEW event; every other one of ours
  // reports only its end (DESTROY, with its counters).
  const events = fp ? 'ct event set new,destroy ' : '';
  for (const hook of o.hooks) {
    lines.push(`\tchain ${hook} {`, `\t\ttype filter hook ${hook} priority ${renderPriority(o.priority)}; policy accept;`);
    if (v4) lines.push(`\t\tct state new ip saddr . ip daddr . meta l4proto . th dport @pinholes4 counter ${events}ct mark set ct mark | ${mark}`);
    if (v6) lines.push(`\t\tct state new ip6 saddr . ip6 daddr . meta l4proto . th dport @pinholes6 counter ${events}ct mark set ct mark | ${mark}`);
    if (fp) {
      const l = markLayout(o.offloadMark);
      const org = hex32(l.offload | l.refreshOrg);
      const rep = hex32(l.offload | l.refreshReply);
      // Only the refreshing direction's packets renew the element: its remaining time dates the last refresh.
      lines.push(`\t\t${only}ct mark & ${org} == ${org} ct direction original update @refresh { ct id timeout ${fp.refreshHold}s }`);
      lines.push(`\t\t${only}ct mark & ${rep} == ${rep} ct direction reply update @refresh { ct id timeout ${fp.refreshHold}s }`);
    }
    lines.push(`\t\t${only}ct mark & ${mark} == ${mark} counter comment "offloaded: not queued"`);
    // The counter is what the queue was offered: the kernel counts neither what it passes on its
    // own when the queue is full (fail-open) nor what it drops then, only that it did not deliver.
    if (mechanism === 'nft-queue') lines.push(`\t\t${only}ct mark & ${mark} != ${mark} counter ${renderNftQueue(o)}`);
    lines.push('\t}');
    if (fp) {
      // After the queue's verdict (the xt NFQUEUE rule runs at priority filter, ours after it).
      lines.push(`\tchain ${hook}_verdict {`, `\t\ttype filter hook ${hook} priority ${renderPriority(VERDICT_PRIORITY)}; policy accept;`);
      lines.push(`\t\t${only}ct state new meta mark & ${mark} == ${mark} jump first_packet`);
      lines.push(`\t\t${only}ct state new ct mark & ${mark} == 0x00000000 ct event set destroy`);
      lines.push('\t}');
    }
  }
  if (fp) {
    const l = markLayout(o.offloadMark);
    const ct = hex32(l.ctBits);
    lines.push('\tchain first_packet {');
    for (const bits of [l.offload, l.offload | l.refreshOrg, l.offload | l.refreshReply]) {
      lines.push(`\t\tmeta mark & ${ct} == ${hex32(bits)} ct mark set ct mark | ${hex32(bits)}`);
    }
    for (const c of fp.classes) lines.push(`\t\t${renderClassRule(o, c)}`);
    lines.push('\t\tct event set destroy');
    lines.push(`\t\tmeta mark set meta mark & ${hex32(~l.all)}`);
    lines.push('\t}');
  }
  if (hasNat(o.nat)) lines.push(...renderNat(o.nat).map((l) => `\t${l}`));
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** One VIP's prerouting rule. */
function renderVip(v: NatVip): string {
  const intf = v.extintf ? `iifname "${v.extintf}" ` : '';
  const pf = v.portForward;
  if (!pf) return `${intf}ip daddr ${v.extip} dnat ip to ${v.mappedip} comment "vip ${v.name}"`;
  const ports = pf.ext.lo === pf.ext.hi ? `${pf.ext.lo}` : `${pf.ext.lo}-${pf.ext.hi}`;
  // A range forwards to the same ports (the config reader refuses other mappings).
  const to = pf.ext.lo === pf.ext.hi ? `:${pf.mapped}` : '';
  return `${intf}ip daddr ${v.extip} ${pf.proto} dport ${ports} dnat ip to ${v.mappedip}${to} comment "vip ${v.name}"`;
}

/**
 * The nat chains (their lines, unindented). The kernel consults them for a connection's first
 * packet only: prerouting before the policy (the daemon then decides on the mapped address, as
 * the vendor's VIPs do), postrouting after the daemon's verdict at forward, whose packet mark
 * names the source NAT.
 */
export function renderNat(n: NatRules): string[] {
  const out: string[] = [];
  if (n.vips.length) {
    out.push('chain nat_prerouting {', '\ttype nat hook prerouting priority dstnat; policy accept;');
    for (const v of n.vips) out.push(`\t${renderVip(v)}`);
    out.push('}');
  }
  if (n.masquerade || n.pools.length) {
    const mask = hex32(n.layout.mask);
    out.push('chain nat_postrouting {', '\ttype nat hook postrouting priority srcnat; policy accept;');
    if (n.masquerade) out.push(`\tmeta mark & ${mask} == ${hex32(natMark(n.layout, MASQUERADE_INDEX))} masquerade`);
    for (const p of n.pools) {
      const range = p.start === p.end ? p.start : `${p.start}-${p.end}`;
      out.push(`\tmeta nfproto ipv4 meta mark & ${mask} == ${hex32(natMark(n.layout, p.index))} snat ip to ${range} comment "ippool ${p.name}"`);
    }
    out.push('}');
  }
  return out;
}

/** Priority of the chains that act on the queue's verdict: after iptables' filter chains. */
export const VERDICT_PRIORITY = 10;

/** A timer class as an nft ct timeout object (its lines, unindented). */
export function renderTimeoutObject(c: TimerClass): string[] {
  const policy = Object.entries(c.policy).map(([k, v]) => `${k}: ${v}`).join(', ');
  return [`ct timeout ${c.name} {`, `\tprotocol ${c.proto === 6 ? 'tcp' : 'udp'}; l3proto ip;`, `\tpolicy = { ${policy} }`, '}'];
}

function renderClassRule(o: RulesetOptions, c: TimerClass): string {
  const l = markLayout(o.offloadMark);
  return `meta mark & ${hex32(l.classMask)} == ${hex32((c.index << l.classShift) >>> 0)} ct timeout set "${c.name}"`;
}

/** `nft -f` input adding timer classes to an installed table (a reload that brought new TTLs). */
export function renderClassAdd(o: RulesetOptions, classes: TimerClass[]): string {
  const out: string[] = [];
  for (const c of classes) {
    const obj = renderTimeoutObject(c);
    out.push(`add ${obj[0].replace('ct timeout ', `ct timeout inet ${o.table} `)}`, ...obj.slice(1));
    // Inserted at the head: the chain's last rule clears the class bits.
    out.push(`insert rule inet ${o.table} first_packet ${renderClassRule(o, c)}`);
  }
  return out.join('\n') + '\n';
}

/**
 * What `nft -f -` gets: create-if-missing, delete, define, in one transaction, so the swap is
 * atomic and works whether or not the table already exists.
 */
export function renderLoad(o: RulesetOptions, mechanism: QueueMechanism): string {
  return `table inet ${o.table}\ndelete table inet ${o.table}\n${renderTable(o, mechanism)}`;
}

export const xtChainName = (o: RulesetOptions): string => o.table.toUpperCase();

/** NFQUEUE target arguments for the xt fallback. */
export function xtQueueArgs(o: RulesetOptions): string[] {
  const q = o.queues.first === o.queues.last
    ? ['--queue-num', `${o.queues.first}`]
    : ['--queue-balance', `${o.queues.first}:${o.queues.last}`];
  return ['-j', 'NFQUEUE', ...q, ...(o.bypass ? ['--queue-bypass'] : [])];
}

/** iptables-restore --noflush input that (re)defines our chain's content atomically. */
export function renderXtRestore(o: RulesetOptions): string {
  const chain = xtChainName(o);
  const mark = hex32(o.offloadMark);
  return [
    '*filter',
    `:${chain} - [0:0]`,
    `-A ${chain} -m connmark --mark ${mark}/${mark} -j RETURN`,
    `-A ${chain} ${xtQueueArgs(o).join(' ')}`,
    'COMMIT',
    '',
  ].join('\n');
}

/** The rule that sends a hook's traffic to our chain (after `-I HOOK 1` / `-C HOOK` / `-D HOOK`). */
export function xtJumpArgs(o: RulesetOptions): string[] {
  return ['-m', 'comment', '--comment', o.table, '-j', xtChainName(o)];
}

export interface InstallResult {
  mechanism: QueueMechanism;
  table: string;
  /** Set for the xt fallback. */
  xtChain?: string;
  hooks: Hook[];
  families: Array<4 | 6>;
  queues: { first: number; last: number };
  bypass: boolean;
  /** Jump rules inserted by this call (0 on a re-install). */
  jumpsAdded: number;
}

/** Runs one command; injectable so the flow can be driven without root. */
export type Runner = (cmd: string, args: string[], opts: ExecOptions) => Promise<ExecResult>;

const NOT_FOUND = /No such file or directory|does not exist|No chain\/target\/match by that name|Bad rule|doesn't exist/i;
const MAX_DELETES = 64;

export class Ruleset {
  readonly options: RulesetOptions;
  private readonly exec: ExecOptions;
  private readonly runner: Runner;

  constructor(options: Partial<RulesetOptions> = {}, env: { netns?: string; runner?: Runner; timeoutMs?: number } = {}) {
    this.options = resolveRulesetOptions(options);
    this.exec = { netns: env.netns, timeoutMs: env.timeoutMs ?? 15000 };
    this.runner = env.runner ?? run;
  }

  private run(cmd: string, args: string[], input?: string): Promise<ExecResult> {
    return this.runner(cmd, args, { ...this.exec, input });
  }

  private async must(cmd: string, args: string[], what: string, input?: string): Promise<string> {
    const r = await this.run(cmd, args, input);
    if (r.code !== 0) throw new CommandError(commandLine(cmd, args, this.exec.netns), r.code, r.stderr, what);
    return r.stdout;
  }

  /**
   * True if the kernel accepts an nft queue rule: creates a uniquely named table holding one,
   * then deletes it. Any failure to create means "no".
   */
  async detectNftQueue(): Promise<boolean> {
    const probe = `${this.options.table}_probe_${process.pid}_${randomBytes(3).toString('hex')}`;
    const text = `table inet ${probe} {\n\tchain c {\n\t\tqueue flags bypass to ${this.options.queues.first}\n\t}\n}\n`;
    const r = await this.run('nft', ['-f', '-'], text);
    if (r.code !== 0) return false;
    await this.must('nft', ['delete', 'table', 'inet', probe], 'deleting the nft queue probe table');
    return true;
  }

  /** Adds timer classes to the installed table. */
  async addClasses(classes: TimerClass[]): Promise<void> {
    if (!classes.length) return;
    await this.must('nft', ['-f', '-'], `adding ct timeout objects to inet ${this.options.table}`, renderClassAdd(this.options, classes));
  }

  async install(): Promise<InstallResult> {
    const o = this.options;
    const mechanism: QueueMechanism = o.mechanism === 'auto'
      ? ((await this.detectNftQueue()) ? 'nft-queue' : 'xt-nfqueue')
      : o.mechanism;
    await this.must('nft', ['-f', '-'], `loading nft table inet ${o.table}`, renderLoad(o, mechanism));
    let jumpsAdded = 0;
    for (const family of [4, 6] as const) {
      if (mechanism === 'xt-nfqueue' && o.families.includes(family)) {
        jumpsAdded += await this.installXt(family);
      } else {
        // Leftovers of an earlier xt install (kernel gained nft queue, or family dropped).
        await this.removeXt(family);
      }
    }
    return {
      mechanism, table: o.table, hooks: [...o.hooks], families: [...o.families], queues: { ...o.queues }, bypass: o.bypass,
      jumpsAdded, ...(mechanism === 'xt-nfqueue' ? { xtChain: xtChainName(o) } : {}),
    };
  }

  private async installXt(family: 4 | 6): Promise<number> {
    const o = this.options;
    const tool = family === 4 ? 'iptables' : 'ip6tables';
    await this.must(`${tool}-restore`, ['--noflush'], `defining ${tool} chain ${xtChainName(o)}`, renderXtRestore(o));
    let added = 0;
    for (const hook of HOOKS) {
      const chain = XT_HOOK[hook];
      if (o.hooks.includes(hook)) {
        const present = await this.run(tool, ['-C', chain, ...xtJumpArgs(o)]);
        if (present.code !== 0) {
          await this.must(tool, ['-I', chain, '1', ...xtJumpArgs(o)], `inserting the ${tool} ${chain} jump to ${xtChainName(o)}`);
          added++;
        }
      } else {
        await this.deleteJumps(tool, chain);
      }
    }
    return added;
  }

  private async deleteJumps(tool: string, chain: string): Promise<void> {
    for (let i = 0; i < MAX_DELETES; i++) {
      const r = await this.run(tool, ['-D', chain, ...xtJumpArgs(this.options)]);
      if (r.code === 0) continue;
      if (NOT_FOUND.test(r.stderr)) return;
      throw new CommandError(commandLine(tool, ['-D', chain, ...xtJumpArgs(this.options)], this.exec.netns), r.code, r.stderr, 'removing a jump rule');
    }
    throw new Error(`${tool} ${chain}: still a jump to ${xtChainName(this.options)} after ${MAX_DELETES} deletions`);
  }

  /** True when the family's iptables-nft filter table exists (looking must not create it). */
  private async xtTableExists(family: 4 | 6): Promise<boolean> {
    const r = await this.run('nft', ['list', 'table', family === 4 ? 'ip' : 'ip6', 'filter']);
    return r.code === 0;
  }

  private async removeXt(family: 4 | 6): Promise<void> {
    if (!(await this.xtTableExists(family))) return;
    const tool = family === 4 ? 'iptables' : 'ip6tables';
    const chain = xtChainName(this.options);
    for (const hook of HOOKS) await this.deleteJumps(tool, XT_HOOK[hook]);
    const exists = await this.run(tool, ['-S', chain]);
    if (exists.code !== 0) return;
    await this.must(tool, ['-F', chain], `flushing ${tool} chain ${chain}`);
    await this.must(tool, ['-X', chain], `deleting ${tool} chain ${chain}`);
  }

  /**
   * Packets the queue rules sent to the queue since install, over every hook and family: the
   * packets offered to us, whether delivered, dropped or passed by the kernel. Undefined when the
   * counters cannot be read.
   */
  async queuedPackets(mechanism: QueueMechanism): Promise<number | undefined> {
    const o = this.options;
    if (mechanism === 'nft-queue') {
      const r = await this.run('nft', ['-j', 'list', 'table', 'inet', o.table]);
      return r.code === 0 ? nftQueueCounter(r.stdout) : undefined;
    }
    let sum = 0;
    for (const family of o.families) {
      const r = await this.run(family === 4 ? 'iptables' : 'ip6tables', ['-w', '-n', '-v', '-x', '-L', xtChainName(o)]);
      if (r.code !== 0) return undefined;
      const n = xtQueueCounter(r.stdout);
      if (n === undefined) return undefined;
      sum += n;
    }
    return sum;
  }

  /** Removes everything install() (or an interrupted detectNftQueue) may have left. */
  async remove(): Promise<void> {
    const o = this.options;
    for (const family of [4, 6] as const) await this.removeXt(family);
    const tables = await this.run('nft', ['list', 'tables', 'inet']);
    if (tables.code !== 0) throw new CommandError(commandLine('nft', ['list', 'tables', 'inet'], this.exec.netns), tables.code, tables.stderr, 'listing nft tables');
    const probe = `${o.table}_probe_`;
    for (const line of tables.stdout.split('\n')) {
      const name = /^table inet (\S+)$/.exec(line.trim())?.[1];
      if (name !== undefined && (name === o.table || name.startsWith(probe))) {
        const r = await this.run('nft', ['delete', 'table', 'inet', name]);
        if (r.code !== 0 && !NOT_FOUND.test(r.stderr)) {
          throw new CommandError(commandLine('nft', ['delete', 'table', 'inet', name], this.exec.netns), r.code, r.stderr, `deleting nft table inet ${name}`);
        }
      }
    }
  }
}

/** Sum of the packet counters of the rules that queue, in `nft -j list table` output. */
export function nftQueueCounter(json: string): number | undefined {
  let doc: { nftables?: Array<{ rule?: { expr?: Array<Record<string, unknown>> } }> };
  try {
    doc = JSON.parse(json) as typeof doc;
  } catch {
    return undefined;
  }
  let sum = 0;
  let found = false;
  for (const item of doc.nftables ?? []) {
    const expr = item.rule?.expr;
    if (!expr || !expr.some((e) => 'queue' in e)) continue;
    const c = expr.find((e) => 'counter' in e)?.counter as { packets?: number } | undefined;
    if (typeof c?.packets !== 'number') continue;
    sum += c.packets;
    found = true;
  }
  return found ? sum : undefined;
}

/** The NFQUEUE rule's packet counter in `iptables -n -v -x -L CHAIN` output. */
export function xtQueueCounter(text: string): number | undefined {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[2] === 'NFQUEUE' && /^\d+$/.test(f[0])) return Number(f[0]);
  }
  return undefined;
}
