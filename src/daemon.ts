// The daemon: the shell around the pure engine. It owns every side effect: the ruleset, the
// queue, ctnetlink, the control socket, timers and logs. Each queued packet is decoded, decided
// by the engine with the current time, and its effects carried out here.

import type { Logger } from 'pino';
import { loadConfigFile, parseConfig, ConfigErrors, engineConfigFor, type DaemonConfig } from './config/load.js';
import { controlPath } from './control/protocol.js';
import { ControlServer } from './control/server.js';
import { allHandlers } from './control/handlers/index.js';
import { ControlViews } from './control/views.js';
import { SessionEngine } from './engine/engine.js';
import type { Effect } from './engine/types.js';
import { InterfaceNames } from './kernel/interfaces.js';
import { readMemoryPercent } from './kernel/meminfo.js';
import { createLogger, flushLogger } from './log/logger.js';
import { trafficRecord, type TrafficRecord } from './log/traffic.js';
import { Datapath } from './kernel/datapath.js';

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
  private stopping = false;

  constructor(private config: DaemonConfig, private readonly opts: DaemonOptions, private readonly log: Logger) {
    this.engine = new SessionEngine(engineConfigFor(config, (i) => this.ifnames.name(i)));
    this.views = new ControlViews({
      ifname: (i) => this.ifnames.name(i),
      vdOf: (indev) => this.config.policies.interfaceVdom[this.ifnames.name(indev)] ?? 0,
      vdName: (vd) => this.config.vdomNames[vd] ?? String(vd),
    }, config.trafficLog.memoryRecords);
    this.views.tracer.onConsole = (line) => this.log.info({ trace: line }, 'flow trace');
    if (config.policyDefaulted) log.warn('no firewall policy configured: every session is accepted by an accept-all policy (id 1)');
  }

  async start(): Promise<void> {
    const cfg = this.config;
    this.datapath = new Datapath(cfg, this.log, {
      decide: (p, now) => {
        const d = this.engine.handlePacket(p, now);
        if (this.views.tracer.active) this.views.tracer.packet(p, d);
        if (d.effects.length) this.apply(d.effects, now);
        return d.verdict;
      },
      onKernelReports: (reports, now) => {
        for (const r of reports) {
          const fx = this.engine.kernelReport(r, now);
          if (fx.length) this.apply(fx, now);
        }
      },
      onKernelDump: (reports, now) => this.apply(this.engine.reconcileDump(reports, now), now),
    });
    await this.datapath.start();

    const path = controlPath(this.opts.controlPath, cfg.controlSocket);
    this.control = new ControlServer(path, allHandlers({
      engine: this.engine,
      log: this.log,
      now: () => Date.now(),
      apply: (fx, now) => this.apply(fx, now),
      queueStats: () => this.datapath?.queueStats(),
      mechanism: () => this.datapath?.mechanism,
      ifname: (i) => this.ifnames.name(i),
    }, this.views));
    await this.control.listen();

    this.timers.push(setInterval(() => {
      const now = Date.now();
      const fx = this.engine.tick(now);
      if (fx.length) this.apply(fx, now);
    }, 1000));
    this.timers.push(setInterval(() => void this.datapath?.syncKernel(), cfg.kernelSyncInterval * 1000));
    // Conserve mode: the engine gets memory use as a sample (its thresholds decide).
    const sampleMemory = () => {
      const pct = readMemoryPercent();
      if (pct === undefined) return;
      const now = Date.now();
      const fx = this.engine.observeMemory(pct, now);
      if (fx.length) this.apply(fx, now);
    };
    sampleMemory();
    this.timers.push(setInterval(sampleMemory, this.engine.config.limits.memorySampleInterval * 1000));
    for (const t of this.timers) t.unref();
    this.log.info({ control: path, mechanism: this.datapath.mechanism, queues: cfg.queue }, 'ready');
  }

  /** Carries out the engine's effects. Kernel calls are async; their outcome feeds back into the engine. */
  private apply(effects: Effect[], now: number): void {
    for (const e of effects) {
      switch (e.kind) {
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
      }
    }
  }

  /** A traffic record goes to the log and to the memory kept for `execute log display`. */
  private traffic(rec: TrafficRecord): void {
    this.log.info(rec, 'traffic');
    this.views.trafficLog.push(rec);
  }

  /** SIGHUP: a new config takes effect for new sessions; a bad one is reported and the old one stays. */
  reload(): boolean {
    try {
      const next = readConfig(this.opts.configPath);
      this.config = next;
      this.engine.config = engineConfigFor(next, (i) => this.ifnames.name(i));
      this.views.resizeTrafficLog(next.trafficLog.memoryRecords);
      this.log.info({ config: this.opts.configPath }, 'config reloaded');
      return true;
    } catch (e) {
      this.log.error({ err: e instanceof ConfigErrors ? e.errors.map((x) => x.message) : (e as Error).message }, 'config reload rejected; running config stays in force');
      return false;
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.control?.close();
    await this.datapath?.stop();
    this.log.info('stopped');
  }
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const config = readConfig(opts.configPath);
  const log = opts.logger ?? createLogger(config.logLevel);
  const daemon = new Daemon(config, opts, log);
  const shutdown = (sig: string) => {
    log.info({ signal: sig }, 'shutting down');
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
    await daemon.stop().catch(() => undefined);
    throw e;
  }
}
