// Cuts a client's byte stream into request lines, holding at most `maxLine` bytes of a line that
// has not ended yet. A line is measured in bytes, without its newline, whatever chunks it came in:
// a line over the bound is refused the same whether its newline arrives in the same chunk or
// never, so a client cannot make the daemon buffer more than the bound. Bytes are decoded only
// once a line is complete, so a UTF-8 sequence cut between chunks decodes whole.

export type LineEvent = { line: string } | { tooLong: number };

export class LineReader {
  private parts: Buffer[] = [];
  private held = 0;
  /** Set once a line was over the bound: the stream is not cut into lines any further. */
  overflowed = false;

  constructor(readonly maxLine: number) {}

  /** Bytes of the unfinished line held now (never more than maxLine). */
  get buffered(): number { return this.held; }

  /**
   * The complete lines in `chunk` (with what was held before), in order. A line over the bound
   * ends the list with { tooLong: bytes seen so far } and everything after it is dropped.
   */
  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = [];
    if (this.overflowed) return out;
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(0x0a, at);
      const end = nl < 0 ? chunk.length : nl;
      const len = this.held + (end - at);
      if (len > this.maxLine) {
        this.overflowed = true;
        this.parts = [];
        this.held = 0;
        out.push({ tooLong: len });
        return out;
      }
      if (nl < 0) {
        // Copied: the socket may reuse the chunk's memory.
        this.parts.push(Buffer.from(chunk.subarray(at)));
        this.held = len;
        return out;
      }
      const piece = chunk.subarray(at, nl);
      const line = this.parts.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.held = 0;
      out.push({ line: line.toString('utf8') });
      at = nl + 1;
    }
    return out;
  }
}
