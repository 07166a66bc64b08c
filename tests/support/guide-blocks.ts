/**
 * The lab guide's command blocks (docs/lab-guide.md), as the tests read them: every `sh` block
 * follows an HTML comment that names it, `<!-- typed: NAME -->` (a host test types it into a
 * real interactive bash, reading it from the guide by that name), or says why no test types
 * it, `<!-- not typed: REASON -->` (a second lab host, a reboot). The unit tier holds every
 * block to one of the two and every name to a test that types it (tests/unit/lab-guide.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const GUIDE = join(__dirname, "..", "..", "docs", "lab-guide.md");

export interface GuideBlock {
  /** The block's name (`typed`), or undefined for one no test types. */
  name?: string;
  /** Why no test types it (`not typed`). */
  notTyped?: string;
  /** Its lines, as a learner types them one by one. */
  lines: string[];
  /** The line of the guide where the block's fence opens (1-based). */
  line: number;
}

/** Every `sh` block of the guide with the comment before it. A block with neither comment
 * has both fields undefined (the unit test names it). */
export function guideBlocks(text = readFileSync(GUIDE, "utf8")): GuideBlock[] {
  const blocks: GuideBlock[] = [];
  for (const m of text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    const before = text.slice(0, m.index).trimEnd();
    const last = before.slice(before.lastIndexOf("\n") + 1);
    const typed = last.match(/^<!-- typed: ([a-z0-9-]+) -->$/);
    const notTyped = last.match(/^<!-- not typed: (.+) -->$/);
    blocks.push({
      name: typed?.[1],
      notTyped: notTyped?.[1]?.trim(),
      lines: m[1]!.trimEnd().split("\n"),
      line: before.split("\n").length + 2,
    });
  }
  return blocks;
}

/** The lines of the block named NAME (`<!-- typed: NAME -->`); throws naming it when absent. */
export function guideBlock(name: string): string[] {
  const block = guideBlocks().find((b) => b.name === name);
  if (!block) throw new Error(`docs/lab-guide.md has no block '<!-- typed: ${name} -->'`);
  return block.lines;
}
