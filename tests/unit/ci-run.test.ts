/**
 * The README's Testing section shows what CI runs: the commands .ci/run runs after its set-up
 * are the ones in the section's shell block, in order (the Node LTS run included).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..", "..");

describe(".ci/run and the README's Testing section", () => {
  it("run the same test commands in the same order", () => {
    const ciRun = readFileSync(join(ROOT, ".ci/run"), "utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    const afterSetup = ciRun.slice(ciRun.indexOf("bash scripts/ci-setup.sh") + 1);
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const testing = readme.slice(readme.indexOf("\n## Testing\n"));
    const block = /```sh\n([\s\S]*?)```/.exec(testing)?.[1] ?? "";
    const shown = block
      .split("\n")
      .map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => line !== "");
    expect(afterSetup).toEqual(shown);
    expect(shown).toContain('PATH="$PWD/.cache/node-lts/node_modules/.bin:$PATH" npm test');
  });

  it("installs the Node LTS the second unit run uses, from the npm registry's node package", () => {
    const setup = readFileSync(join(ROOT, "scripts/ci-setup.sh"), "utf8");
    expect(setup).toMatch(/^NODE_LTS_VERSION=24\.\d+\.\d+$/m);
    expect(setup).toMatch(/^NODE_LTS_DIR=\.cache\/node-lts$/m);
    expect(setup).toContain('npm install --prefix "$NODE_LTS_DIR"');
  });
});
