import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  CheckOutputError,
  DemoResult,
  REMOTE_CHECKS,
  SCENARIO_CHECKS,
  demoContractViolation,
  parseCheck,
  parseDemo,
  parseDoctor,
  parseScenario,
  parseScenarioNames,
} from "../../contract/checks";
import { capturedStdout } from "./support/mocks";

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
    expect(r.error).toBe("the counter did not continue: last before dump 3, first after restore 1");
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
    expect(REMOTE_CHECKS.doctor.command).toBe("sudo criu-lab doctor --json");
    expect(REMOTE_CHECKS.demo.command).toBe("sudo criu-lab demo --json");
    expect(SCENARIO_CHECKS.training.command).toBe("sudo criu-lab scenario run training --json");
    expect(SCENARIO_CHECKS.game.command).toBe("sudo criu-lab scenario run game --json");
  });
});

/** A real captured JSON line with some fields changed, as a host would print it. */
function edited(name: "training" | "game", changes: Record<string, unknown>): string {
  return JSON.stringify({ ...JSON.parse(capturedStdout(name)), ...changes });
}

describe("parseScenario (real output of this host's criu-lab scenario run)", () => {
  it("passes the real training run: resumed at the latest checkpoint, state matching", () => {
    const r = parseScenario("training", capturedStdout("training"));
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.result.resumedAtStep).toBe(r.result.lastCheckpointStep);
    expect(r.imagesDir).toMatch(/^\/var\/log\/criu-lab\/training-.*\/checkpoints$/);
  });

  it("passes the real game run: every player still connected, scores kept", () => {
    const r = parseScenario("game", `progress line\n${capturedStdout("game")}`);
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.result.clientsStillConnected).toBe(4);
  });

  it("keeps a failed run's own error and where its images are", () => {
    const refused = parseScenario("training", capturedStdout("training-refused"));
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatch(/^training-incremental cannot run on this host: no dirty-page/);
    const dump = parseScenario("game", capturedStdout("game-iptables"));
    expect(dump.ok).toBe(false);
    expect(dump.error).toMatch(/^criu dump exited 1; end of \/var\/log\/criu-lab\/game-/);
    expect(dump.imagesDir).toMatch(/\/images$/);
  });

  const broken: Array<["training" | "game", Record<string, unknown>, string]> = [
    [
      "training",
      { resumedAtStep: 11 },
      "the job resumed at step 11, but the latest checkpoint was taken at step 31: not restored from the latest checkpoint",
    ],
    [
      "training",
      { stateMatches: false },
      "the restored job's state differs from its checkpoint's (stateMatches is false)",
    ],
    ["training", { restoredPid: 1 }, "restored PID 1 differs from the checkpointed PID 17527"],
    ["training", { checkpoints: 0 }, "no checkpoint was taken (checkpoints: 0)"],
    ["training", { lostSteps: "2" }, `field 'lostSteps' should be a number, got "2"`],
    ["training", { frozenUs: 3 }, "field 'frozenUs' should be an array, got 3"],
    ["game", { clientsStillConnected: 3 }, "only 3 of 4 players kept their original connection"],
    [
      "game",
      { scoresPreserved: false },
      "the players' scores were not preserved (scoresPreserved is false)",
    ],
    ["game", { pauseMs: null }, "field 'pauseMs' should be a number, got null"],
    ["game", { ok: false, error: "" }, "it reported ok: false without an error"],
  ];
  for (const [name, changes, error] of broken) {
    it(`refuses ${name} with ${JSON.stringify(changes)}`, () => {
      const r = parseScenario(name, edited(name, changes));
      expect(r.ok).toBe(false);
      expect(r.error).toBe(error);
    });
  }

  it("refuses output without JSON", () => {
    expect(() => parseScenario("game", "Traceback (most recent call last):")).toThrow(
      CheckOutputError,
    );
  });
});

describe("parseDoctor (real output of this host's criu-lab doctor)", () => {
  it("says what can run here and why not, with the fix", () => {
    const d = parseDoctor(capturedStdout("doctor"));
    expect(d.ok).toBe(true);
    expect(d.criuVersion).toBe("4.2.1");
    expect(d.networkLock).toBe("nftables");
    expect(d.features).toMatchObject({ mem_dirty_track: false, uffd: true });
    expect(d.exercises["training-full"]).toEqual({ ok: true, reason: "" });
    expect(d.exercises.game).toEqual({ ok: true, reason: "" });
    expect(d.exercises["training-incremental"]?.ok).toBe(false);
    expect(d.exercises["training-incremental"]?.reason).toContain("Dirty tracking is OFF");
    expect(d.exercises["migration-pre-copy"]?.fix).toContain("CONFIG_MEM_SOFT_DIRTY");
    expect(d.fixes).toHaveLength(1);
    // What it leaves out: the raw outputs of criu check, the sysctls.
    expect(Object.keys(d).sort()).toEqual(
      ["ok", "criuVersion", "kernel", "networkLock", "features", "exercises", "fixes"].sort(),
    );
  });

  it("fails a doctor whose exercises are missing", () => {
    const rest = JSON.parse(capturedStdout("doctor")) as Record<string, unknown>;
    delete rest.exercises;
    const d = parseDoctor(JSON.stringify(rest));
    expect(d.ok).toBe(false);
    expect(d.error).toBe("field 'exercises' should be an object, got null");
  });

  it("every scenario names an exercise the doctor knows", () => {
    const d = parseDoctor(capturedStdout("doctor"));
    for (const check of Object.values(SCENARIO_CHECKS)) {
      expect(Object.keys(d.exercises)).toContain(check.exercise);
    }
  });
});

describe("parseScenarioNames", () => {
  it("keeps known names once, in the order they run", () => {
    expect(parseScenarioNames(["game", " training", "game"])).toEqual({
      scenarios: ["training", "game"],
    });
  });

  it("refuses unknown names and migration, saying why and what is allowed", () => {
    expect(parseScenarioNames(["chess", "migration", "constructor"])).toEqual({
      problems: [
        "'chess' is not a scenario; allowed: training, game",
        expect.stringMatching(
          /^'migration' cannot run on one host: it needs a second host \(`criu-lab scenario run migration --to USER@HOST`\).*; allowed: training, game$/,
        ),
        "'constructor' is not a scenario; allowed: training, game",
      ],
    });
  });
});
