// The HTTP endpoint Prometheus scrapes: GET /metrics (text format 0.0.4). Bound to loopback by
// default (`set metrics-listen 127.0.0.1:9469`, see listen.ts). Anything other than GET/HEAD
// /metrics gets 404/405.

import { createServer, type Server } from 'node:http';
import type { ListenAddress } from './listen.js';

export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export class MetricsServer {
  private server?: Server;
  private bound?: ListenAddress;

  constructor(private readonly source: MetricsSource) {}

  /** The address actually bound (the port is the kernel's choice when 0 was asked). */
  get address(): ListenAddress | undefined { return this.bound; }

  listen(addr: ListenAddress): Promise<ListenAddress> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: scrape /metrics\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      this.source.text().then((body) => {
        res.writeHead(200, { 'content-type': this.source.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      }, (e: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${e.message}\n`);
      });
    });
    // A scrape is short: do not let idle keep-alive connections hold the daemon's exit.
    server.keepAliveTimeout = 5000;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: addr.host, port: addr.port, exclusive: true }, () => {
        server.removeListener('error', reject);
        server.unref();
        const a = server.address();
        this.server = server;
        this.bound = a && typeof a === 'object' ? { host: a.address, port: a.port } : addr;
        resolve(this.bound);
      });
    });
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.bound = undefined;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
