// The daemon: the shell around the pure engine. It owns every side effect: the ruleset, the
// queue, ctnetlink, the control socket, timers and logs. Each queued packet is decoded, decided
// by the engine with the current time, and its effects carried out here.

import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadConfigFile, parseConfig, ConfigErrors, engineConfigFor, policyFingerprint, type DaemonConfig } from './config/load.js';
import { keepRestartOnly } from './config/restart-only.js';
import { controlPath } from './control/protocol.js';
import { ControlServer } from './control/server.js';
import { allHandlers } from './control/handlers/index.js';
import { ControlViews } from './control/views.js';
import { SessionEngine } from './engine/engine.js';
import type { Effect, FlowTuple, Session } from './engine/types.js';
import type { EngineConfig } from './engine/engine-config.js';
import { markLayout, sessionTtls, TimerClasses, type KernelCacheConfig } from './engine/kernel-cache.js';
import { InterfaceNames } from './kernel/interfaces.js';
import { routeInterfaces } from './kernel/routes.js';
import { NextHopCache } from './control/next-hops.js';
import { readMemoryPercent } from './kernel/meminfo.js';
import { createLogger, flushLogger } from './log/logger.js';
import { trafficRecord, type TrafficRecord } from './log/traffic.js';
import { Datapath } from './kernel/datapath.js';
import { readTable } from './state/table-read.js';
import { TableStore } from './state/table-store.js';
import { SNAPSHOT_FILE } from './state/snapshot.js';
import { DecisionCapture } from './capture/decision-capture.js';
import { captureHandlers } from './control/handlers/capture.js';
import { readKernelQueueCounters } from './kernel/datapath.js';
import { formatListen } from './metrics/listen.js';
import { DaemonMetrics, expectationCount } from './metrics/metrics.js';
import { MetricsServer } from './metrics/server.js';
import { ServiceNotifier } from './service/notify.js';
import { resolveStateDir } from './service/paths.js';
import { programVersion } from './service/version.js';
import { HaService } from './ha/ha-service.js';
import { engineTableView } from './ha/engine-view.js';

/** The longest session TTL the config language accepts (s). */
const MAX_TTL = 604800;

/**
 * Offloaded sessions read from the kernel before a scrape, at most: their state (a reply seen, the
 * TCP state) and counters moved in the kernel alone. Past it the rest count as last read.
 */
const SCRAPE_READ_LIMIT = 4096;

function* offloadedSessions(all: Iterable<Session>, limit: number): Iterable<Session> {
  let n = 0;
  for (const s of all) {
    if (!s.offloaded) continue;
    if (n++ >= limit) return;
    yield s;
  }
}

const CONSERVE_MESSAGES = {
  enter: 'entering conserve mode',
  leave: 'leaving conserve mode',
  'one-shot-latched': 'av-failopen one-shot: new sessions pass uninspected until `diagnose sys conserve reset`',
  'one-shot-reset': 'av-failopen one-shot reset: new sessions are inspected again',
} as const;

export interface DaemonOptions {
  configPath?: string;
  controlPath?: string;
  /** Injected for tests; defaults to pino on stdout. */
  logger?: Logger;
  /** `run --state-dir`: wins over the config's state-dir and $STATE_DIRECTORY. */
  stateDir?: string;
  /** systemd notifications (Type=notify); runDaemon makes one from $NOTIFY_SOCKET. null: none. */
  notifier?: ServiceNotifier | null;
}

function readConfig(path: string | undefined): DaemonConfig {
  return path ? loadConfigFile(path) : parseConfig('', '<defaults>');
}

