// Address text <-> bytes. Session-table keys are canonical text, so formatting runs for every
// decoded packet and must be cheap; parsing runs for configuration, policy matching on new
// sessions and tests, so it avoids allocations but favours clarity.
//
// Canonical forms: IPv4 dotted quad without leading zeros; IPv6 per RFC 5952 (lowercase, no
// leading zeros in a group, the longest run of two or more zero groups compressed -- the first
// one on a tie -- and IPv4-mapped addresses shown as ::ffff:a.b.c.d).

const OCTET: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));
const OCTET_DOT: readonly string[] = OCTET.map((s) => s + '.');
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16));
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Dotted quad of the 4 bytes at `off`. The caller guarantees they are present. */
export function ipv4ToString(b: Uint8Array, off = 0): string {
  return OCTET_DOT[b[off]] + OCTET_DOT[b[off + 1]] + OCTET_DOT[b[off + 2]] + OCTET[b[off + 3]];
}

/** RFC 5952 text of the 16 bytes at `off`. The caller guarantees they are present. */
export function ipv6ToString(b: Uint8Array, off = 0): string {
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let g = 0; g < 8; g++) {
    if (b[off + 2 * g] === 0 && b[off + 2 * g + 1] === 0) {
      if (runStart < 0) runStart = g;
      const len = g - runStart + 1;
      if (len > bestLen) {
        bestLen = len;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  // RFC 5952 4.2.2: a single zero group is written out, not compressed.
  if (bestLen < 2) bestStart = -1;
  if (bestStart === 0 && bestLen === 5 && b[off + 10] === 0xff && b[off + 11] === 0xff) {
    return '::ffff:' + ipv4ToString(b, off + 12);
  }
  let s = '';
  let sep = false;
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      s += '::';
      g += bestLen - 1;
      sep = false;
      continue;
    }
    if (sep) s += ':';
    const hi = b[off + 2 * g];
    const lo = b[off + 2 * g + 1];
    s += hi === 0 ? HEX[lo] : HEX[hi] + HEX2[lo];
    sep = true;
  }
  return s;
}

/** Canonical text of a 4- or 16-byte address. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return ipv4ToString(bytes, 0);
  if (bytes.length === 16) return ipv6ToString(bytes, 0);
  throw new RangeError(`address must be 4 or 16 bytes, got ${bytes.length}`);
}

/**
 * Value of the dotted quad in text[start, end) as an unsigned 32-bit number, or -1.
 * Leading zeros are refused: inet_aton reads them as octal, so "010" is ambiguous.
 */
function parseV4Range(text: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else if (c === 46) {
      if (digits === 0 || parts === 3) return -1;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  if (digits === 0 || parts !== 3) return -1;
  return value * 256 + part;
}

/** IPv4 text as an unsigned 32-bit number, or -1 when it is not a dotted quad. */
export function ipv4ToUint32(text: string): number {
  return parseV4Range(text, 0, text.length);
}

/** Dotted quad text -> 4 bytes (written into `out` at `off` when given), or null. */
export function parseIPv4(text: string, out?: Uint8Array, off = 0): Uint8Array | null {
  const v = parseV4Range(text, 0, text.length);
  if (v < 0) return null;
  const o = out ?? new Uint8Array(4);
  o[off] = v >>> 24;
  o[off + 1] = (v >>> 16) & 0xff;
  o[off + 2] = (v >>> 8) & 0xff;
  o[off + 3] = v & 0xff;
  return o;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const groups = new Uint16Array(8);

/**
 * IPv6 text (any RFC 4291 form, including a trailing dotted quad) -> 16 bytes, or null.
 * Zone identifiers ("%eth0") are refused: they never appear in packets or session keys.
 */
export function parseIPv6(text: string, out?: Uint8Array, off = 0): Uint8Array | null {
  const n = text.length;
  if (n < 2 || n > 45) return null;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let value = 0;
    let h: number;
    while (i < n && (h = hexValue(text.charCodeAt(i))) >= 0) {
      value = value * 16 + h;
      i++;
    }
    if (i < n && text.charCodeAt(i) === 46) {
      // A dotted quad may only fill the last 32 bits.
      if (count > 6) return null;
      const v4 = parseV4Range(text, start, n);
      if (v4 < 0) return null;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = n;
      break;
    }
    if (i === start || i - start > 4 || count === 8) return null;
    groups[count++] = value;
    if (i === n) break;
    if (text.charCodeAt(i) !== 58) return null;
    i++;
    if (i < n && text.charCodeAt(i) === 58) {
      if (gap >= 0) return null;
      gap = count;
      i++;
    } else if (i === n) {
      return null;
    }
  }
  if (gap < 0 ? count !== 8 : count > 7) return null;
  const o = out ?? new Uint8Array(16);
  const fill = 8 - count;
  for (let g = 0, src = 0; g < 8; g++) {
    let v = 0;
    if (gap < 0 || g < gap) v = groups[src++];
    else if (g >= gap + fill) v = groups[src++];
    o[off + 2 * g] = v >>> 8;
    o[off + 2 * g + 1] = v & 0xff;
  }
  return o;
}

/** 4 for dotted-quad text, 6 for IPv6 text, 0 for anything else. */
export function addressFamily(text: string): 4 | 6 | 0 {
  if (parseV4Range(text, 0, text.length) >= 0) return 4;
  return parseIPv6(text, scratch16) ? 6 : 0;
}

export interface ParsedAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

export function parseAddress(text: string): ParsedAddress | null {
  const v4 = parseIPv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIPv6(text);
  return v6 ? { family: 6, bytes: v6 } : null;
}

/** The canonical form of any accepted address text (what decode would produce), or null. */
export function canonicalAddress(text: string): string | null {
  const a = parseAddress(text);
  return a ? formatAddress(a.bytes) : null;
}

// ---- prefixes ---------------------------------------------------------------------------

export interface Cidr {
  family: 4 | 6;
  /** Network address with the host bits cleared. */
  bytes: Uint8Array;
  prefix: number;
}

/** Clears the bits after `prefix` so containment can compare whole bytes. */
function maskInPlace(bytes: Uint8Array, prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = prefix - i * 8;
    if (keep >= 8) continue;
    bytes[i] = keep <= 0 ? 0 : bytes[i] & (0xff << (8 - keep));
  }
}

