/**
 * The declared config key nearest a typo, for the error that refuses an undeclared key: the
 * program's (components/config.ts) and the offline plan's (plan/project.ts) alike.
 */

/** Levenshtein distance over one row: row[j] is the distance between a[0..i) and b[0..j). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The declared key with the smallest edit distance to `key`, ignoring case (the first of
 * equals); undefined when nothing is declared. */
export function closestKey(key: string, declared: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of declared) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}