export class Daemon {
  readonly engine: SessionEngine;
  /** Session filter, flow trace and in-memory traffic log of the operator views. */
  readonly views: ControlViews;
  private readonly ifnames = new InterfaceNames();
  private datapath?: Datapath;
  private control?: ControlServer;
  private timers: NodeJS.Timeout[] = [];
  private intervals: NodeJS.Timeout[] = [];
  private stopping = false;
  /** diagnose debug capture: the decided packets with their verdicts, to a pcapng file. */
  readonly capture = new DecisionCapture((i) => this.ifnames.name(i));
  /** Prometheus metrics, read from the engine and the kernel when scraped (src/metrics/). */
  readonly metrics = new DaemonMetrics({
    engine: () => this.engine,
    vdName: (vd) => this.config.vdomNames[vd] ?? String(vd),
    queues: () => readKernelQueueCounters().filter((c) => c.queue >= this.config.queue.first && c.queue < this.config.queue.first + this.config.queue.count),
    mechanism: () => this.datapath?.mechanism,
    version: programVersion(),
    journal: () => this.store?.stats(),
    ha: () => this.ha?.status(Date.now()),
    beforeScrape: () => this.readOffloaded(offloadedSessions(this.engine.sessions(), SCRAPE_READ_LIMIT))
      .catch((err: Error) => this.log.warn({ err: err.message }, 'reading offloaded sessions before a scrape failed: counted as last read')),
  });
  private metricsServer?: MetricsServer;
  /** config system ha in a-p mode: the sync channel and the role from keepalived. */
  private ha?: HaService;
  /** The table on disk (snapshot + journal) while `snapshot` is enabled. */
  private store?: TableStore;
  /** First-packet offload: mark layout and the timer classes the kernel holds (kernel-cache.ts). */
  private readonly kernelCache?: KernelCacheConfig;

  constructor(private config: DaemonConfig, private readonly opts: DaemonOptions, private readonly log: Logger) {
    if (config.engine.offload) {
      const e = config.engine;
      this.kernelCache = {
        layout: markLayout(e.offloadMark),
        classes: new TimerClasses({ halfOpen: e.tcpHalfOpenTimer, halfClose: e.tcpHalfCloseTimer, timeWait: e.tcpTimeWaitTimer }),
        // The longest TTL the config language allows: an element outlives every session's timer.
        refreshHold: MAX_TTL,
      };
      this.ensureClasses(config);
    }
    this.engine = new SessionEngine(this.engineConfig(config));
    this.views = new ControlViews({
      ifname: (i) => this.ifnames.name(i),
      vdOf: (indev) => this.config.policies.interfaceVdom[this.ifnames.name(indev)] ?? 0,
      vdName: (vd) => this.config.vdomNames[vd] ?? String(vd),
    }, config.trafficLog.memoryRecords);
    this.views.tracer.onConsole = (line) => this.log.info({ trace: line }, 'flow trace');
    if (config.policyDefaulted) log.warn('no firewall policy configured: every session is accepted by an accept-all policy (id 1)');
  }

  private engineConfig(cfg: DaemonConfig): EngineConfig {
    const e = engineConfigFor(cfg, (i) => this.ifnames.name(i));
    return this.kernelCache && cfg.engine.offload ? { ...e, kernelCache: this.kernelCache } : e;
  }

  /** Timer classes for every TTL of the config; returns the ones it added. */
  private ensureClasses(cfg: DaemonConfig) {
    if (!this.kernelCache) return [];
    const e = cfg.engine;
    const policyTtls = cfg.policies.vdoms.flatMap((v) => v.rules.map((r) => r.sessionTtl ?? 0));
    return this.kernelCache.classes.ensure(sessionTtls(e, policyTtls), { halfOpen: e.tcpHalfOpenTimer, halfClose: e.tcpHalfCloseTimer, timeWait: e.tcpTimeWaitTimer });
  }

