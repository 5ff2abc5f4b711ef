// The top-level config blocks nfsessiond understands, keyed by their path.

import type { BlockSpec } from './schema.js';

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
      offload: { type: 'flag', default: true, help: 'Hand established sessions to the kernel so their packets skip userspace.' },
      'offload-mark': { type: 'int', min: 1, max: 0x7fffffff, default: 0x00100000, help: 'Conntrack mark bit that marks an offloaded session.' },
      'kernel-sync-interval': { type: 'int', min: 1, max: 3600, default: 5, help: 'Seconds between dumps of the kernel conntrack table (counters, activity, missed events).' },
      'malformed-verdict': { type: 'enum', values: ['accept', 'drop'], default: 'drop', help: 'Verdict for packets that cannot be decoded.' },
      'control-socket': { type: 'string', default: '/run/nfsessiond/control.sock', help: 'Unix socket for the CLI (mode 0600).' },
      'log-level': { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info', help: 'Daemon log level.' },
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
      'udp-idle-timer': { type: 'int', min: 1, max: 86400, default: 180, help: 'Reserved for UDP idle handling.' },
    },
  },
  'system settings': {
    help: 'Per-domain settings.',
    fields: {
      'tcp-session-without-syn': { type: 'flag', default: false, help: 'Accept a TCP session whose first packet is not a SYN.' },
    },
  },
};
