// `nfsessiond install`: puts a built checkout in place on a router.
//
//   <prefix>/lib/nfsessiond/          package.json, dist/src, production node_modules, native/build/Release/*.node
//   <prefix>/bin/nfsessiond           wrapper: exec <node> <prefix>/lib/nfsessiond/dist/src/cli.js "$@"
//   <prefix>/share/doc/nfsessiond/    README.md
//   <sysconfdir>/nfsessiond/nfsessiond.conf   the example config, only when none exists
//   <unitdir>/nfsessiond.service      the unit, with the paths above
//
// `--root DIR` writes everything under DIR (DESTDIR-style) while the files name the final paths.
// Nothing is enabled or started unless asked (--enable, --start); `systemctl daemon-reload` runs
// only when systemd is PID 1 and the install is into the running system (otherwise a message says
// why it was skipped). `--dry-run` prints the same plan and changes nothing.

import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { packageRoot } from '../kernel/netlink-socket.js';

export interface InstallOptions {
  /** DESTDIR: everything is written below it; the installed files name paths without it. Default '/'. */
  root?: string;
  prefix?: string;
  sysconfdir?: string;
  unitdir?: string;
  /** Node.js the wrapper runs. Default: the one running this command. */
  node?: string;
  /** The built checkout to install from. Default: this program's package root. */
  source?: string;
  dryRun?: boolean;
  enable?: boolean;
  start?: boolean;
  /** Is systemd running as PID 1 here? Default: /run/systemd/system exists (sd_booted). */
  systemdBooted?: boolean;
  /** Runs systemctl; injected by tests. */
  systemctl?: (args: string[]) => string;
  out?: (line: string) => void;
}

export interface InstallPaths {
  lib: string;
  bin: string;
  doc: string;
  config: string;
  unit: string;
}

export const UNIT_NAME = 'nfsessiond.service';

/** Final paths (as the installed files name them, without --root). */
export function installPaths(o: Pick<InstallOptions, 'prefix' | 'sysconfdir' | 'unitdir'> = {}): InstallPaths {
  const prefix = resolve(o.prefix ?? '/usr/local');
  const sysconf = resolve(o.sysconfdir ?? '/etc');
  return {
    lib: join(prefix, 'lib/nfsessiond'),
    bin: join(prefix, 'bin/nfsessiond'),
    doc: join(prefix, 'share/doc/nfsessiond'),
    config: join(sysconf, 'nfsessiond/nfsessiond.conf'),
    unit: join(resolve(o.unitdir ?? '/etc/systemd/system'), UNIT_NAME),
  };
}

/** The paths the unit template in systemd/ names; install replaces them with the real ones. */
const TEMPLATE = {
  bin: '/usr/local/bin/nfsessiond',
  config: '/etc/nfsessiond/nfsessiond.conf',
  doc: '/usr/local/share/doc/nfsessiond',
};