  async start(): Promise<void> {
    const cfg = this.config;
    // The snapshot goes in before the queue delivers a packet: a packet of a restored session
    // must find it (a mid-stream TCP segment of an unknown session would be dropped).
    const restored = cfg.snapshot ? this.restoreSnapshot() : undefined;
    this.datapath = new Datapath(cfg, this.log, {
      decide: (p, now) => {
        this.metrics.packetDecided();
        if (this.capture.active || this.views.tracer.watches(p)) p.watched = true;
        let d = this.engine.handlePacket(p, now);
        // A mid-stream segment we hold no session for may be a flow the peer carried until the
        // traffic moved here, ahead of keepalived's word: the peer's table comes in, and the
        // segment is decided again against it.
        if (d.reason === 'tcp-without-syn' && this.adoptPeer(now, 'mid-stream segment')) d = this.engine.handlePacket(p, now);
        if (this.views.tracer.active) this.views.tracer.packet(p, d);
        if (this.capture.active) this.capture.packet(p, d, now);
        if (d.effects.length) this.apply(d.effects, now);
        return d;
      },
      onKernelReports: (reports, now) => {
        for (const r of reports) {
          const fx = this.engine.kernelReport(r, now);
          if (fx.length) this.apply(fx, now);
        }
      },
      onKernelDump: (reports, now) => this.apply(this.engine.reconcileDump(reports, now), now),
    }, this.kernelCache);
    await this.datapath.start();
    await this.reconcileKernel(restored);
    // After the restore: a peer that asks for our table at once gets the restored one.
    if (cfg.ha.mode === 'a-p') await this.startHa();

    const path = controlPath(this.opts.controlPath, cfg.controlSocket);
    this.control = new ControlServer(path, { ...captureHandlers(this.capture), ...allHandlers({
      engine: this.engine,
      log: this.log,
      now: () => Date.now(),
      apply: (fx, now) => this.apply(fx, now),
      queueStats: () => this.datapath?.queueStats(),
      journalStats: () => this.store?.stats(),
      haStatus: () => this.ha?.status(Date.now()),
      haPeerTable: () => this.ha?.peerTable(Date.now()),
      mechanism: () => this.datapath?.mechanism,
      ifname: (i) => this.ifnames.name(i),
      readKernel: (sessions) => this.readOffloaded(sessions),
      gateways: new NextHopCache(),
    }, this.views) });
    await this.control.listen();
    await this.startMetrics();

    this.timers.push(setInterval(() => {
      const now = Date.now();
      const fx = this.engine.tick(now);
      if (fx.length) this.apply(fx, now);
    }, 1000));
    // The journal's flush: one write and one fsync a second, whatever the setup rate.
    if (this.store) this.timers.push(setInterval(() => this.store?.flush(() => this.engine.snapshot(Date.now()), Date.now()), 1000));
    for (const t of this.timers) t.unref();
    this.sampleMemory();
    this.startIntervals();
    this.log.info({ control: path, mechanism: this.datapath.mechanism, queues: cfg.queue, stateDir: this.stateDir }, 'ready');
    // systemd: ready only now, with the ruleset installed and the queue bound.
    this.opts.notifier?.ready(this.statusText());
    this.opts.notifier?.start(() => this.statusText());
  }

  private async startHa(): Promise<void> {
    const e = this.engine;
    const table = engineTableView(e);
    this.ha = new HaService(this.config.ha, table, this.log, { onLag: (ms) => this.metrics.haLag(ms) });
    // Master: every synced session is ours from here. Backup: the sync goes on as it was.
    this.ha.onRole = (role) => { if (role === 'master') this.adoptPeer(Date.now(), 'keepalived master'); };
    await this.ha.start(Date.now());
  }

  /** When the peer's table was last adopted (ms): a run of unknown segments adopts it once a second at most. */
  private lastAdoptAt = -Infinity;

  /**
   * A takeover: the peer's synced sessions and expectations enter our table (SessionEngine.adoptPeer),
   * the pinholes of its pending expectations open here. Sessions we hold already stay ours, so a
   * second call adopts only what the peer synced since. True when anything was adopted.
   */
  private adoptPeer(now: number, why: string): boolean {
    const synced = this.ha?.sync?.synced;
    if (!synced || !synced.sessions.size) return false;
    // keepalived's word always adopts; unknown segments at most once a second.
    if (why !== 'keepalived master' && now - this.lastAdoptAt < 1000) return false;
    this.lastAdoptAt = now;
    const { effects, report } = this.engine.adoptPeer({ sessions: synced.sessions.values(), expectations: synced.expectations.values(), highestSerial: synced.stats().highestSerial }, now);
    if (effects.length) this.apply(effects, now);
    this.log.info({ why, ...report }, 'HA: peer sessions adopted');
    return report.sessions > 0;
  }

