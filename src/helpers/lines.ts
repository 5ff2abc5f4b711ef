// Bounded line splitting for text protocols (FTP, SIP): stream chunks in, complete CRLF/LF lines
// out. A line longer than the bound is dropped whole (counted), never buffered without end.

export interface LineState {
  /** Bytes of the unfinished last line. */
  partial: Buffer;
  /** Inside an over-long line: skip to its end. */
  skipping: boolean;
  overlong: number;
}

export const newLines = (): LineState => ({ partial: Buffer.alloc(0), skipping: false, overlong: 0 });

export function splitLines(st: LineState, chunk: Buffer, max: number): string[] {
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    const nl = chunk.indexOf(0x0a, start);
    if (nl < 0) break;
    let piece = chunk.subarray(start, nl);
    start = nl + 1;
    if (st.skipping) { st.skipping = false; st.partial = Buffer.alloc(0); continue; }
    if (st.partial.length) { piece = Buffer.concat([st.partial, piece]); st.partial = Buffer.alloc(0); }
    if (piece.length > max) { st.overlong++; continue; }
    let end = piece.length;
    if (end > 0 && piece[end - 1] === 0x0d) end--;
    lines.push(piece.toString('latin1', 0, end));
  }
  if (start < chunk.length && !st.skipping) {
    const rest = chunk.subarray(start);
    if (st.partial.length + rest.length > max) {
      st.overlong++;
      st.skipping = true;
      st.partial = Buffer.alloc(0);
    } else st.partial = Buffer.concat([st.partial, rest]);
  }
  return lines;
}
