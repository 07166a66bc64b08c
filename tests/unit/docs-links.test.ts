/**
 * The README and docs/ link to each other by file and heading: every relative link names a file
 * of the repository and, into a Markdown file, one of its headings (GitHub's anchors).
 * markdownlint (npm run lint) checks links within one file; this checks the ones between files.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..", "..");
const DOCS = ["README.md", ...readdirSync(join(ROOT, "docs")).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith(".md"),
);

function anchors(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/^```[\s\S]*?^```/gm, "");
  return new Set(
    [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      (m[1] as string)
        .replace(/`/g, "")
        .toLowerCase()
        .replace(/[^\w\- ]/g, "")
        .replace(/ /g, "-"),
    ),
  );
}

describe("links between the README and docs/", () => {
  it.each(DOCS)("%s: every relative link names a file and heading that exist", (doc) => {
    const text = readFileSync(join(ROOT, doc), "utf8").replace(/^```[\s\S]*?^```/gm, "");
    const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
    for (const link of links.filter((l) => !/^(https?:|mailto:|#)/.test(l))) {
      const [path, anchor] = link.split("#") as [string, string | undefined];
      const target = join(ROOT, dirname(doc), path);
      expect(existsSync(target), `${doc}: ${link}`).toBe(true);
      if (anchor !== undefined && target.endsWith(".md"))
        expect(anchors(target).has(anchor), `${doc}: ${link} (${relative(ROOT, target)})`).toBe(
          true,
        );
    }
  });
});

describe("the README", () => {
  it("is a first page: at most 300 lines, the manual in docs/", () => {
    const lines = readFileSync(join(ROOT, "README.md"), "utf8").split("\n").length - 1;
    expect(lines).toBeLessThanOrEqual(300);
  });
});