  /** Conserve mode: the engine gets memory use as a sample (its thresholds decide). */
  private sampleMemory(): void {
    const pct = readMemoryPercent();
    if (pct === undefined) return;
    const now = Date.now();
    const fx = this.engine.observeMemory(pct, now);
    if (fx.length) this.apply(fx, now);
  }

  /** The timers whose period the config sets; a reload restarts them with the new periods. */
  private startIntervals(): void {
    for (const t of this.intervals) clearInterval(t);
    this.intervals = [];
    // Offloaded sessions report their end and are read when their timer runs out or a view asks:
    // a periodic dump is only for operators who want it (its cost grows with the table).
    const sync = this.config.kernelSyncInterval;
    if (sync > 0) this.intervals.push(setInterval(() => void this.datapath?.syncKernel(), sync * 1000));
    this.intervals.push(setInterval(() => this.sampleMemory(), this.engine.config.limits.memorySampleInterval * 1000));
    if (this.store) this.intervals.push(setInterval(() => this.compact(), this.config.snapshotInterval * 1000));
    for (const t of this.intervals) t.unref();
  }

  /**
   * Reads the snapshot and the journal after it, loads the table, then compacts: a fresh snapshot
   * of the loaded table and an empty journal, so a second crash right after the start finds it
   * again. Returns the effects of the restore (pinholes to re-open), undefined when none was restored.
   */
  private restoreSnapshot(): Effect[] | undefined {
    const now = Date.now();
    const r = readTable(this.stateDir, now);
    if (r.journal) this.log.warn({ path: r.journal.path, err: r.journal.error }, 'table journal not replayed');
    let effects: Effect[] | undefined;
    let seq = 0;
    if (r.kind === 'bad') {
      this.log.error({ path: r.path, err: r.error, movedTo: r.movedTo }, 'table snapshot unreadable: starting with an empty table');
    } else if (r.kind === 'ok') {
      const j = r.replay;
      if (j.dropped) {
        this.log.warn({ dropped: j.dropped, offset: j.droppedOffset, reason: j.droppedReason, replayed: j.applied },
          'table journal: replayed up to a torn or corrupt record; it and the records after it are dropped');
      }
      const restored = this.engine.restore(r.snapshot, now);
      // The table was written under the policies of its time; packets of restored sessions are
      // decided from here on, so they meet the running policies before any of them.
      effects = [...restored.effects, ...this.recheckPolicies(now, 'table restored')];
      seq = j.lastSeq;
      this.log.info({ path: r.path, savedAt: new Date(r.snapshot.savedAt).toISOString(), crash: r.crash, journalApplied: j.applied, journalSkipped: j.skipped,
        journalDropped: j.dropped, expiryExtended: r.extended, freshHelperStates: r.freshHelpers, ...restored.report }, 'table restored from snapshot');
    }
    this.store = new TableStore(this.stateDir, this.log, seq);
    if (r.kind === 'ok') this.store.started(r.replay.applied, r.replay.dropped);
    this.store.compact(this.engine.snapshot(Date.now()), Date.now());
    return effects;
  }

  /** Sessions the running policies no longer admit end; those another policy admits move to it. */
  private recheckPolicies(now: number, why: string): Effect[] {
    const { effects, report } = this.engine.recheckPolicies(now);
    if (report.ended || report.moved) {
      this.log.warn({ why, ...report }, 'policies changed: sessions no policy admits now ended (with the sessions their expectations became), the others moved to the policy that admits them');
    } else if (report.checked) this.log.info({ why, checked: report.checked }, 'policies changed: every session looked up again is still admitted by its policy');
    return effects;
  }

  /** snapshot-interval: the whole table to disk, the journal emptied. */
  private compact(): void {
    const now = Date.now();
    const snap = this.engine.snapshot(now);
    if (this.store?.compact(snap, now)) this.log.debug({ sessions: snap.sessions.length, expectations: snap.expectations.length }, 'table snapshot written');
  }

