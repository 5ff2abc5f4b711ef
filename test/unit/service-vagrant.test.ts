// The Vagrantfile: `vagrant validate` (offline, no provider or plugin needed with
// --ignore-provider), then what it declares, read by loading it with a stand-in for Vagrant's
// config objects: three machines on the namespace harness's documentation addresses, networks
// for both libvirt and virtualbox, provisioning scripts that parse with `bash -n`, and a router
// that installs the service with the helper config.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';

const ROOT = new URL('../..', import.meta.url).pathname;

// Loads a Vagrantfile with recording stand-ins and prints every call as JSON.
const DUMP_RB = `
require "json"
class Rec
  def initialize(path, out) @path = path; @out = out end
  def method_missing(name, *args, **kw, &blk)
    n = name.to_s
    if n.end_with?("=")
      @out << { "path" => @path + [n.chomp("=")], "value" => args[0] }
      return args[0]
    end
    @out << { "path" => @path + [n], "args" => args, "kw" => kw.transform_keys(&:to_s) }
    child = Rec.new(@path + [n] + args.map(&:to_s).first(1), @out)
    blk.call(child) if blk
    child
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(_v)
    out = []
    yield Rec.new([], out)
    puts JSON.generate(out)
  end
end
load ARGV[0]
`;

interface Call { path: string[]; args?: unknown[]; kw?: Record<string, unknown>; value?: unknown }

function dump(t: { teardown(fn: () => unknown): void }): Call[] {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-vagrant-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dump.rb'), DUMP_RB);
  const env = { ...process.env };
  delete env.NFSESSIOND_BOX;
  const r = spawnSync('ruby', [join(dir, 'dump.rb'), join(ROOT, 'Vagrantfile')], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`ruby: ${r.stderr}`);
  return JSON.parse(r.stdout) as Call[];
}

/** Addresses of the namespace harness (src/topology/netns.ts). */
function harnessAddresses(): Record<string, { v4: string; v6: string }> {
  const src = readFileSync(join(ROOT, 'src/topology/netns.ts'), 'utf8');
  const out: Record<string, { v4: string; v6: string }> = {};
  for (const m of src.matchAll(/(client|routerClient|routerServer|server): \{ v4: '([^']+)', v6: '([^']+)' \}/g)) out[m[1]] = { v4: m[2], v6: m[3] };
  return out;
}

t.test('vagrant validate', async (t) => {
  const which = spawnSync('sh', ['-c', 'command -v vagrant'], { encoding: 'utf8' });
  t.equal(which.status, 0, 'vagrant is installed (scripts/bootstrap.sh installs it)');
  if (which.status !== 0) return;
  const dot = mkdtempSync(join(tmpdir(), 'nfsessiond-vagrant-dot-'));
  t.teardown(() => rmSync(dot, { recursive: true, force: true }));
  // No provider is installed here: --ignore-provider validates everything but the provider blocks.
  const r = spawnSync('vagrant', ['validate', '--ignore-provider'], {
    cwd: ROOT, encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, VAGRANT_DOTFILE_PATH: join(dot, '.vagrant'), VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_NO_COLOR: '1' },
  });
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  t.match(r.stdout, /Vagrantfile validated successfully\./);
  t.notMatch(r.stdout + r.stderr, /plugin/i, 'no plugin needed');
});

t.test('machines, addresses and providers', async (t) => {
  const calls = dump(t);
  const defined = calls.filter((c) => c.path.join('.') === 'vm.define').map((c) => c.args?.[0]);
  t.same(defined, ['router', 'client', 'server']);
  t.equal(calls.find((c) => c.path.join('.') === 'vm.box')?.value, 'debian/trixie64', 'default box');
  t.ok(calls.some((c) => c.path.join('.') === 'vm.provider' && c.args?.[0] === 'libvirt'), 'libvirt provider settings');
  t.ok(calls.some((c) => c.path.join('.') === 'vm.provider' && c.args?.[0] === 'virtualbox'), 'virtualbox provider settings');

  const nets = calls.filter((c) => c.path.at(-1) === 'network' && c.args?.[0] === 'private_network');
  const ips: Record<string, string[]> = {};
  for (const n of nets) {
    const machine = n.path[2];
    (ips[machine] ??= []).push(n.kw!.ip as string);
    t.equal(n.kw!.netmask, '255.255.255.0');
    t.match(n.kw!.virtualbox__intnet, /^nfsessiond-(client|server)$/, 'virtualbox internal network');
    t.equal(n.kw!.libvirt__network_name, n.kw!.virtualbox__intnet, 'the same network name for libvirt');
    t.equal(n.kw!.libvirt__forward_mode, 'veryisolated', 'libvirt: no host address on the network');
    t.equal(n.kw!.libvirt__dhcp_enabled, false);
  }
  const a = harnessAddresses();
  t.same(ips, { router: [a.routerClient.v4, a.routerServer.v4], client: [a.client.v4], server: [a.server.v4] }, 'the harness addresses');

  // Every address in the file is a documentation address (or a netmask).
  const text = readFileSync(join(ROOT, 'Vagrantfile'), 'utf8');
  for (const m of text.matchAll(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g)) {
    t.ok(/^(198\.51\.100|203\.0\.113|192\.0\.2)\.\d+$|^255\.255\.255\.0$/.test(m[0]), `${m[0]} is a documentation address`);
  }
  for (const m of text.matchAll(/\b[0-9a-f]{1,4}:[0-9a-f:]*:[0-9a-f:]*\b/gi)) t.match(m[0], /^2001:db8:/i, `${m[0]} in 2001:db8::/32`);
  for (const [role, e] of Object.entries(a)) t.ok(text.includes(e.v6), `${role} ${e.v6}`);
});

