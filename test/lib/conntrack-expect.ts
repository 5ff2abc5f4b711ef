// The kernel's expectations as `conntrack -L expect` lists them and `conntrack -E expect` reports
// them, reduced to what the helper comparisons check: "<proto> <src>-><dst>:<dport>".

/** Keys in line order; event lines other than [NEW] (DESTROY on use or timeout) are skipped. */
export function conntrackExpectKeys(text: string): string[] {
  return text.split('\n').flatMap((l) => {
    const m = /proto=(\d+) src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/.exec(l);
    return m && (!l.includes('[') || l.includes('[NEW]')) ? [`${m[1]} ${m[2]}->${m[3]}:${m[5]}`] : [];
  });
}