  /**
   * Every start lines the kernel up with our table. After a restore: re-opens the pinholes, then
   * SessionEngine.reconcileRestart. Without one (a crash, snapshot off or lost): the entries an
   * earlier run offloaded are decided again against the running policy (reconcileUnowned), so
   * none passes unseen by policy, limits and views.
   */
  private async reconcileKernel(restored: Effect[] | undefined): Promise<void> {
    let now = Date.now();
    if (restored?.length) this.apply(restored, now);
    let conns;
    try {
      conns = await this.datapath!.dumpKernel();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, restored ? 'conntrack dump at start failed: restored sessions are checked by the periodic sync'
        : 'conntrack dump at start failed: connections offloaded by an earlier run are not re-decided');
      return;
    }
    if (!restored) {
      const mark = this.config.engine.offloadMark;
      const ours = conns.filter((c) => c.mark !== undefined && (c.mark & mark) !== 0);
      if (!ours.length) return;
      let routes = new Map<string, number>();
      try {
        routes = await routeInterfaces(ours.flatMap((c) => [c.orig.src, c.orig.dst]));
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'route lookups at start failed: entries are re-decided without their interfaces');
      }
      now = Date.now();
      const u = this.engine.reconcileUnowned(ours, (a) => routes.get(a), now);
      if (u.effects.length) this.apply(u.effects, now);
      this.log.warn({ adopted: u.adopted, cut: u.cut }, 'started without a table: connections offloaded by an earlier run were decided again by the running policy');
      return;
    }
    now = Date.now();
    const r = this.engine.reconcileRestart(conns, this.config.restartUnknown, now);
    if (r.effects.length) this.apply(r.effects, now);
    if (r.ended || r.adopted || r.expired) {
      this.log.info({ ended: r.ended, adopted: r.adopted, expired: r.expired, mode: this.config.restartUnknown }, 'kernel conntrack table reconciled at start');
    }
  }

  /** The stop's compaction: the final table, marked clean (its timers are exact). */
  private writeSnapshot(): void {
    const store = this.store;
    if (!store) return;
    const now = Date.now();
    const snap = this.engine.snapshot(now);
    if (store.compact(snap, now, true)) this.log.info({ path: join(this.stateDir, SNAPSHOT_FILE), sessions: snap.sessions.length, expectations: snap.expectations.length }, 'table snapshot written');
    store.close();
  }

  /** State directory (table snapshot): --state-dir, then state-dir, then $STATE_DIRECTORY, then /var/lib/nfsessiond. */
  get stateDir(): string {
    return resolveStateDir(this.opts.stateDir, this.config.stateDir).dir;
  }

  /** The STATUS= line systemd shows (`systemctl status nfsessiond`). */
  statusText(): string {
    const e = this.engine;
    const exp = expectationCount(e);
    return `${e.size} sessions, setup rate ${e.setupRate(Date.now())}/s, conserve mode ${e.admission.view().conserve ? 'on' : 'off'}${exp ? `, ${exp} expectations` : ''}`;
  }

  /** Serves the metrics at metrics-listen when enabled. A bind failure is logged; the data path runs on. */
  private async startMetrics(): Promise<void> {
    const m = this.config.metrics;
    if (!m.enabled) return;
    const server = new MetricsServer(this.metrics);
    try {
      const a = await server.listen(m.listen);
      this.metricsServer = server;
      this.log.info({ listen: formatListen(a) }, 'metrics endpoint listening');
    } catch (e) {
      this.log.error({ listen: formatListen(m.listen), err: (e as Error).message }, 'metrics endpoint cannot listen: metrics are not served');
    }
  }

  /** After a reload: metrics, systemd (READY=1 again), and the endpoint rebound if its address changed. */
  private reloaded(ok: boolean, prev?: DaemonConfig): void {
    this.metrics.reloaded(ok);
    this.opts.notifier?.ready(this.statusText());
    const m = this.config.metrics;
    if (ok && prev && !this.stopping && (prev.metrics.enabled !== m.enabled || formatListen(prev.metrics.listen) !== formatListen(m.listen))) {
      const old = this.metricsServer;
      this.metricsServer = undefined;
      void (old?.close() ?? Promise.resolve()).then(() => this.startMetrics());
    }
  }

  /** Fresh state and counters of offloaded sessions, for a view or a scrape. */
  readOffloaded(sessions: Iterable<Session>): Promise<void> {
    const items: Array<{ serial: number; orig: FlowTuple; refreshSet: boolean }> = [];
    for (const x of sessions) items.push({ serial: x.serial, orig: x.orig, refreshSet: x.kernelClass !== undefined && x.refreshDir !== 'both' });
    return this.readKernel(items);
  }

  /**
   * Reads offloaded sessions from the kernel and feeds the readings to the engine (timers that ran
   * out, views that need fresh counters, state and expiry).
   */
  async readKernel(items: Array<{ serial: number; orig: FlowTuple; refreshSet: boolean }>): Promise<void> {
    if (!this.datapath || !items.length) return;
    const got = await this.datapath.read(items);
    const now = Date.now();
    const fx: Effect[] = [];
    for (const g of got) fx.push(...this.engine.kernelReading(g.serial, g.reading, now));
    if (fx.length) this.apply(fx, now);
  }

  /** Carries out the engine's effects. Kernel calls are async; their outcome feeds back into the engine. */
  private apply(effects: Effect[], now: number): void {
    let reads: Array<Extract<Effect, { kind: 'kernel-read' }>> | undefined;
    for (const e of effects) {
      this.store?.record(e);
      this.ha?.record(e, now);
      switch (e.kind) {
        case 'kernel-read':
          (reads ??= []).push(e);
          break;
        case 'offload':
          this.datapath!.offload(e.orig, e.mark, e.kernelTimeout).then(
            (ok) => this.engine.offloadResult(e.serial, ok),
            (err: Error) => {
              this.engine.offloadResult(e.serial, false);
              this.log.debug({ serial: e.serial, err: err.message }, 'offload failed');
            },
          );
          break;
        case 'ct-delete':
          this.datapath!.deleteKernelEntry(e.orig).catch((err: Error) => this.log.warn({ serial: e.serial, err: err.message }, 'kernel conntrack delete failed'));
          break;
        case 'session-start':
          if (e.session.logTraffic && this.config.trafficLog.sessionStart) this.traffic(trafficRecord(e.session, 'start', now, (i) => this.ifnames.name(i)));
          break;
        case 'conserve':
          this.log.warn({ event: e.event, reasons: e.reasons, memory: e.memory }, CONSERVE_MESSAGES[e.event]);
          break;
        case 'session-end':
          if (e.session.logTraffic) this.traffic(trafficRecord(e.session, e.reason, e.at, (i) => this.ifnames.name(i)));
          break;
        case 'expect-add': {
          const x = e.expectation;
          this.log.info({ helper: x.helper, kind: x.kind, parent: x.parent, proto: x.proto, src: x.src, dst: x.dst, dport: x.dport, timeout: x.tracksParent ? 0 : x.lifetime }, 'expectation created');
          this.datapath!.pinholeAdd(x, x.tracksParent ? 0 : Math.max(1, x.expireAt - now)).catch((err: Error) =>
            this.log.warn({ helper: x.helper, err: err.message }, 'pinhole add failed: the expected connection goes through the queue instead'));
          break;
        }
        case 'expect-end': {
          const x = e.expectation;
          this.log.debug({ helper: x.helper, kind: x.kind, parent: x.parent, reason: e.reason, child: e.child }, 'expectation ended');
          this.datapath!.pinholeDelete(x).catch((err: Error) => this.log.warn({ helper: x.helper, err: err.message }, 'pinhole delete failed'));
          break;
        }
        case 'expect-refused':
          this.log.warn({ ...e.refusal }, 'expectation refused');
          break;
      }
    }
    if (reads) this.readKernel(reads).catch((err: Error) => this.log.warn({ err: err.message }, 'reading offloaded sessions from the kernel failed'));
  }

  /** A traffic record goes to the log and to the memory kept for `execute log display`. */
  private traffic(rec: TrafficRecord): void {
    this.log.info(rec, 'traffic');
    this.views.trafficLog.push(rec);
  }

  /** SIGHUP: a new config takes effect for new sessions; a bad one is reported and the old one stays. */
  reload(): boolean {
    this.opts.notifier?.reloading();
    try {
      const prev = this.config;
      const { config: next, kept } = keepRestartOnly(prev, readConfig(this.opts.configPath));
      for (const k of kept) this.log.warn({ key: k.key, running: k.running, file: k.file }, `config reload: ${k.key} takes effect only at a restart; the running value stays`);
      this.config = next;
      this.log.level = next.logLevel;
      const added = this.ensureClasses(next);
      this.engine.config = this.engineConfig(next);
      if (this.datapath && policyFingerprint(prev) !== policyFingerprint(next)) {
        const now = Date.now();
        this.apply(this.recheckPolicies(now, 'config reload'), now);
      }
      if (added.length) {
        this.datapath?.addTimerClasses(added).then(
          () => this.log.info({ classes: added.map((c) => c.name) }, 'conntrack timeout objects added for new TTLs'),
          (err: Error) => this.log.error({ err: err.message, classes: added.map((c) => c.name) }, 'adding conntrack timeout objects failed: sessions with these TTLs stay in userspace'),
        );
      }
      this.views.resizeTrafficLog(next.trafficLog.memoryRecords);
      if (!this.stopping && this.datapath && (prev.kernelSyncInterval !== next.kernelSyncInterval || prev.snapshotInterval !== next.snapshotInterval
        || prev.engine.limits.memorySampleInterval !== next.engine.limits.memorySampleInterval)) this.startIntervals();
      this.log.info({ config: this.opts.configPath }, 'config reloaded');
      this.reloaded(true, prev);
      return true;
    } catch (e) {
      this.log.error({ err: e instanceof ConfigErrors ? e.errors.map((x) => x.message) : (e as Error).message }, 'config reload rejected; running config stays in force');
      this.reloaded(false);
      return false;
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of [...this.timers, ...this.intervals]) clearInterval(t);
    this.capture.stop();
    this.opts.notifier?.stop();
    await this.metricsServer?.close();
    await this.control?.close();
    await this.datapath?.stop();
    this.ha?.stop();
    // After the queue is closed nothing changes the table any more.
    if (this.config.snapshot && this.datapath) this.writeSnapshot();
    else this.store?.close();
    this.log.info('stopped');
  }
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const config = readConfig(opts.configPath);
  const log = opts.logger ?? createLogger(config.logLevel);
  if (opts.notifier === undefined) opts.notifier = serviceNotifier(log);
  const daemon = new Daemon(config, opts, log);
  const shutdown = (sig: string) => {
    log.info({ signal: sig }, 'shutting down');
    opts.notifier?.stopping();
    // The log stream is asynchronous: let the last records (and 'stopped') reach stdout first.
    daemon.stop().then(() => flushLogger(log).then(() => process.exit(0)), (e: Error) => {
      log.error({ err: e.message }, 'shutdown failed');
      void flushLogger(log).then(() => process.exit(1));
    });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => daemon.reload());
  try {
    await daemon.start();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'start-up failed');
    opts.notifier?.notify({ STATUS: `start-up failed: ${(e as Error).message}` });
    await daemon.stop().catch(() => undefined);
    throw e;
  }
}

/** A notifier when systemd started us with Type=notify ($NOTIFY_SOCKET), else null. */
function serviceNotifier(log: Logger): ServiceNotifier | null {
  try {
    const n = ServiceNotifier.fromEnvironment(log) ?? null;
    if (n) log.info({ socket: n.socket, watchdogUsec: n.watchdogUsec }, 'systemd notify socket found');
    return n;
  } catch (e) {
    log.error({ err: (e as Error).message }, 'cannot notify systemd: READY=1 will not be sent');
    return null;
  }
}
