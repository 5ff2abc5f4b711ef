// The top-level config blocks nfsessiond understands, keyed by their path.

import type { BlockSpec, TableSpec } from './schema.js';
import { HELPER_NAMES } from '../helpers/registry.js';

const HOOKS = ['forward', 'input', 'output'] as const;

export const BLOCKS: Record<string, BlockSpec> = {
  'system nfsessiond': {
    help: 'How the daemon attaches to the kernel: queue, ruleset, offload, control socket.',
    fields: {
      'queue-num': { type: 'int', min: 0, max: 65535, default: 0, help: 'First NFQUEUE number the daemon binds.' },
      'queue-count': { type: 'int', min: 1, max: 64, default: 1, help: 'Number of queues (spread by --queue-balance; a flow always lands on the same queue).' },
      'queue-bypass': { type: 'flag', default: true, help: 'Kernel accepts packets when no daemon listens (a crashed daemon leaves traffic flowing).' },
      'queue-fail-open': { type: 'flag', default: true, help: 'Kernel accepts packets when the queue is full instead of dropping them.' },
      'queue-maxlen': { type: 'int', min: 16, max: 1048576, default: 4096, help: 'Packets the kernel holds for the daemon per queue.' },
      'copy-range': { type: 'int', min: 64, max: 65535, default: 65535, help: 'Bytes of each packet copied to the daemon.' },
      hooks: { type: 'strings', values: HOOKS, default: ['forward'], help: 'Netfilter hooks whose packets are decided by the daemon.' },
      table: { type: 'string', default: 'nfsessiond', help: 'Name of the nft table (inet family) the daemon owns.' },
      offload: { type: 'flag', default: true, help: 'Hand TCP and UDP sessions without a helper to the kernel with the verdict of their first packet, so their other packets skip userspace.' },
      'offload-mark': { type: 'int', min: 1, max: 0x00800000, default: 0x00100000, help: 'Conntrack mark bit that marks an offloaded session: a single bit; the 8 bits above it carry the refresh direction and the timer class of the first-packet verdict.' },
      'kernel-sync-interval': { type: 'int', min: 0, max: 3600, default: 0, help: 'Seconds between full dumps of the kernel conntrack table; 0 (default) dumps only at start and after lost events, offloaded sessions being read when their timer runs out or a view shows them.' },
      'malformed-verdict': { type: 'enum', values: ['accept', 'drop'], default: 'drop', help: 'Verdict for packets that cannot be decoded.' },
      'control-socket': { type: 'string', default: '/run/nfsessiond/control.sock', help: 'Unix socket for the CLI (mode 0600).' },
      'log-level': { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info', help: 'Daemon log level.' },
      'memory-sample-interval': { type: 'int', min: 1, max: 3600, default: 5, help: 'Seconds between memory use samples (conserve mode thresholds).' },
      'failopen-bypass-timeout': { type: 'int', min: 1, max: 86400, default: 120, help: 'Seconds after which a flow let through uninspected (fail-open) is forgotten when no packet of it reached the daemon; it is offloaded to the kernel by then.' },
      'log-session-start': { type: 'flag', default: false, help: 'Also log a traffic record when a logged session starts (action="start"), not only when it ends.' },
      'log-memory-records': { type: 'int', min: 0, max: 1000000, default: 1000, help: 'Traffic records kept in memory for `execute log display` (0 keeps none).' },
      metrics: { type: 'flag', default: true, help: 'Serve Prometheus metrics over HTTP at metrics-listen (GET /metrics).' },
      'metrics-listen': { type: 'string', default: '127.0.0.1:9469', help: "Address of the metrics endpoint: '<ipv4>:<port>' or '[<ipv6>]:<port>'; loopback by default." },
      'state-dir': { type: 'string', default: '', help: 'Directory for the daemon\'s state (table snapshot); empty: $STATE_DIRECTORY (systemd StateDirectory=), else /var/lib/nfsessiond. `run --state-dir` overrides it.' },
      snapshot: { type: 'flag', default: true, help: 'Write the session table (sessions, expectations, helper state) to the state directory on shutdown and restore it on start.' },
      'restart-unknown-sessions': { type: 'enum', values: ['adopt', 'expire'], default: 'adopt', help: 'On a start that restored a snapshot, kernel conntrack entries the daemon never knew (made while no daemon decided): adopt them as sessions of policy 0, or delete them from the kernel.' },
    },
  },
  'system session-ttl': {
    help: 'Session timeouts: a default and per protocol/port-range entries with a refresh direction.',
    fields: {
      default: { type: 'int', min: 1, max: 604800, default: 3600, help: 'Timeout (s) of a session that no port entry matches.' },
    },
    tables: {
      port: {
        help: 'Timeouts for a protocol and destination port range.',
        id: 'int',
        entry: {
          help: 'One port entry.',
          fields: {
            protocol: { type: 'int', min: 0, max: 255, default: 0, help: 'IP protocol number (6 TCP, 17 UDP, ...).' },
            timeout: { type: 'int', min: 1, max: 604800, default: 300, help: 'Session timeout (s).' },
            'start-port': { type: 'int', min: 0, max: 65535, default: 0, help: 'First destination port.' },
            'end-port': { type: 'int', min: 0, max: 65535, default: 65535, help: 'Last destination port.' },
            'refresh-direction': { type: 'enum', values: ['both', 'outgoing', 'incoming'], default: 'both', help: 'Which packets extend the timer: both, outgoing (original direction) or incoming (reply).' },
          },
        },
      },
    },
  },
  'system global': {
    help: 'Global timers.',
    fields: {
      'tcp-halfopen-timer': { type: 'int', min: 1, max: 86400, default: 10, help: 'Timeout (s) of a TCP session before the handshake completes.' },
      'tcp-halfclose-timer': { type: 'int', min: 1, max: 86400, default: 120, help: 'Timeout (s) once one side has sent FIN.' },
      'tcp-timewait-timer': { type: 'int', min: 0, max: 300, default: 1, help: 'Timeout (s) in TIME_WAIT / after RST.' },
      'udp-idle-timer': { type: 'int', min: 1, max: 86400, default: 180, help: 'Timeout (s) of a UDP session until its first reply, when no session-ttl port entry names it.' },
      'av-failopen-session': { type: 'flag', default: false, help: 'A full session table or limit (and memory conserve mode) uses av-failopen; disabled refuses new sessions.' },
      'av-failopen': { type: 'enum', values: ['pass', 'off', 'one-shot'], default: 'pass', help: 'In conserve mode: pass lets new sessions through uninspected until room frees, off refuses them, one-shot passes until `diagnose sys conserve reset`.' },
      'memory-use-threshold-red': { type: 'int', min: 70, max: 97, default: 88, help: 'Memory use (%) that enters conserve mode.' },
      'memory-use-threshold-extreme': { type: 'int', min: 70, max: 97, default: 95, help: 'Memory use (%) from which new sessions are dropped whatever av-failopen says.' },
      'memory-use-threshold-green': { type: 'int', min: 70, max: 97, default: 82, help: 'Memory use (%) below which conserve mode is left.' },
      'adaptive-timeout-start': { type: 'int', min: 0, max: 99, default: 0, help: 'Adaptive timeouts: table use (% of the session limit that applies, global or the VDOM\'s) from which every session\'s lifetime since its last refresh is scaled by (end - use) / (end - start), so idle sessions expire first; 0 disables. No effect without a session limit.' },
      'adaptive-timeout-end': { type: 'int', min: 1, max: 1000, default: 100, help: 'Adaptive timeouts: table use (%) at which lifetimes reach zero; above adaptive-timeout-start, and may exceed 100 (lifetimes then never reach zero below the limit).' },
      'snapshot-interval': { type: 'int', min: 1, max: 86400, default: 60, help: 'Seconds between table snapshots while running (with `snapshot enable`): each writes the whole table and empties the journal of changes, which is flushed every second, so a crash loses at most the last second; a reload applies a new value.' },
    },
  },
  'system resource-limits': {
    help: 'Global limits (0 = unlimited).',
    fields: {
      session: { type: 'int', min: 0, max: 0x7fffffff, default: 0, help: 'Sessions in the table at most; a new session beyond it puts the unit in conserve mode.' },
      proxy: { type: 'int', min: 0, max: 0x7fffffff, default: 0, help: 'Concurrent users (one per source address and VDOM) at most.' },
      'user-idle-timeout': { type: 'int', min: 1, max: 604800, default: 3600, help: 'Seconds after its last session ended that a user is forgotten.' },
    },
  },
  'system session-accounting': {
    help: 'TCP destination ports of the services accounted separately (diagnose test proxyworker 4).',
    fields: {
      'http-port': { type: 'strings', default: ['80'], help: 'HTTP ports.' },
      'smtp-port': { type: 'strings', default: ['25'], help: 'SMTP ports.' },
      'pop3-port': { type: 'strings', default: ['110'], help: 'POP3 ports.' },
      'imap-port': { type: 'strings', default: ['143'], help: 'IMAP ports.' },
      'ftp-port': { type: 'strings', default: ['21'], help: 'FTP ports.' },
      'nntp-port': { type: 'strings', default: ['119'], help: 'NNTP ports.' },
    },
  },
  'system session-helper-options': {
    help: 'Expectation sessions and the checks of the session helpers.',
    fields: {
      'expectation-timeout': { type: 'int', min: 1, max: 86400, default: 30, help: 'Seconds an expectation waits for its connection when its helper gives no timeout of its own.' },
      'max-expectations-per-session': { type: 'int', min: 1, max: 4096, default: 16, help: 'Expectations one control session may hold; further ones are refused (counted and logged).' },
      'max-expectations': { type: 'int', min: 1, max: 1048576, default: 8192, help: 'Expectations in the whole table; further ones are refused.' },
      'clear-children': { type: 'flag', default: false, help: 'Ending a control session also ends the sessions its expectations became (its pending expectations always end with it).' },
      'ftp-third-party': { type: 'flag', default: false, help: 'Let PORT/EPRT and 227 replies name an address other than the sender\'s own (FTP bounce; kernel loose=1).' },
      'sip-media-any-peer': { type: 'flag', default: false, help: 'Let SDP open media towards hosts other than the SIP signalling peers (kernel sip_direct_media=0).' },
      'stream-buffer': { type: 'int', min: 1024, max: 1048576, default: 65536, help: 'Out-of-order bytes a helper buffers per direction of a TCP control channel.' },
    },
  },
  'system ha': {
    help: 'Active-passive HA with session pickup: the sync link to the peer, what is synced, and the values `nfsessiond ha keepalived-config` writes into keepalived.conf (keepalived decides the roles). In standalone mode the other keys are not used.',
    fields: {
      mode: { type: 'enum', values: ['standalone', 'a-p'], default: 'standalone', help: 'standalone: no HA; a-p: active-passive pair, table changes synced to the peer over the sync link.' },
      'group-name': { type: 'string', default: '', help: 'Cluster name: part of the sync key (a peer with another group name is refused) and the vrrp_instance name in keepalived.conf.' },
      'group-id': { type: 'int', min: 0, max: 254, default: 0, help: 'Cluster id: keepalived\'s virtual_router_id is group-id + 1 (VRRP ids are 1-255); both nodes need the same.' },
      password: { type: 'string', default: '', help: 'Authenticates and encrypts the sync channel (ChaCha20-Poly1305 with per-sender HKDF keys); a peer with another password is refused and counted.' },
      hbdev: { type: 'strings', default: [], help: 'Heartbeat/sync interfaces with their priority: \'"<ifname>" <priority 0-512>\' pairs. The sync link is the highest-priority one whose IPv4 subnet holds ha-peer-ip; keepalived\'s VRRP runs on it too.' },
      'ha-peer-ip': { type: 'string', default: '', help: 'nfsessiond: IPv4 address of the peer on the sync link (the sync datagrams\' destination and keepalived\'s unicast_peer).' },
      'ha-sync-port': { type: 'int', min: 1, max: 65535, default: 7030, help: 'nfsessiond: UDP port of the sync channel on both nodes (bound on the local address of the sync link).' },
      'session-pickup': { type: 'flag', default: false, help: 'Sync the session table to the peer: TCP sessions, plus what the other session-pickup keys add. Disabled: the link runs (roles, status) but carries no sessions.' },
      'session-pickup-connectionless': { type: 'flag', default: false, help: 'Also sync UDP, ICMP and other connectionless sessions (TCP only when disabled). Needs session-pickup.' },
      'session-pickup-expectation': { type: 'flag', default: false, help: 'Also sync helper expectations (pinholes) and the sessions made from them. Needs session-pickup.' },
      'session-pickup-delay': { type: 'flag', default: false, help: 'Sync only sessions older than 30 s: a session\'s start is sent once it reaches 30 s (short sessions never cross the link). Needs session-pickup.' },
      override: { type: 'flag', default: false, help: 'The node with the higher priority takes the primary role back when it returns (keepalived preempts); disabled writes nopreempt.' },
      priority: { type: 'int', min: 1, max: 254, default: 128, help: 'VRRP priority in keepalived.conf (VRRP\'s range 1-254): the higher becomes primary.' },
      'ha-notify-fifo': { type: 'string', default: '/run/nfsessiond/keepalived.fifo', help: 'nfsessiond: FIFO keepalived writes its state changes to (vrrp_notify_fifo); the daemon creates it and follows the role from it.' },
      'ha-track-file': { type: 'string', default: '/run/nfsessiond/ha-track', help: 'nfsessiond: file keepalived tracks (track_file): the daemon writes 1 until its first bulk sync is complete, which puts keepalived\'s instance in FAULT so it cannot become master, and 0 after.' },
    },
  },
  'system settings': {
    help: 'Per-domain settings.',
    fields: {
      'tcp-session-without-syn': { type: 'flag', default: false, help: 'Accept a TCP session whose first packet is not a SYN.' },
      'implicit-policy': { type: 'enum', values: ['deny', 'accept'], default: 'deny', help: 'What traffic that matches no policy gets (policy id 0).' },
      'firewall-session-dirty': { type: 'enum', values: ['check-all', 'check-new', 'check-policy-option'], default: 'check-all', help: 'When the policies change (a reload, or a start that restored the table): check-all looks up every session again, ending those no policy admits now and moving the others to the policy that admits them; check-new applies the change to new sessions only; check-policy-option: each policy\'s own firewall-session-dirty says.' },
    },
  },
};

/** A list of names; defaults are copied on read, so sharing the empty list is safe. */
const NAMES: { type: 'strings'; default: string[] } = { type: 'strings', default: [] };

/** Top-level tables: `config <path>` holding `edit <id|name>` entries. */
export const TABLES: Record<string, TableSpec> = {
  'firewall address': {
    help: 'IPv4 address objects used by policies.',
    id: 'name',
    entry: {
      help: 'One address object.',
      fields: {
        type: { type: 'enum', values: ['ipmask', 'iprange'], default: 'ipmask', help: 'A subnet or a range of addresses.' },
        subnet: { type: 'strings', default: ['0.0.0.0', '0.0.0.0'], help: "Subnet: '<ip> <mask>' or '<ip>/<prefix>'." },
        'start-ip': { type: 'string', default: '0.0.0.0', help: 'First address of an iprange.' },
        'end-ip': { type: 'string', default: '0.0.0.0', help: 'Last address of an iprange.' },
        comment: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
  'firewall address6': {
    help: 'IPv6 address objects used by policies.',
    id: 'name',
    entry: {
      help: 'One IPv6 address object.',
      fields: {
        type: { type: 'enum', values: ['ipprefix', 'iprange'], default: 'ipprefix', help: 'A prefix or a range of addresses.' },
        ip6: { type: 'string', default: '::/0', help: "Prefix '<ip6>/<len>'." },
        'start-ip': { type: 'string', default: '::', help: 'First address of an iprange.' },
        'end-ip': { type: 'string', default: '::', help: 'Last address of an iprange.' },
        comment: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
  'firewall addrgrp': {
    help: 'Groups of address objects.',
    id: 'name',
    entry: { help: 'One group.', fields: { member: { ...NAMES, help: 'Address or group names.' }, comment: { type: 'string', default: '', help: 'Free text.' } } },
  },
  'firewall service custom': {
    help: 'Services (protocols and ports) used by policies.',
    id: 'name',
    entry: {
      help: 'One service.',
      fields: {
        protocol: { type: 'enum', values: ['TCP/UDP/SCTP', 'ICMP', 'ICMP6', 'IP'], default: 'TCP/UDP/SCTP', help: 'Protocol family of the service.' },
        'tcp-portrange': { ...NAMES, help: "Destination ports '<lo>[-<hi>][:<srclo>[-<srchi>]]'." },
        'udp-portrange': { ...NAMES, help: 'Like tcp-portrange.' },
        'sctp-portrange': { ...NAMES, help: 'Like tcp-portrange.' },
        'protocol-number': { type: 'int', min: 0, max: 255, default: 0, help: 'IP protocol for protocol IP (0 = any).' },
        icmptype: { type: 'int', min: -1, max: 255, default: -1, help: 'ICMP type (-1 = any).' },
        comment: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
  'firewall service group': {
    help: 'Groups of services.',
    id: 'name',
    entry: { help: 'One group.', fields: { member: { ...NAMES, help: 'Service or group names.' }, comment: { type: 'string', default: '', help: 'Free text.' } } },
  },
  'firewall policy': {
    help: 'Forward policies, evaluated in order; the first match decides. Implicit deny after the last one.',
    id: 'int',
    entry: {
      help: 'One policy.',
      fields: {
        name: { type: 'string', default: '', help: 'Policy name.' },
        status: { type: 'flag', default: true, help: 'A disabled policy matches nothing.' },
        srcintf: { ...NAMES, help: "Ingress interfaces ('any' for all)." },
        dstintf: { ...NAMES, help: "Egress interfaces ('any' for all)." },
        srcaddr: { ...NAMES, help: 'IPv4 source addresses or groups.' },
        dstaddr: { ...NAMES, help: 'IPv4 destination addresses or groups.' },
        srcaddr6: { ...NAMES, help: 'IPv6 source addresses or groups.' },
        dstaddr6: { ...NAMES, help: 'IPv6 destination addresses or groups.' },
        service: { ...NAMES, help: 'Services or groups.' },
        action: { type: 'enum', values: ['accept', 'deny'], default: 'deny', help: 'What a matching packet gets.' },
        logtraffic: { type: 'enum', values: ['all', 'utm', 'disable'], default: 'utm', help: 'Traffic log records for its sessions (all and utm log).' },
        'session-ttl': { type: 'int', min: 0, max: 604800, default: 0, help: 'Session timeout (s) for its sessions; 0 = from session-ttl.' },
        schedule: { type: 'string', default: 'always', help: "Only 'always' is supported." },
        nat: { type: 'flag', default: false, help: 'Source NAT for its sessions: the kernel translates them (nft masquerade: the egress interface\'s address, ports as the kernel picks them), or to an IP pool with ippool.' },
        ippool: { type: 'flag', default: false, help: 'With nat: translate the source to the IP pool named by poolname instead of the egress interface\'s address.' },
        poolname: { ...NAMES, help: "The 'config firewall ippool' entry used with ippool (one)." },
        'firewall-session-dirty': { type: 'enum', values: ['check-all', 'check-new'], default: 'check-all', help: "With the domain's firewall-session-dirty check-policy-option: whether a policy change looks up this policy's sessions again (check-all) or leaves them be (check-new)." },
        comments: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
  'firewall ippool': {
    help: 'IPv4 pools that policies with nat and ippool translate source addresses to.',
    id: 'name',
    entry: {
      help: 'One pool: many inside addresses share the range, told apart by port (overload).',
      fields: {
        type: { type: 'enum', values: ['overload'], default: 'overload', help: 'How addresses are shared; overload: port address translation over the range.' },
        startip: { type: 'string', default: '0.0.0.0', help: 'First address of the pool.' },
        endip: { type: 'string', default: '0.0.0.0', help: 'Last address of the pool.' },
        comments: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
  'firewall vip': {
    help: 'Virtual IPs: destination NAT the kernel applies as packets arrive, before the policy is looked up. A policy names the VIP in dstaddr and then sees the mapped address.',
    id: 'name',
    entry: {
      help: 'One VIP.',
      fields: {
        extip: { type: 'string', default: '0.0.0.0', help: 'The external address (or first-last range) the VIP answers on.' },
        mappedip: { type: 'strings', default: [], help: "The inside address, or a '<first>-<last>' range, packets are translated to." },
        extintf: { type: 'string', default: 'any', help: "Interface the translated packets arrive on ('any' for all)." },
        portforward: { type: 'flag', default: false, help: 'Translate only protocol/extport, to mappedport; disabled: every packet to extip.' },
        protocol: { type: 'enum', values: ['tcp', 'udp', 'sctp'], default: 'tcp', help: 'Protocol of a port forward.' },
        extport: { type: 'string', default: '0', help: "External port or '<lo>-<hi>' range of a port forward." },
        mappedport: { type: 'string', default: '0', help: "Inside port (or first port of a range) of a port forward; 0: the same as extport." },
        comment: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
  'system vdom-property': {
    help: 'Per-VDOM limits (global): one entry per VDOM name.',
    id: 'name',
    entry: {
      help: 'Limits of one VDOM (0 = unlimited).',
      fields: {
        session: { type: 'strings', default: [], help: "Sessions: '<max> [<guaranteed>]'; guaranteed sessions are kept free of the other VDOMs." },
        proxy: { type: 'int', min: 0, max: 0x7fffffff, default: 0, help: 'Concurrent users of this VDOM at most.' },
      },
    },
  },
  'system session-helper': {
    help: "Which helper parses which protocol/port. Starts with the vendor's default list (see Session helpers); `edit` amends or adds, `delete <id>` removes one, and the sessions on that port then need a policy for their data connections.",
    id: 'int',
    hasDefaults: true,
    entry: {
      help: 'One binding.',
      fields: {
        name: { type: 'enum', values: HELPER_NAMES, default: 'ftp', help: 'Helper name (ftp, tftp, sip, dcerpc and pmap parse; the other vendor names are accepted and open nothing).' },
        protocol: { type: 'int', min: 0, max: 255, default: 6, help: 'IP protocol (6 TCP, 17 UDP).' },
        port: { type: 'int', min: 1, max: 65535, default: 21, help: 'Destination port of the control session.' },
      },
    },
  },
  'system interface': {
    help: 'Interfaces and the VDOM each belongs to (global).',
    id: 'name',
    entry: {
      help: 'One interface (its Linux name).',
      fields: {
        vdom: { type: 'string', default: 'root', help: 'VDOM of the sessions entering through this interface.' },
        alias: { type: 'string', default: '', help: 'Free text.' },
      },
    },
  },
};

/** Blocks and tables that exist once per VDOM (inside `config vdom` / `edit <vdom>`); the rest are global. */
export const VDOM_SCOPED = new Set([
  'system session-ttl', 'system settings',
  'firewall address', 'firewall address6', 'firewall addrgrp', 'firewall service custom', 'firewall service group', 'firewall policy',
  'firewall ippool', 'firewall vip',
]);
