// The daemon's pino logger. Traffic records carry the vendor's own `date`, `time` and `level`
// fields, so pino's timestamp and level go under other keys (`ts`, `severity`) instead of
// producing duplicate keys in one JSON object.

import pino, { type Logger, type DestinationStream } from 'pino';

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: () => `,"ts":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ severity: label }) },
  }, dest);
}