export function renderUnit(template: string, p: InstallPaths): string {
  return template.split(TEMPLATE.bin).join(p.bin).split(TEMPLATE.config).join(p.config).split(TEMPLATE.doc).join(p.doc);
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function renderWrapper(node: string, p: InstallPaths, version: string): string {
  return [
    '#!/bin/sh',
    `# nfsessiond ${version}, installed by \`nfsessiond install\`. exec keeps the PID (systemd Type=notify).`,
    `exec ${shq(node)} ${shq(join(p.lib, 'dist/src/cli.js'))} "$@"`,
    '',
  ].join('\n');
}

/** Top-level node_modules entries needed at run time (not dev-only), from package-lock.json. */
export function productionModules(lockText: string): string[] {
  const lock = JSON.parse(lockText) as { packages?: Record<string, { dev?: boolean; link?: boolean }> };
  const out: string[] = [];
  for (const [key, meta] of Object.entries(lock.packages ?? {})) {
    if (!key.startsWith('node_modules/') || meta.dev || meta.link) continue;
    const name = key.slice('node_modules/'.length);
    // Nested copies (a/node_modules/b) come along with their parent's directory.
    if (name.includes('/node_modules/')) continue;
    out.push(name);
  }
  return out.sort();
}

interface Step { say: string; run?: () => void }

export class InstallError extends Error {}

function isSystemdBooted(): boolean {
  return existsSync('/run/systemd/system');
}

function pid1Name(): string {
  try {
    return readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

function defaultSystemctl(args: string[]): string {
  return execFileSync('systemctl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Plans and (unless dryRun) carries out the install. Returns the lines it printed. */
export function install(opts: InstallOptions = {}): string[] {
  const lines: string[] = [];
  const say = (l: string) => { lines.push(l); opts.out?.(l); };
  const root = resolve(opts.root ?? '/');
  const src = resolve(opts.source ?? packageRoot());
  const p = installPaths(opts);
  const dest = (path: string) => (root === '/' ? path : join(root, path));
  const node = opts.node ?? process.execPath;
  const booted = opts.systemdBooted ?? isSystemdBooted();
  const systemctl = opts.systemctl ?? defaultSystemctl;
  const dry = !!opts.dryRun;

  // The checkout must be built: dist, the native addons, the npm dependencies.
  const need = [
    'package.json', 'package-lock.json', 'dist/src/cli.js', 'node_modules',
    'native/build/Release/nfsessiond_native.node', 'native/build/Release/nfsessiond_notify.node',
    'systemd/nfsessiond.service', 'systemd/nfsessiond.conf',
  ];
  const missing = need.filter((f) => !existsSync(join(src, f)));
  if (missing.length) {
    throw new InstallError(`${src} is not a built checkout (missing: ${missing.join(', ')}): run \`npm ci\` and \`npm run build\` there first`);
  }
  const version = (JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  const modules = productionModules(readFileSync(join(src, 'package-lock.json'), 'utf8')).filter((m) => existsSync(join(src, 'node_modules', m)));

  const steps: Step[] = [];
  // 1. The program, assembled next to its final place and swapped in (an upgrade never leaves a
  //    half-copied tree where the running service loads modules from).
  const lib = dest(p.lib);
  const staging = `${lib}.new`;
  const old = `${lib}.old`;
  steps.push({
    say: `install program ${src} -> ${lib} (dist/src, ${modules.length} production modules, native addons)`,
    run: () => {
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      for (const f of ['package.json', 'package-lock.json']) cpSync(join(src, f), join(staging, f));
      cpSync(join(src, 'dist/src'), join(staging, 'dist/src'), { recursive: true });
      for (const m of modules) cpSync(join(src, 'node_modules', m), join(staging, 'node_modules', m), { recursive: true });
      for (const f of ['nfsessiond_native.node', 'nfsessiond_notify.node']) {
        cpSync(join(src, 'native/build/Release', f), join(staging, 'native/build/Release', f));
      }
      cpSync(join(src, 'systemd'), join(staging, 'systemd'), { recursive: true });
      rmSync(old, { recursive: true, force: true });
      if (existsSync(lib)) renameSync(lib, old);
      renameSync(staging, lib);
      rmSync(old, { recursive: true, force: true });
    },
  });
  // 2. The command.
  steps.push({
    say: `write ${dest(p.bin)} (runs ${node} ${join(p.lib, 'dist/src/cli.js')})`,
    run: () => {
      mkdirSync(dirname(dest(p.bin)), { recursive: true });
      writeFileSync(dest(p.bin), renderWrapper(node, p, version));
      chmodSync(dest(p.bin), 0o755);
    },
  });
  // 3. Documentation (the unit's Documentation=).
  steps.push({
    say: `install ${join(dest(p.doc), 'README.md')}`,
    run: () => {
      mkdirSync(dest(p.doc), { recursive: true });
      cpSync(join(src, 'README.md'), join(dest(p.doc), 'README.md'));
    },
  });
  // 4. The config: never overwritten.
  if (existsSync(dest(p.config))) {
    steps.push({ say: `keep ${dest(p.config)} (exists; the example is in ${join(p.lib, 'systemd/nfsessiond.conf')})` });
  } else {
    steps.push({
      say: `install ${dest(p.config)} (example config)`,
      run: () => {
        mkdirSync(dirname(dest(p.config)), { recursive: true, mode: 0o755 });
        cpSync(join(src, 'systemd/nfsessiond.conf'), dest(p.config));
        chmodSync(dest(p.config), 0o640);
      },
    });
  }
  // 5. The unit.
  const unitText = renderUnit(readFileSync(join(src, 'systemd/nfsessiond.service'), 'utf8'), p);
  steps.push({
    say: `write ${dest(p.unit)}`,
    run: () => {
      mkdirSync(dirname(dest(p.unit)), { recursive: true });
      writeFileSync(dest(p.unit), unitText);
      chmodSync(dest(p.unit), 0o644);
    },
  });
  // 6. systemd.
  const live = root === '/' && booted;
  const run = (args: string[]) => () => {
    try {
      const o = systemctl(args).trim();
      if (o) say(o);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new InstallError(`systemctl ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`);
    }
  };
  if (live) steps.push({ say: 'systemctl daemon-reload', run: run(['daemon-reload']) });
  else if (root !== '/') steps.push({ say: `skip systemctl daemon-reload: installing under --root ${root}` });
  else steps.push({ say: `skip systemctl daemon-reload: systemd is not running (PID 1 is ${pid1Name()}; a container?)` });
  if (opts.enable) {
    // Offline enabling (symlinks only) works without a running systemd, and under --root.
    const args = live ? ['enable', UNIT_NAME] : [`--root=${root}`, 'enable', UNIT_NAME];
    steps.push({ say: `systemctl ${args.join(' ')}`, run: run(args) });
  }
  if (opts.start) {
    if (live) steps.push({ say: `systemctl restart ${UNIT_NAME}`, run: run(['restart', UNIT_NAME]) });
    else steps.push({ say: `skip starting ${UNIT_NAME}: ${root !== '/' ? 'installing under --root' : 'systemd is not running'}` });
  }
  if (!opts.enable && !opts.start) {
    steps.push({ say: `not enabled or started: \`systemctl enable --now ${UNIT_NAME}\` when the config is ready (or install --enable --start)` });
  }

  for (const s of steps) {
    if (dry) {
      say(s.run ? `would ${s.say}` : s.say);
      continue;
    }
    say(s.say);
    s.run?.();
  }
  return lines;
}
