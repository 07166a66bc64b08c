import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  CheckOutputError,
  DemoResult,
  REMOTE_CHECKS,
  demoContractViolation,
  parseCheck,
  parseDemo,
} from "../../verify/checks";

/** What `criu-lab demo --json` prints on a host where checkpoint/restore works. */
const goodDemo: DemoResult = {
  ok: true,
  pid: 4242,
  restoredPid: 4242,
  lastBeforeDump: 3,
  firstAfterRestore: 4,
  dumpMs: 67,
  restoreMs: 56.8,
  frozenUs: 12883,
  imageBytes: 4972228,
  imagesDir: "/var/log/criu-lab/demo-20261126T195915Z-11160/images",
  criuVersion: "4.2.1",
  kernel: "6.18.44",
};

describe("parseCheck", () => {
  it("reads the last JSON object, after any progress lines", () => {
    const out = [
      "running criu check",
      '{"ok": false, "criuVersion": "0", "kernel": "x"}',
      '{"ok": true, "criuVersion": "4.2.1", "kernel": "6.18.44", "output": "Looks good."}',
      "",
    ].join("\n");
    expect(parseCheck(out)).toEqual({
      ok: true,
      criuVersion: "4.2.1",
      kernel: "6.18.44",
      output: "Looks good.",
      error: undefined,
    });
  });

  it("keeps a failed check's error", () => {
    const out =
      '{"ok": false, "criuVersion": "3.17.1", "kernel": "6.18", "error": "criu check exited 1"}';
    expect(parseCheck(out)).toMatchObject({ ok: false, error: "criu check exited 1" });
  });

  it("names the missing or mistyped field and keeps the raw output", () => {
    const out = '{"ok": "yes", "criuVersion": "4.2.1", "kernel": "6.18"}';
    expect(() => parseCheck(out)).toThrow(/field 'ok' should be a boolean, got "yes"/);
    try {
      parseCheck(out);
    } catch (err) {
      expect(err).toBeInstanceOf(CheckOutputError);
      expect((err as CheckOutputError).raw).toBe(out);
    }
    expect(() => parseCheck('{"ok": true, "kernel": "6.18"}')).toThrow(/'criuVersion'/);
  });

  it("refuses output with no JSON object (arrays, garbage, nothing)", () => {
    for (const out of ["", "sudo: criu-lab: command not found", "[1,2]", "{not json"]) {
      expect(() => parseCheck(out)).toThrow(/criu-lab check: no JSON object in its output/);
    }
  });
});

describe("parseDemo", () => {
  it("accepts a demo that restored the same PID and counted on", () => {
    expect(parseDemo(JSON.stringify(goodDemo))).toEqual({ ...goodDemo, error: undefined });
  });

  it("turns an ok claim with a different restored PID into a failure", () => {
    const r = parseDemo(JSON.stringify({ ...goodDemo, restoredPid: 4243 }));
    expect(r.ok).toBe(false);
    expect(r.error).toBe("restored PID 4243 differs from the checkpointed PID 4242");
  });

  it("turns an ok claim whose counter did not continue into a failure", () => {
    const r = parseDemo(JSON.stringify({ ...goodDemo, firstAfterRestore: 1 }));
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(
      /the counter did not continue: last before dump 3, first after restore 1 \(expected 4\)/,
    );
    expect(demoContractViolation(goodDemo)).toBeUndefined();
  });

  it("holds an ok claim to every field of the contract", () => {
    const missing: Partial<DemoResult> = { ...goodDemo };
    delete missing.frozenUs;
    expect(() => parseDemo(JSON.stringify(missing))).toThrow(/field 'frozenUs' should be a number/);
    expect(() => parseDemo(JSON.stringify({ ...goodDemo, dumpMs: "67" }))).toThrow(/'dumpMs'/);
  });

  it("keeps what a failed demo reported and NaN for what it never reached", () => {
    const failed = {
      ok: false,
      pid: 4242,
      criuVersion: "4.2.1",
      kernel: "6.18",
      imagesDir: "/var/log/criu-lab/demo-x/images",
      dumpMs: 60,
      lastBeforeDump: 3,
      error: "criu restore exited 1; tail of restore.log:\nCan't fork for 4242: File exists",
    };
    const r = parseDemo(`started counter\n${JSON.stringify(failed)}\n`);
    expect(r).toMatchObject({ ok: false, pid: 4242, dumpMs: 60, imagesDir: failed.imagesDir });
    expect(r.error).toContain("File exists");
    expect(Number.isNaN(r.restoredPid)).toBe(true);
    expect(Number.isNaN(r.frozenUs)).toBe(true);
  });

  it("gives a failed demo without a reason one", () => {
    expect(parseDemo('{"ok": false}')).toMatchObject({
      ok: false,
      imagesDir: "",
      error: "the demo failed without saying why",
    });
  });
});

describe("REMOTE_CHECKS", () => {
  it("are valid POSIX shell with their own timeouts", () => {
    for (const check of Object.values(REMOTE_CHECKS)) {
      // `sh -n` parses without running anything.
      execFileSync("sh", ["-n", "-c", check.command]);
      expect(check.timeoutSeconds).toBeGreaterThan(0);
      expect(check.name).not.toBe("");
    }
  });

  it("run the lab's checks with --json, so the one parser can read them", () => {
    expect(REMOTE_CHECKS.check.command).toBe("sudo criu-lab check --json");
    expect(REMOTE_CHECKS.demo.command).toBe("sudo criu-lab demo --json");
  });
});
