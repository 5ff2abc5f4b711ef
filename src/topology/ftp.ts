// vsftpd in a topology's server namespace, and curl as the FTP client: the real peers of the FTP
// helper's end-to-end tests and of the demo.

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NsRef, Topology } from './netns.js';
import { hostPort, waitForTcpListen, type Server } from './peers.js';

export interface FtpServer extends Server {
  /** Directory served to anonymous users (files placed here can be fetched). */
  readonly root: string;
  /** Anonymous uploads go here (`/upload/<name>`). */
  readonly uploads: string;
  url(path: string, host?: string): string;
}

export interface FtpServerOptions {
  ns?: NsRef;
  port?: number;
  /** Passive data ports the server hands out. */
  pasvPorts?: [number, number];
  /** Files to serve: name → size in bytes (content is a repeating pattern). */
  files?: Record<string, number>;
}

/** Starts vsftpd (anonymous, passive and active, IPv4 and IPv6) in the server namespace. */
export async function startVsftpd(topo: Topology, opts: FtpServerOptions = {}): Promise<FtpServer> {
  const ns = opts.ns ?? 'server';
  const port = opts.port ?? 21;
  const [pmin, pmax] = opts.pasvPorts ?? [40000, 40100];
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-ftp-'));
  const root = join(dir, 'root');
  const uploads = join(root, 'upload');
  const empty = join(dir, 'empty');
  mkdirSync(root, { mode: 0o755 });
  mkdirSync(empty, { mode: 0o755 });
  mkdirSync(uploads, { mode: 0o777 });
  chmodSync(dir, 0o755);
  chmodSync(uploads, 0o777);
  for (const [name, size] of Object.entries(opts.files ?? { 'file.bin': 100_000 })) {
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i++) b[i] = i % 251;
    writeFileSync(join(root, name), b);
  }
  const conf = join(dir, 'vsftpd.conf');
  writeFileSync(conf, [
    'listen=NO', 'listen_ipv6=YES', `listen_port=${port}`, 'background=NO',
    'anonymous_enable=YES', 'no_anon_password=YES', `anon_root=${root}`, 'local_enable=NO',
    'write_enable=YES', 'anon_upload_enable=YES', 'anon_umask=022',
    'pasv_enable=YES', `pasv_min_port=${pmin}`, `pasv_max_port=${pmax}`,
    'port_enable=YES', 'connect_from_port_20=YES',
    `secure_chroot_dir=${empty}`, 'seccomp_sandbox=NO', 'isolate=NO', 'isolate_network=NO',
    'xferlog_enable=NO', 'dirmessage_enable=NO', 'hide_ids=YES', 'ftpd_banner=nfsessiond test vsftpd',
    '',
  ].join('\n'));
  const proc = topo.spawn(ns, ['vsftpd', conf]);
  try {
    await waitForTcpListen(topo, ns, port, { timeoutMs: 10_000 });
  } catch (e) {
    await proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`vsftpd did not start: ${(e as Error).message}\n${proc.stderr()}`);
  }
  return {
    proc,
    ns: topo.nsName(ns),
    host: '::',
    port,
    root,
    uploads,
    url: (path: string, host = topo.addr.server.v4) => `ftp://${hostPort(host, port)}/${path.replace(/^\//, '')}`,
    stop: async () => {
      await proc.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface FtpTransferOptions {
  ns?: NsRef;
  /** Active mode: the server connects back (PORT, or EPRT over IPv6 / unless disabled). */
  active?: boolean;
  /** Force the RFC 959 commands (PASV / PORT) instead of EPSV / EPRT on IPv4. */
  rfc959?: boolean;
  /** Upload this file instead of downloading. */
  upload?: string;
  timeoutMs?: number;
}

export interface FtpTransferResult { bytes: number; exitCode: number | null; stderr: string }

/** Downloads (or uploads) one file with curl from the client namespace; never rejects on FTP errors. */
export async function ftpTransfer(topo: Topology, url: string, opts: FtpTransferOptions = {}): Promise<FtpTransferResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const argv = ['curl', '-g', '-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '--connect-timeout', '5'];
  if (opts.active) argv.push('--ftp-port', '-');
  if (opts.rfc959) argv.push(opts.active ? '--disable-eprt' : '--disable-epsv');
  if (opts.upload) argv.push('-T', opts.upload, '-w', '%{size_upload}', url);
  else argv.push('-o', '/dev/null', '-w', '%{size_download}', url);
  const r = await topo.exec(opts.ns ?? 'client', argv, { timeoutMs: timeoutMs + 5000 });
  const bytes = Number(r.stdout.trim());
  return { bytes: r.code === 0 && Number.isFinite(bytes) ? bytes : 0, exitCode: r.code, stderr: r.stderr };
}
