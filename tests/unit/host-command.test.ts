/**
 * The host command's Python (host/criu_lab and the lab's programs) in the unit tier:
 * pyflakes finds nothing in it or its tests, and its unit tests (tests/python: verdicts,
 * timelines, parsing, argument checks, run directories on a temporary LOG_DIR) pass. No root.
 * Both run under the system Python, the one the lab host runs the command with
 * (/usr/bin/python3: a `python3` earlier on PATH may be another), by package.json's `lint:py`
 * and `test:py`, so `npm run lint:py` / `npm run test:py` run exactly what this test runs.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { cannotRun } from "../support/requirements";

const ROOT = path.resolve(__dirname, "../..");
const SCRIPTS = (
  JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

/** A problem string when the system Python cannot import `module` (Debian package `pkg`). */
function needPythonModule(module: string, pkg: string): string | undefined {
  const ran = spawnSync("/usr/bin/python3", ["-c", `import ${module}`], { stdio: "ignore" });
  return ran.status === 0
    ? undefined
    : `/usr/bin/python3 has no ${module} (apt-get install ${pkg})`;
}

/** Runs package.json's script NAME with sh (as npm would), from the repository's root. */
function runScript(name: string): { status: number | null; output: string } {
  const ran = spawnSync("sh", ["-c", SCRIPTS[name]], { cwd: ROOT, encoding: "utf8" });
  return { status: ran.status, output: `${ran.stdout}${ran.stderr}` };
}

describe.skipIf(
  cannotRun("pyflakes (lint:py)", [needPythonModule("pyflakes", "python3-pyflakes")]),
)("lint:py", () => {
  it("pyflakes finds nothing in the host command, the lab's programs and their tests", () => {
    const ran = runScript("lint:py");
    expect(ran.output).toBe("");
    expect(ran.status).toBe(0);
  });
});

describe.skipIf(
  cannotRun("the host command's unit tests (test:py)", [
    needPythonModule("pytest", "python3-pytest"),
  ]),
)("test:py", () => {
  it("tests/python passes under the system Python, nothing skipped", () => {
    const ran = runScript("test:py");
    // On a failure, pytest's own report is the message.
    expect(ran.status, ran.output).toBe(0);
    expect(ran.output).toMatch(/^\d+ passed\b/m);
    expect(ran.output).not.toMatch(/\b(skipped|xfailed|deselected)\b/);
  });
});

describe("CI's set-up", () => {
  it("installs pytest and pyflakes for the system Python (scripts/ci-setup.sh), which CI=true requires", () => {
    const setup = fs.readFileSync(path.join(ROOT, "scripts/ci-setup.sh"), "utf8");
    const packages = /^TEST_PACKAGES=\(([^)]*)\)/m.exec(setup)?.[1].split(/\s+/) ?? [];
    expect(packages).toEqual(
      expect.arrayContaining(["python3", "python3-pytest", "python3-pyflakes"]),
    );
  });
});