function parsePrefixLength(text: string, start: number, max: number): number {
  if (start >= text.length || text.length - start > 3) return -1;
  let v = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    if (i > start && v === 0) return -1;
    v = v * 10 + (c - 48);
  }
  return v <= max ? v : -1;
}

/**
 * "192.0.2.0/24", "2001:db8::/32", or a bare address (a host prefix). Host bits set in the text
 * are cleared, as the vendor CLI does for `set subnet`; use formatCidr to show the result.
 */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const a = parseAddress(addrText);
  if (!a) return null;
  const max = a.family === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : parsePrefixLength(text, slash + 1, max);
  if (prefix < 0) return null;
  maskInPlace(a.bytes, prefix);
  return { family: a.family, bytes: a.bytes, prefix };
}

/** Prefix length of a dotted netmask ("255.255.255.0" -> 24), or -1 if it is not contiguous. */
export function netmaskToPrefix(mask: string): number {
  const v = parseV4Range(mask, 0, mask.length);
  if (v < 0) return -1;
  let prefix = 0;
  while (prefix < 32 && v & (0x80000000 >>> prefix)) prefix++;
  // Every bit after the first zero must be zero too.
  const expected = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return v === expected ? prefix : -1;
}

export function formatCidr(c: Cidr): string {
  return formatAddress(c.bytes) + '/' + c.prefix;
}

/** Whether the `len`-byte address at b[off] (len 4 or 16) lies in the prefix. */
export function cidrContainsBytes(c: Cidr, b: Uint8Array, off: number, len: number): boolean {
  if (len !== c.bytes.length) return false;
  const whole = c.prefix >>> 3;
  for (let i = 0; i < whole; i++) if (b[off + i] !== c.bytes[i]) return false;
  const rest = c.prefix & 7;
  if (rest === 0) return true;
  const m = (0xff << (8 - rest)) & 0xff;
  return (b[off + whole] & m) === c.bytes[whole];
}

const scratch16 = new Uint8Array(16);
const scratch4 = new Uint8Array(4);

/**
 * Whether the address text lies in the prefix. Families never match across: an IPv4 prefix
 * does not contain ::ffff:192.0.2.1, because session tuples keep the family they arrived with.
 */
export function cidrContains(c: Cidr, addr: string): boolean {
  if (c.family === 4) {
    return parseIPv4(addr, scratch4, 0) !== null && cidrContainsBytes(c, scratch4, 0, 4);
  }
  return parseIPv6(addr, scratch16, 0) !== null && cidrContainsBytes(c, scratch16, 0, 16);
}
