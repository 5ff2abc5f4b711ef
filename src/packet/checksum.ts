// Internet checksum (RFC 1071) and CRC32c (SCTP, RFC 9260 appendix A). The decoder does not
// verify checksums -- packets reach NFQUEUE after the kernel's own checks -- so these serve the
// encoder, tests and pcap tooling.

/** Unfolded one's-complement sum of b[off, off+len) as 16-bit big-endian words, added to `sum`. */
export function onesSum(b: Uint8Array, off: number, len: number, sum = 0): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  // An odd trailing byte is padded with a zero byte on the right.
  if (i < end) sum += b[i] << 8;
  // Fold between calls so long chains of sums stay far below the 53-bit safe range.
  while (sum > 0xffffffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Folds a sum to 16 bits and complements it: the value to store in a checksum field. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function internetChecksum(b: Uint8Array, off = 0, len = b.length - off): number {
  return finishChecksum(onesSum(b, off, len));
}

/** Sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793 / RFC 8200 8.1) for `l4Length` bytes. */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, proto: number, l4Length: number): number {
  let sum = onesSum(src, 0, src.length) + onesSum(dst, 0, dst.length) + proto;
  sum += Math.floor(l4Length / 0x10000) + (l4Length & 0xffff);
  return sum;
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32c (Castagnoli) as SCTP uses it; the result is stored little-endian in the header. */
export function crc32c(b: Uint8Array, off = 0, len = b.length - off): number {
  let c = 0xffffffff;
  for (let i = off; i < off + len; i++) c = CRC32C_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
