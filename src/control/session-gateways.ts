// The `gwy=` pair of session views: the next hop the routing table gives for the address each
// direction's packets are routed to. All the views of one list share one batch of lookups.

import { noGateway, type SessionView } from './session-view.js';

/** Destination -> next hop for those that have one (NextHopCache.nextHops). */
export type NextHops = (destinations: string[]) => Promise<Map<string, string>>;

/**
 * Where each direction is routed, NAT applied: the original direction to the reply tuple's
 * source (the server, after DNAT), the reply direction to the original source (the client,
 * after SNAT is undone). A direction that has carried no packet was never routed: as on the
 * vendor's box, it has no gateway until its first packet.
 */
export function routedDestinations(v: SessionView): [string | undefined, string | undefined] {
  return [
    v.org.packets > 0 ? v.reply_tuple.src : undefined,
    v.reply.packets > 0 ? v.orig_tuple.src : undefined,
  ];
}

/** The views with their `gwy` filled from one lookup of all their destinations. */
export async function withGateways(views: SessionView[], nextHops: NextHops): Promise<SessionView[]> {
  const wanted = views.map(routedDestinations);
  const all = new Set<string>();
  for (const pair of wanted) for (const d of pair) if (d !== undefined) all.add(d);
  if (!all.size) return views;
  const hops = await nextHops([...all]);
  return views.map((v, i) => {
    const none = noGateway(v.orig_tuple.family);
    const [org, reply] = wanted[i].map((d) => (d !== undefined ? hops.get(d) : undefined) ?? none);
    return { ...v, gwy: [org, reply] };
  });
}
