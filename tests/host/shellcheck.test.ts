/**
 * Every shell script of the lab (cloud-init/, host/, scripts/, .ci/run) passes shellcheck, and the
 * Python programs the host runs compile with the system python3 they run with.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import { REPO, run } from "./support/lab-helpers";

function scripts(interpreter: RegExp): string[] {
  const found: string[] = [];
  for (const dir of ["cloud-init", "host", "scripts", ".ci"]) {
    const abs = path.join(REPO, dir);
    if (!fs.existsSync(abs)) continue;
    for (const name of fs.readdirSync(abs)) {
      const file = path.join(abs, name);
      if (!fs.statSync(file).isFile()) continue;
      const first = fs.readFileSync(file, "utf8").split("\n")[0];
      if (interpreter.test(first) || (name.endsWith(".sh") && interpreter.test("#!/bin/bash"))) {
        found.push(path.relative(REPO, file));
      }
    }
  }
  return found.sort();
}

const shellScripts = scripts(/^#!.*\b(ba)?sh\b/);
const pythonScripts = scripts(/^#!.*\bpython3\b/);
// The host command's modules (no shebang: the criu-lab launcher imports them).
const pythonModules = fs
  .readdirSync(path.join(REPO, "host/criu_lab"))
  .filter((name) => name.endsWith(".py"))
  .map((name) => `host/criu_lab/${name}`);

describe.skipIf(cannotRun("shellcheck", [needCommand("shellcheck")]))("shellcheck", () => {
  it("finds the lab's scripts", () => {
    expect(shellScripts).toEqual(
      expect.arrayContaining([
        "cloud-init/install-criu.sh",
        "cloud-init/setup-lab.sh",
        "scripts/setup-host.sh",
        "scripts/fetch-criu-source.sh",
      ]),
    );
  });

  it.each(shellScripts)("%s passes shellcheck", (file) => {
    const ran = run("shellcheck", ["--external-sources", file], { cwd: REPO });
    expect(ran.stdout + ran.stderr, file).toBe("");
    expect(ran.code).toBe(0);
  });

  it.each(shellScripts)("%s is strict (set -euo pipefail)", (file) => {
    expect(fs.readFileSync(path.join(REPO, file), "utf8")).toMatch(/^set -euo pipefail$/m);
  });
});

describe.skipIf(cannotRun("python3 compile", [needCommand("/usr/bin/python3")]))(
  "python programs",
  () => {
    it("finds criu-lab and the lab's programs", () => {
      expect(pythonScripts).toEqual([
        "host/counter.py",
        "host/criu-lab",
        "host/game_client.py",
        "host/game_server.py",
        "host/trainer.py",
      ]);
    });

    it.each([...pythonScripts, ...pythonModules])("%s compiles with /usr/bin/python3", (file) => {
      const code = `import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")`;
      const ran = run("/usr/bin/python3", ["-c", code, path.join(REPO, file)]);
      expect(ran.stderr, file).toBe("");
      expect(ran.code).toBe(0);
    });
  },
);
