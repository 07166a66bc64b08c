/**
 * The pieces of LabVerification that run without Pulumi: the timeout wrapper (run for real
 * in bash, as the host would run it) and the pass/fail judgement of check and demo output.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  requirePassingCheck,
  requirePassingDemo,
  withTimeout,
} from "../../components/verification";
import { REMOTE_CHECKS } from "../../verify/checks";
import { PASSING_CHECK, PASSING_DEMO } from "./support/mocks";

function runBash(script: string) {
  const result = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("withTimeout", () => {
  it("runs the check's command unchanged, quotes and all, and keeps its exit code", () => {
    const script = withTimeout({
      name: "quoting",
      command: `echo "it's $((1 + 1))"; printf '%s\\n' 'single quoted'\nexit 3`,
      timeoutSeconds: 30,
    });
    const result = runBash(script);
    expect(result.stdout).toBe("it's 2\nsingle quoted\n");
    expect(result.status).toBe(3);
    expect(result.stderr).toBe("");
  });

  it("wraps each of the lab's real checks into valid shell", () => {
    for (const check of Object.values(REMOTE_CHECKS)) {
      const syntax = spawnSync("bash", ["-n", "-c", withTimeout(check)], { encoding: "utf8" });
      expect(syntax.stderr, check.name).toBe("");
      expect(syntax.status, check.name).toBe(0);
    }
  });

  it("exits 0 when the check passes", () => {
    expect(runBash(withTimeout({ name: "ok", command: "true", timeoutSeconds: 30 })).status).toBe(
      0,
    );
  });

  it("stops a hung check and says which one", () => {
    const result = runBash(withTimeout({ name: "hang", command: "sleep 30", timeoutSeconds: 1 }));
    expect(result.status).toBe(124);
    expect(result.stderr).toContain("criu-lab: hang timed out after 1s");
  });
});

describe("requirePassingCheck / requirePassingDemo", () => {
  it("return the parsed results of passing runs", () => {
    expect(requirePassingCheck(`progress\n${PASSING_CHECK}`).criuVersion).toBe("4.2");
    expect(requirePassingDemo(PASSING_DEMO)).toMatchObject({ ok: true, pid: 4242 });
  });

  it("throw what failed", () => {
    expect(() =>
      requirePassingCheck(
        JSON.stringify({ ok: false, criuVersion: "3.17.1", kernel: "6.14.0", error: "vDSO" }),
      ),
    ).toThrow(/criu check .*did not pass \(CRIU 3\.17\.1, kernel 6\.14\.0\): vDSO/);
    expect(() =>
      requirePassingDemo(JSON.stringify({ ok: false, error: "dump failed", imagesDir: "/x" })),
    ).toThrow(/demo on the lab host did not pass: dump failed \(checkpoint images kept in \/x/);
  });

  it("throw on output that breaks the contract, quoting it", () => {
    expect(() => requirePassingDemo("Permission denied")).toThrow(
      /verification failed: criu-lab demo: no JSON object.*Permission denied/,
    );
    expect(() => requirePassingCheck('{"ok":true}')).toThrow(/field 'criuVersion'/);
  });
});
