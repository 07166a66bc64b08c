/**
 * Every command block of the lab guide is typed by a host test as a learner types it, or says
 * why not: the block's comment names it (`typed`) or gives the reason (`not typed`), and each
 * typed name is read by a host test (`guideBlock("NAME")`), which types it into tmux.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GUIDE, guideBlocks } from "../support/guide-blocks";

const HOST_TESTS = join(__dirname, "..", "host");

/** The names each host test reads from the guide, by file. */
function namesRead(): Map<string, string[]> {
  const read = new Map<string, string[]>();
  for (const file of readdirSync(HOST_TESTS).filter((f) => f.endsWith(".test.ts"))) {
    const text = readFileSync(join(HOST_TESTS, file), "utf8");
    for (const m of text.matchAll(/guideBlock\("([a-z0-9-]+)"\)/g))
      read.set(m[1]!, [...(read.get(m[1]!) ?? []), file]);
  }
  return read;
}

describe("the lab guide's command blocks", () => {
  const blocks = guideBlocks();
  const read = namesRead();

  it("has blocks, every one typed by a test or saying why not", () => {
    expect(blocks.length).toBeGreaterThan(20);
    for (const b of blocks)
      expect(
        b.name ?? b.notTyped,
        `docs/lab-guide.md:${b.line}: an sh block needs <!-- typed: NAME --> or <!-- not typed: REASON --> before it`,
      ).toBeTruthy();
  });

  it("names each typed block once, and a host test reads each one", () => {
    const names = blocks.flatMap((b) => (b.name ? [b.name] : []));
    expect(new Set(names).size, `names used twice: ${names.join(", ")}`).toBe(names.length);
    for (const name of names)
      expect(read.has(name), `no tests/host test reads guideBlock("${name}")`).toBe(true);
  });

  it("every block a host test reads exists", () => {
    const names = new Set(blocks.map((b) => b.name));
    for (const [name, files] of read)
      expect(names.has(name), `${files.join(", ")}: no block '${name}' in the guide`).toBe(true);
  });

  it("gives a reason a reader can check for every block not typed", () => {
    for (const b of blocks.filter((x) => x.notTyped))
      expect(b.notTyped!.length, `docs/lab-guide.md:${b.line}`).toBeGreaterThan(10);
  });

  it("labels its command blocks sh (bash/shell/console blocks would escape the tests)", () => {
    const text = readFileSync(GUIDE, "utf8");
    expect(text.match(/^```(bash|shell|console|zsh)$/gm) ?? []).toEqual([]);
  });

  it("pastes no literal PID into a command: each comes from a file or variable", () => {
    for (const b of blocks)
      for (const line of b.lines)
        expect(line, `docs/lab-guide.md:${b.line}`).not.toMatch(/(-t|--pid|kill( -\S+)?) \d+\b/);
  });
});
