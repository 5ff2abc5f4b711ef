// The metrics endpoint's address as configured: `<ipv4>:<port>` or `[<ipv6>]:<port>`
// (`config system nfsessiond` / `set metrics-listen 127.0.0.1:9469`).

import { isIP } from 'node:net';

export interface ListenAddress { host: string; port: number }

export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9469';

/** Parses `host:port` / `[v6]:port`; returns an error text when it is not one. */
export function parseListen(text: string): ListenAddress | { error: string } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return { error: `bad metrics-listen '${text}': expected <ipv4>:<port> or [<ipv6>]:<port>` };
  const host = m[1];
  const port = Number(m[2]);
  const bracketed = text.startsWith('[');
  const fam = isIP(host);
  if (fam === 0 || (fam === 6) !== bracketed) return { error: `bad metrics-listen '${text}': '${host}' is not an IP${bracketed ? 'v6' : 'v4'} address` };
  if (port < 1 || port > 65535) return { error: `bad metrics-listen '${text}': port ${port} is not 1-65535` };
  return { host, port };
}

export const formatListen = (a: ListenAddress): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);
