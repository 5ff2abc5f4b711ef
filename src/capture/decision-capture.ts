// `diagnose debug capture start FILE [count]`: the daemon writes the packets it decides, with
// the verdict it gave, to a pcapng file. Link type raw IP (LINKTYPE_RAW 101): a queued packet
// is an L3 packet without a link header. Each packet carries an opt_comment such as
//   verdict=accept reason=allowed:1 serial=00000002 dir=org in=veth-c out=veth-s
// which Wireshark shows as the packet comment (tshark: -e frame.comment). Writing is
// synchronous through a 64 KiB buffer; the file is complete once the capture stops (count
// reached, `diagnose debug capture stop`, or the daemon stopping).

import { isAbsolute } from 'node:path';
import type { Decision, Packet } from '../engine/types.js';
import { FdSink, LINKTYPE_RAW, PcapngWriter } from './pcap.js';

export interface CaptureStatus {
  active: boolean;
  file?: string;
  /** Packets to write before stopping (0 = until stopped). */
  count: number;
  written: number;
  /** Verdicts of the written packets. */
  accepted: number;
  dropped: number;
  started?: number;
  stopped?: number;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

export class DecisionCapture {
  private writer?: PcapngWriter;
  private sink?: FdSink;
  private ifId = 0;
  private st: CaptureStatus = { active: false, count: 0, written: 0, accepted: 0, dropped: 0 };

  constructor(private readonly ifname: (index: number) => string = (i) => String(i)) {}

  get active(): boolean { return this.st.active; }

  status(): CaptureStatus { return { ...this.st }; }

  start(file: string, count = 0, now = Date.now(), overwrite = false): CaptureStatus {
    if (this.st.active) throw new Error(`a capture is already running into ${this.st.file}: stop it first`);
    if (typeof file !== 'string' || !isAbsolute(file)) throw new Error('capture start: the file must be an absolute path');
    if (!Number.isInteger(count) || count < 0) throw new Error('capture start: count must be an integer >= 0 (0 = until stopped)');
    this.sink = FdSink.open(file, !overwrite);
    this.writer = new PcapngWriter(this.sink, { application: 'nfsessiond' });
    this.ifId = this.writer.addInterface(LINKTYPE_RAW, 'nfqueue');
    this.st = { active: true, file, count, written: 0, accepted: 0, dropped: 0, started: now };
    return this.status();
  }

  /** One decided packet (the daemon's decide hook). */
  packet(p: Packet, d: Decision, now: number): void {
    if (!this.st.active || !this.writer || !p.data) return;
    const s = d.session;
    const comment = `verdict=${d.verdict} reason=${d.reason}` +
      (s ? ` serial=${hex8(s.serial)} dir=${d.dir ?? 'org'}` : '') +
      ` in=${this.ifname(p.indev)} out=${this.ifname(p.outdev)}`;
    this.writer.write(this.ifId, now, p.data, comment);
    this.st.written++;
    if (d.verdict === 'accept') this.st.accepted++;
    else this.st.dropped++;
    if (this.st.count > 0 && this.st.written >= this.st.count) this.stop(now);
  }

  stop(now = Date.now()): CaptureStatus {
    if (this.st.active) {
      this.sink?.close();
      this.writer = undefined;
      this.sink = undefined;
      this.st = { ...this.st, active: false, stopped: now };
    }
    return this.status();
  }
}
