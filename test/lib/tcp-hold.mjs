#!/usr/bin/env node
// Long-lived TCP connections for e2e tests (plain ESM).
//   node tcp-hold.mjs server --port P         line echo server on [::]:P; prints {"listening":true}
//   node tcp-hold.mjs client --ctl PATH --host H --port P
//     answers JSON-line commands on the unix socket PATH (the test drives it from outside the
//     namespace): {"op":"open","id":N,"timeoutMs":T} -> {"id":N,"open":true|false}
//     {"op":"echo","id":N} -> {"id":N,"echo":true|false}   {"op":"close","id":N} -> {"id":N,"closed":true}
import net from 'node:net';
import { rmSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const port = Number(opt('port', '8080'));

if (args[0] === 'server') {
  const srv = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
  srv.listen(port, '::', () => process.stdout.write(`${JSON.stringify({ listening: true, port })}\n`));
  process.on('SIGTERM', () => process.exit(0));
} else {
  const host = opt('host');
  const ctl = opt('ctl');
  const conns = new Map();
  const reply = (sock, o) => sock.write(`${JSON.stringify(o)}\n`);
  const echo = (c, id, timeoutMs) => new Promise((resolve) => {
    const token = `ping-${id}-${Date.now()}\n`;
    let buf = '';
    const timer = setTimeout(() => { c.off('data', on); resolve(false); }, timeoutMs);
    const on = (d) => { buf += d; if (buf.includes(token)) { clearTimeout(timer); c.off('data', on); resolve(true); } };
    c.on('data', on);
    c.write(token);
  });
  const handle = async (sock, m) => {
    if (m.op === 'open') {
      const c = net.connect({ host, port });
      c.setNoDelay(true);
      c.on('error', () => {});
      const ok = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), m.timeoutMs ?? 700);
        c.once('connect', () => { clearTimeout(timer); resolve(true); });
        c.once('error', () => { clearTimeout(timer); resolve(false); });
      });
      if (ok) conns.set(m.id, c); else c.destroy();
      reply(sock, { id: m.id, open: ok, sport: ok ? c.localPort : undefined });
    } else if (m.op === 'echo') {
      const c = conns.get(m.id);
      reply(sock, { id: m.id, echo: c ? await echo(c, m.id, m.timeoutMs ?? 3000) : false });
    } else if (m.op === 'close') {
      const c = conns.get(m.id);
      conns.delete(m.id);
      if (c) { c.end(); await new Promise((r) => { c.once('close', r); setTimeout(r, 3000); }); }
      reply(sock, { id: m.id, closed: true });
    }
  };
  rmSync(ctl, { force: true });
  const server = net.createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) void handle(sock, JSON.parse(line));
      }
    });
    sock.on('error', () => {});
  });
  server.listen(ctl, () => process.stdout.write(`${JSON.stringify({ ready: true, ctl })}\n`));
  process.on('SIGTERM', () => { for (const c of conns.values()) c.destroy(); server.close(); process.exit(0); });
}
