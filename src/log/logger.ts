// The daemon's pino logger. Traffic records carry the vendor's own `date`, `time` and `level`
// fields, so pino's timestamp and level go under other keys (`ts`, `severity`) instead of
// producing duplicate keys in one JSON object.

import pino, { type Logger, type DestinationStream } from 'pino';

//
// Without an explicit destination the logger writes to stdout asynchronously (pino's SonicBoom
// with sync: false): a traffic record per session close is on the daemon's per-connection path,
// and a synchronous write(2) per record (which also blocks when a pipe to journald or a test
// harness is full) is a large part of that cost. Nothing is lost on exit: pino registers the
// stream with on-exit-leak-free, which flushes it synchronously on process 'exit' (the daemon's
// SIGTERM/SIGINT path ends in process.exit) and on 'beforeExit'; flushLogger() is there for
// callers that want the records out at a point of their choosing.

// `,"ts":"<ISO 8601 UTC>"` as new Date().toISOString() writes it, with the text up to the
// second reused while the second lasts: one traffic record per session close makes this a
// per-connection cost.
let tsSecond = Number.NaN;
let tsPrefix = '';
const MS3 = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, '0')}Z"`);

export function isoTimestamp(now = Date.now()): string {
  const sec = Math.floor(now / 1000);
  if (sec !== tsSecond) {
    const iso = new Date(sec * 1000).toISOString();
    // Outside years 0000-9999 toISOString has a sign and six digits: leave those to it.
    if (iso.length !== 24) return `,"ts":"${new Date(now).toISOString()}"`;
    tsSecond = sec;
    tsPrefix = `,"ts":"${iso.slice(0, 20)}`;
  }
  return tsPrefix + MS3[now - sec * 1000];
}

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: isoTimestamp,
    formatters: { level: (label) => ({ severity: label }) },
  }, dest ?? pino.destination({ dest: 1, sync: false }));
}

interface AsyncStream {
  _writing?: boolean;
  once?: (ev: string, fn: () => void) => unknown;
  removeListener?: (ev: string, fn: () => void) => unknown;
}

/**
 * Resolves once the logger's asynchronous stdout stream has written everything it holds (its
 * 'drain'), or after timeoutMs when the reader does not keep up; never rejects. Called on the
 * way out so that a write still in flight is not cut off by process.exit (pino's own exit hook
 * then writes any rest synchronously). Streams that write synchronously resolve at once.
 */
export function flushLogger(log: Logger, timeoutMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    let stream: AsyncStream | undefined;
    try {
      stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as AsyncStream | undefined;
    } catch {
      stream = undefined;
    }
    if (!stream || stream._writing !== true || typeof stream.once !== 'function') {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      stream?.removeListener?.('drain', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    stream.once('drain', done);
  });
}
