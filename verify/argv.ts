/**
 * Shared by the local CLIs' flag parsing (verify/cli.ts, plan/cli.ts), kept apart so that the
 * plan does not load the SSH client.
 */

/**
 * `--timeout -5` as `--timeout=-5`: node's parseArgs takes a value that starts with a dash for
 * a forgotten argument ("argument is ambiguous"), so the range check that says what is allowed
 * never runs. Only for `numberFlags`, and only a dash followed by a digit.
 */
export function joinNegativeNumbers(argv: string[], numberFlags: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const next = argv[i + 1];
    if (numberFlags.includes(argv[i]) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${argv[i]}=${next}`);
      i++;
    } else {
      out.push(argv[i]);
    }
  }
  return out;
}