t.test('provisioning scripts', async (t) => {
  const calls = dump(t);
  const scripts = calls.filter((c) => c.path.at(-1) === 'provision').map((c) => ({ machine: c.path[2], name: c.args?.[0] as string, inline: c.kw!.inline as string, always: c.kw!.run === 'always' }));
  t.same(scripts.map((s) => `${s.machine}/${s.name}`), ['router/network', 'router/nfsessiond', 'client/network', 'client/peers', 'server/network', 'server/peers']);
  for (const s of scripts) {
    const r = spawnSync('bash', ['-n'], { input: s.inline, encoding: 'utf8' });
    t.equal(r.status, 0, `${s.machine}/${s.name} parses: ${r.stderr}`);
  }
  t.ok(scripts.filter((s) => s.name === 'network').every((s) => s.always), 'addresses and routes on every boot');

  const router = scripts.find((s) => s.name === 'nfsessiond')!.inline;
  t.match(router, 'install -D -m 0640 systemd/router-helpers.conf /etc/nfsessiond/nfsessiond.conf');
  t.match(router, 'node dist/src/cli.js install --enable --start', 'the service through nfsessiond install');
  t.ok(router.indexOf('router-helpers.conf') < router.indexOf('cli.js install'), 'config first: install keeps it');
  const client = scripts.find((s) => s.machine === 'client' && s.name === 'peers')!.inline;
  t.match(client, /apt-get install .*curl.*sip-tester/);
  t.match(client, "curl -sS --max-time 20 --ftp-port 198.51.100.2 ftp://203.0.113.2/hello.txt\n", 'active FTP demo, heredoc body unindented');
  t.match(client, /\nEOF\n/, 'heredoc terminators at column 0');
  const server = scripts.find((s) => s.machine === 'server' && s.name === 'peers')!.inline;
  t.match(server, /apt-get install .*vsftpd.*sip-tester/);
  t.match(server, 'ExecStart=/usr/bin/sipp -sn uas -i 203.0.113.2 -p 5060 -nostdin');
  const net = scripts.find((s) => s.machine === 'client' && s.name === 'network')!.inline;
  t.match(net, 'ip route replace 203.0.113.0/24 via 198.51.100.1');
  // The awk pattern finds the interface by its IPv4 address.
  const awk = /awk '([^']+)'/.exec(net)![1];
  const found = spawnSync('awk', [awk], { input: '2: eth0    inet 10.0.2.15/24 brd x\n3: eth1    inet 198.51.100.2/24 brd x\n', encoding: 'utf8' });
  t.equal(found.stdout.trim(), 'eth1');
});

t.test('the router config: FTP and SIP helpers, client -> server policy only', async (t) => {
  const cfg = parseConfig(readFileSync(join(ROOT, 'systemd/router-helpers.conf'), 'utf8'), 'router-helpers.conf');
  const b = cfg.engine.helpers.bindings;
  t.ok(b.some((x) => x.id === 9 && x.name === 'ftp' && x.proto === 6 && x.port === 21), 'ftp tcp/21');
  t.ok(b.some((x) => x.id === 13 && x.name === 'sip' && x.proto === 17 && x.port === 5060), 'sip udp/5060');
  t.equal(cfg.policyDefaulted, false);
  t.same(cfg.metrics.listen, { host: '127.0.0.1', port: 9469 });
});
