// The files shared with keepalived: the notify FIFO it writes its state lines to, and the track
// file it reads our hold-back value from.
//
// The FIFO is opened read-write: the daemon then always holds a writer itself, so keepalived
// restarting (closing its end) is no end of file and the FIFO never has to be reopened.
// The track file is replaced by a rename: keepalived 2.2.7 (trackers/track_file.c) watches it
// with inotify for IN_CLOSE_WRITE | IN_DELETE | IN_MOVE and reads the number with strtol, so it
// never sees a half-written value.

import { spawnSync } from 'node:child_process';
import { constants, existsSync, mkdirSync, openSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { dirname } from 'node:path';

export class NotifyFifo {
  private sock?: Socket;
  private partial = '';

  constructor(private readonly path: string) {}

  /** Creates the FIFO when it is missing and calls `onLine` for every line keepalived writes. */
  open(onLine: (line: string) => void): void {
    mkdirSync(dirname(this.path), { recursive: true });
    if (!existsSync(this.path)) {
      const r = spawnSync('mkfifo', ['-m', '0600', this.path], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mkfifo ${this.path}: ${r.stderr || r.error?.message}`);
    } else if (!statSync(this.path).isFIFO()) {
      throw new Error(`${this.path} exists and is not a FIFO`);
    }
    const fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
    this.sock = new Socket({ fd, readable: true, writable: false });
    this.sock.setEncoding('utf8');
    this.sock.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      for (const l of parts) if (l.trim()) onLine(l);
    });
    this.sock.unref();
  }

  close(): void {
    this.sock?.destroy();
    this.sock = undefined;
  }
}

export class TrackFile {
  private last?: number;

  constructor(private readonly path: string) {}

  /** Writes the value when it changed; true when it wrote. */
  write(value: number): boolean {
    if (value === this.last) return false;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, `${value}\n`, { mode: 0o644 });
    renameSync(tmp, this.path);
    this.last = value;
    return true;
  }
}
