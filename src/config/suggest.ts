// "did you mean ...?" for a misspelt key, block, statement or value: the nearest valid name by
// edit distance, offered only when it is close enough to be a typo of it rather than another word.

/**
 * Edit distance with adjacent transpositions (optimal string alignment): insertions, deletions,
 * substitutions and swaps of two neighbours each cost 1, so 'defualt' is as near 'default' as
 * 'defalt' is.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Edits a word of this length may be away from a name and still be taken for a typo of it. */
const allowance = (length: number) => Math.min(3, Math.max(1, Math.floor(length / 3)));

/** The candidate nearest to `word` within the typo allowance (the first of equals), if any. */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = allowance(w.length) + 1;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (c !== word && d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** "did you mean 'x'?" when a candidate is near enough to `word`, else undefined. */
export function didYouMean(word: string, candidates: Iterable<string>, quote: (c: string) => string = (c) => `'${c}'`): string | undefined {
  const n = nearest(word, candidates);
  return n === undefined ? undefined : `did you mean ${quote(n)}?`;
}

/**
 * The end of an "unknown name" message: the near miss when there is one (the whole list would
 * bury it), else what is valid.
 */
export function nearOrExpected(word: string, candidates: readonly string[], expected: string, quote?: (c: string) => string): string {
  return didYouMean(word, candidates, quote) ?? expected;
}

/** "; did you mean 'x'?" to append to a message that already lists what is valid, or ''. */
export function alsoDidYouMean(word: string, candidates: readonly string[]): string {
  const d = didYouMean(word, candidates);
  return d ? `; ${d}` : '';
}
