// Policy configs of the e2e tests. controlOnlyConfig (the helper tests): one policy lets the
// client subnet reach the server only on the control channel's ports; everything else meets the
// implicit deny, so any data connection that gets through was let in by a helper's expectation.
// acceptAllConfig: tests that compare tables or expectations rather than filter.

export interface ControlOnly {
  policyId: number;
  /** Name of the custom service. */
  service: string;
  /** Port ranges as `set tcp-portrange` / `set udp-portrange` take them (e.g. '21', '111 135'). */
  tcp?: string;
  udp?: string;
  /** Text appended after the policy (session-helper edits, options). */
  extra?: string;
  /** Lines added to `config system nfsessiond` (e.g. 'set queue-count 2'). */
  system?: string[];
}

export function controlOnlyConfig(o: ControlOnly): string {
  const ranges = [o.tcp ? `        set tcp-portrange ${o.tcp}` : '', o.udp ? `        set udp-portrange ${o.udp}` : ''].filter(Boolean).join('\n');
  const system = (o.system ?? []).map((l) => `    ${l}\n`).join('');
  return `
config system nfsessiond
    set kernel-sync-interval 1
${system}end
config firewall address
    edit "clients"
        set subnet 198.51.100.0/24
    next
end
config firewall address6
    edit "clients6"
        set ip6 2001:db8:100::/64
    next
end
config firewall service custom
    edit "${o.service}"
${ranges}
    next
end
config firewall policy
    edit ${o.policyId}
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "clients"
        set srcaddr6 "clients6"
        set dstaddr "all"
        set dstaddr6 "all"
        set service "${o.service}"
        set action accept
    next
end
${o.extra ?? ''}`;
}

/** One policy that accepts everything from the client side (tests that compare, not filter). */
export function acceptAllConfig(policyId: number): string {
  return `
config system nfsessiond
    set kernel-sync-interval 1
end
config firewall policy
    edit ${policyId}
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set srcaddr6 "all"
        set dstaddr6 "all"
        set service "ALL"
        set action accept
    next
end
`;
}
