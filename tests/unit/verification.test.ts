/**
 * LabVerification's steps, run for real in bash as the host would run them:
 * the step decides pass or fail itself, so a broken lab fails the Command (and the next
 * `pulumi up` runs it again), and its first line of output says which step failed and why.
 * Under Pulumi mocks that play the command provider, a failing step fails the Command with
 * the provider's own error shape, and that error's lines are the ones a user reads.
 */
import * as pulumi from "@pulumi/pulumi";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type * as Verification from "../../components/verification";
import {
  REMOTE_CHECKS,
  SCENARIO_CHECKS,
  type RemoteCheck,
  parseScenario,
} from "../../contract/checks";
import {
  capturedStdout,
  constructionLog,
  failureOf,
  PASSING_CHECK,
  PASSING_DEMO,
  PASSING_DOCTOR,
  type Props,
  valueOf,
} from "./support/mocks";

let V: typeof Verification;
let stubDir: string;

/**
 * A `sudo` on PATH that plays the host (`criu-lab`, `cloud-init`): prints $STUB_OUT (and
 * $STUB_ERR on stderr), exits $STUB_EXIT; `cloud-init` is there for `command -v` only.
 */
function writeSudoStub(dir: string): void {
  const stub = path.join(dir, "sudo");
  fs.writeFileSync(
    stub,
    '#!/bin/bash\nprintf "%s\\n" "$STUB_OUT"\n[ -z "${STUB_ERR:-}" ] || echo "$STUB_ERR" >&2\nexit "${STUB_EXIT:-0}"\n',
    { mode: 0o755 },
  );
  fs.symlinkSync(stub, path.join(dir, "cloud-init"));
  // The host's judge as the lab's files install it (`criu-lab judge`, without sudo).
  fs.symlinkSync(path.join(__dirname, "..", "..", "host", "criu-lab"), path.join(dir, "criu-lab"));
}

/** Runs a step as the provider does: `create` through a shell, with the script on stdin. */
function runStep(step: Verification.RemoteStep, env: Record<string, string> = {}) {
  const result = spawnSync("bash", ["-c", step.create], {
    input: step.stdin,
    encoding: "utf8",
    env: { ...process.env, PATH: `${stubDir}:${process.env.PATH}`, ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * The error @pulumi/command 1.x gives a Command that exits non-zero: ssh.ExitError's text,
 * the command Go-quoted (%q; JSON's quoting is the same for this text), then stdout and
 * stderr (provider/pkg/provider/remote/commandOutputs.go).
 */
function providerError(create: string, status: number, output: string): Error {
  return new Error(
    `Process exited with status ${status}: running ${JSON.stringify(create)}:\n${output}`,
  );
}

/**
 * A failed registration rejects every Output of the resource (and of those depending on it);
 * in `pulumi up` the engine reports it once. Here each is taken, as `failureOf` takes one.
 */
function takeFailures(verification: Verification.LabVerification): void {
  const ignore = () => undefined;
  const { cloudInit, checkCommand, demoCommand, doctorCommand, check, demo, doctor } = verification;
  const owners = [cloudInit, checkCommand, demoCommand, doctorCommand, { check, demo, doctor }];
  for (const owner of [...owners, ...verification.scenarioCommands]) {
    for (const value of Object.values(owner)) {
      if (!pulumi.Output.isInstance(value)) continue;
      const internal = value as unknown as {
        promise(): Promise<unknown>;
        isKnown: Promise<boolean>;
        isSecret: Promise<boolean>;
        allResources?: () => Promise<unknown>;
      };
      internal.promise().catch(ignore);
      internal.isKnown.catch(ignore);
      internal.isSecret.catch(ignore);
      internal.allResources?.().catch(ignore);
    }
  }
}

/** The lines a user reads, carriage returns (the keepalive) dropped as a terminal shows them. */
const linesOf = (text: string) => text.replace(/\r/g, "").split("\n");

beforeAll(async () => {
  stubDir = fs.mkdtempSync(path.join(os.tmpdir(), "verification-test-"));
  writeSudoStub(stubDir);
  // Mocks that play the command provider: each remote Command's step really runs in bash
  // (against the sudo stub); a non-zero exit fails the resource with the provider's error.
  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const inputs = args.inputs as Props;
        if (args.type !== "command:remote:Command") return { id: `${args.name}-id`, state: {} };
        const role = args.name.split("-").pop() as string;
        const env = JSON.parse(process.env[`STEP_${role.toUpperCase()}`] ?? "{}");
        const ran = runStep({ create: inputs.create, stdin: inputs.stdin }, env);
        if (ran.status !== 0) {
          throw providerError(inputs.create, ran.status ?? -1, ran.stdout + ran.stderr);
        }
        return {
          id: `${args.name}-id`,
          state: { ...inputs, stdout: ran.stdout.replace(/\n$/, ""), stderr: ran.stderr },
        };
      },
      call: () => {
        throw new Error("no invokes expected");
      },
    },
    "criu-lab",
    "dev",
    false,
  );
  V = await import("../../components/verification");
});

afterAll(() => fs.rmSync(stubDir, { recursive: true, force: true }));

const passing = JSON.parse(PASSING_DEMO) as Record<string, unknown>;

/** [case, stdout of `criu-lab demo --json`, its exit code, the reason expected or none]. */
const DEMO_CASES: Array<[string, string, number, string | undefined]> = [
  ["a passing demo", PASSING_DEMO, 0, undefined],
  [
    "a failed demo (exit 1)",
    JSON.stringify({
      ok: false,
      error: "criu restore failed: File exists\n(00.012) Error (criu/cr-restore.c:1234)",
      imagesDir: "/var/lib/criu-lab/demo/img",
    }),
    1,
    "criu restore failed: File exists (checkpoint images kept in /var/lib/criu-lab/demo/img on the host) (exit 1)",
  ],
  ["ok: false with exit 0", JSON.stringify({ ok: false, error: "dump failed" }), 0, "dump failed"],
  [
    "a counter that did not continue, exit 0",
    JSON.stringify({ ...passing, firstAfterRestore: 1 }),
    0,
    "the counter did not continue: last before dump 17, first after restore 1",
  ],
  [
    "another PID after restore, exit 0",
    JSON.stringify({ ...passing, restoredPid: 4243 }),
    0,
    "restored PID 4243 differs from the checkpointed PID 4242",
  ],
  [
    "a field of the wrong type, exit 0",
    JSON.stringify({ ...passing, frozenUs: "95000" }),
    0,
    `field 'frozenUs' should be a number, got "95000"`,
  ],
  ["no JSON, exit 0", "Permission denied", 0, "no JSON object in its output: Permission denied"],
];

const stepOf = (command: string, timeoutSeconds = 30): RemoteCheck => ({
  name: "a step",
  command,
  timeoutSeconds,
});

describe("remoteStep", () => {
  it("has a one-line create naming the step, and the script on stdin", () => {
    for (const check of [...Object.values(REMOTE_CHECKS), ...Object.values(SCENARIO_CHECKS)]) {
      const step = V.remoteStep(check);
      expect(step.create).not.toContain("\n");
      expect(step.create).toContain(`criu-lab: ${check.name}`);
      expect(step.create.length).toBeLessThan(120);
      const syntax = spawnSync("bash", ["-n"], { input: step.stdin, encoding: "utf8" });
      expect(syntax.stderr, check.name).toBe("");
      expect(syntax.status, check.name).toBe(0);
    }
  });

  it("runs the check's command unchanged, quotes and all, and passes its output through", () => {
    const ran = runStep(
      V.remoteStep(stepOf(`echo "it's $((1 + 1))"; printf '%s\\n' 'single quoted' >&2`)),
    );
    expect(ran).toEqual({ status: 0, stdout: "it's 2\n", stderr: "single quoted\n" });
  });

  it("gives nothing on stdin to the command (the rest of the script cannot be eaten)", () => {
    const ran = runStep(V.remoteStep(stepOf("cat; echo read-all")));
    expect(ran.status).toBe(0);
    expect(ran.stdout).toBe("read-all\n");
  });

  it("a failing command: its exit code, and first the step and its stderr's first line", () => {
    const ran = runStep(
      V.remoteStep(stepOf("echo progress; echo 'cloud-init failed (status exit 1)' >&2; exit 3")),
    );
    expect(ran.status).toBe(3);
    expect(linesOf(ran.stdout)[0]).toBe(
      "criu-lab: a step failed on the lab host: cloud-init failed (status exit 1) (exit 3)",
    );
    expect(ran.stdout).toContain("progress");
  });

  it("stops a hung check and says which one", () => {
    const ran = runStep(V.remoteStep(stepOf("sleep 30", 1)));
    expect(ran.status).toBe(124);
    expect(linesOf(ran.stdout)[0]).toBe(
      "criu-lab: a step failed on the lab host: timed out after 1s (exit 124)",
    );
  });

  it.each(DEMO_CASES)(
    "judges the demo on the host: %s",
    (_, stdout, exit, reason) => {
      const ran = runStep(V.remoteStep(REMOTE_CHECKS.demo), {
        STUB_OUT: stdout,
        STUB_EXIT: String(exit),
      });
      if (reason === undefined) {
        expect(ran.status).toBe(0);
        expect(ran.stdout).toBe(`${stdout}\n`);
        expect(V.requirePassingDemo(ran.stdout).ok).toBe(true);
      } else {
        // Never a success: exit 0 with a broken result fails as "the lab does not work".
        expect(ran.status).toBe(exit === 0 ? 1 : exit);
        expect(linesOf(ran.stdout)[0]).toBe(
          `criu-lab: checkpoint/restore demo failed on the lab host: ${reason}`,
        );
        // The program's own judge agrees (contract/checks.ts parseDemo).
        expect(() => V.requirePassingDemo(stdout)).toThrow();
      }
    },
    20_000,
  );

  /** [scenario, stdout (real, or real with fields changed), exit code of criu-lab]. */
  const real = (name: "training" | "game", changes: Record<string, unknown> = {}) =>
    JSON.stringify({ ...JSON.parse(capturedStdout(name)), ...changes });
  const SCENARIO_CASES: Array<["training" | "game", string, number]> = [
    ["training", capturedStdout("training").trim(), 0],
    ["game", capturedStdout("game").trim(), 0],
    ["training", capturedStdout("training-refused").trim(), 1],
    ["game", capturedStdout("game-iptables").trim(), 1],
    ["training", real("training", { resumedAtStep: 11 }), 0],
    ["training", real("training", { stateMatches: false }), 0],
    ["training", real("training", { restoredPid: 1 }), 0],
    ["training", real("training", { imageBytes: 0 }), 0],
    ["game", real("game", { clientsStillConnected: 3 }), 0],
    ["game", real("game", { scoresPreserved: false }), 0],
    ["game", real("game", { networkLock: undefined }), 0],
  ];

  it.each(SCENARIO_CASES)(
    "judges the %s scenario on the host as the verifier does (%#)",
    (name, stdout, exit) => {
      const ran = runStep(V.remoteStep(SCENARIO_CHECKS[name]), {
        STUB_OUT: stdout,
        STUB_EXIT: String(exit),
      });
      const verifier = parseScenario(name, stdout);
      if (verifier.ok) {
        expect(ran.status).toBe(0);
        expect(ran.stdout).toBe(`${stdout}\n`);
      } else {
        expect(ran.status).toBe(exit === 0 ? 1 : exit);
        // The first line names the scenario and the same reason the verifier gives.
        const first = linesOf(ran.stdout)[0] ?? "";
        const reason = (verifier.error ?? "").split("\n")[0] ?? "";
        expect(first).toContain(`criu-lab: scenario ${name} failed on the lab host: ${reason}`);
      }
    },
    20_000,
  );

  it("judges the doctor on the host: the real output passes, a broken one does not", () => {
    expect(runStep(V.remoteStep(REMOTE_CHECKS.doctor), { STUB_OUT: PASSING_DOCTOR }).status).toBe(
      0,
    );
    const rest = JSON.parse(PASSING_DOCTOR) as Record<string, unknown>;
    delete rest.exercises;
    const ran = runStep(V.remoteStep(REMOTE_CHECKS.doctor), { STUB_OUT: JSON.stringify(rest) });
    expect(ran.status).toBe(1);
    expect(linesOf(ran.stdout)[0]).toBe(
      "criu-lab: doctor failed on the lab host: field 'exercises' should be an object, got null",
    );
  });

  it("judges the check on the host: a failed check names its error", () => {
    const failed = JSON.stringify({
      ok: false,
      criuVersion: "3.17.1",
      kernel: "6.14.0",
      error: "Unexpected rt vDSO area bounds",
    });
    const ran = runStep(V.remoteStep(REMOTE_CHECKS.check), { STUB_OUT: failed, STUB_EXIT: "1" });
    expect(ran.status).toBe(1);
    expect(linesOf(ran.stdout)[0]).toBe(
      "criu-lab: criu check failed on the lab host: Unexpected rt vDSO area bounds (exit 1)",
    );
    const passed = runStep(V.remoteStep(REMOTE_CHECKS.check), { STUB_OUT: PASSING_CHECK });
    expect(passed.status).toBe(0);
  });
});

/** The connection the LabVerification tests dial (the stub provider runs the steps here). */
const connection = {
  host: "203.0.113.10",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
  hostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost",
  triggers: ["hash", "i-0123"],
};

/** What the stub answers for a step (by role): its stdout, stderr and exit code. */
const stepEnv = (role: string, env: Record<string, string>) => {
  process.env[`STEP_${role.toUpperCase()}`] = JSON.stringify(env);
};

/**
 * The failed step's message as the provider words it: the line naming the command it ran,
 * and the host's reason on the line after it.
 */
/** The reason a step's failed Command gives, after the line that says it ran the step `what`. */
async function stepFailure(output: pulumi.Output<unknown>, what: string) {
  const lines = linesOf((await failureOf(output)).message);
  const at = lines.findIndex((l) => l.includes("Process exited with status 1: running"));
  expect(lines[at]).toContain(`running "bash -s  # criu-lab: ${what}`);
  return lines[at + 1];
}

describe("LabVerification under a provider that fails non-zero exits", () => {
  beforeEach(() => stepEnv("doctor", { STUB_OUT: PASSING_DOCTOR }));

  it("passes a working lab, with update and create bounded", async () => {
    stepEnv("check", { STUB_OUT: PASSING_CHECK });
    stepEnv("demo", { STUB_OUT: PASSING_DEMO });
    stepEnv("init", { STUB_OUT: "status: done" });
    const log = constructionLog();
    const verification = new V.LabVerification("ok", connection, {
      transformations: [log.transformation],
    });
    expect((await valueOf(verification.demo)).restoredPid).toBe(4242);
    expect((await valueOf(verification.check)).criuVersion).toBe("4.2");
    const commands = log.constructed.filter((c) => c.type === "command:remote:Command");
    expect(commands.map((c) => c.name)).toEqual([
      "ok-cloud-init",
      "ok-check",
      "ok-demo",
      "ok-doctor",
    ]);
    expect((await valueOf(verification.doctor)).exercises.game?.ok).toBe(true);
    for (const c of commands) {
      const timeouts = c.opts.customTimeouts;
      expect(timeouts?.create, c.name).toMatch(/^\d+s$/);
      expect(timeouts?.update, c.name).toBe(timeouts?.create);
    }
  });

  it("a failed demo fails its Command; the line after the provider's says why", async () => {
    stepEnv("check", { STUB_OUT: PASSING_CHECK });
    stepEnv("init", { STUB_OUT: "status: done" });
    stepEnv("demo", {
      STUB_OUT: JSON.stringify({
        ok: false,
        error: "criu restore failed: File exists (pid 4242 is taken)",
        imagesDir: "/var/lib/criu-lab/demo/img",
      }),
      STUB_EXIT: "1",
    });
    const verification = new V.LabVerification("faildemo", connection);
    takeFailures(verification);
    expect(await stepFailure(verification.demo, "checkpoint/restore demo")).toBe(
      "criu-lab: checkpoint/restore demo failed on the lab host: criu restore failed: " +
        "File exists (pid 4242 is taken) (checkpoint images kept in /var/lib/criu-lab/demo/img on the host) (exit 1)",
    );
  });

  it("a demo that exits 0 with a broken result fails its Command too (so it re-runs)", async () => {
    stepEnv("check", { STUB_OUT: PASSING_CHECK });
    stepEnv("init", { STUB_OUT: "status: done" });
    stepEnv("demo", { STUB_OUT: JSON.stringify({ ...JSON.parse(PASSING_DEMO), restoredPid: 7 }) });
    const verification = new V.LabVerification("brokendemo", connection);
    takeFailures(verification);
    const message = (await failureOf(verification.demo)).message;
    expect(message).toContain("Process exited with status 1: running");
    expect(linesOf(message)).toContain(
      "criu-lab: checkpoint/restore demo failed on the lab host: restored PID 7 differs from the checkpointed PID 4242",
    );
  });

  it("criu-lab missing on the host (exit 3): the demo's Command fails saying so", async () => {
    // The last step, so that no other Command waits on the failed one (the SDK would leave
    // the dependent's failed registration unobserved here; the engine reports it in `up`).
    stepEnv("init", { STUB_OUT: "status: done" });
    stepEnv("check", { STUB_OUT: PASSING_CHECK });
    stepEnv("demo", {
      STUB_OUT: "",
      STUB_ERR: "sudo: criu-lab: command not found",
      STUB_EXIT: "3",
    });
    const verification = new V.LabVerification("missing", connection);
    takeFailures(verification);
    const lines = linesOf((await failureOf(verification.demo)).message);
    expect(lines).toContain(
      "criu-lab: checkpoint/restore demo failed on the lab host: no JSON object in its output: sudo: criu-lab: command not found (exit 3)",
    );
  });
});

describe("LabVerification with scenarios (verifyScenarios)", () => {
  beforeEach(() => {
    stepEnv("init", { STUB_OUT: "status: done" });
    stepEnv("check", { STUB_OUT: PASSING_CHECK });
    stepEnv("demo", { STUB_OUT: PASSING_DEMO });
    stepEnv("doctor", { STUB_OUT: PASSING_DOCTOR });
  });

  it("runs each scenario asked for, judged on the host; real passing runs pass", async () => {
    stepEnv("training", { STUB_OUT: capturedStdout("training") });
    stepEnv("game", { STUB_OUT: capturedStdout("game") });
    const log = constructionLog();
    const verification = new V.LabVerification(
      "both",
      { ...connection, scenarios: ["training", "game"] },
      { transformations: [log.transformation] },
    );
    const stdout = await Promise.all(verification.scenarioCommands.map((c) => valueOf(c.stdout)));
    expect(JSON.parse(stdout[0] ?? "").resumedAtStep).toBe(31);
    expect(JSON.parse(stdout[1] ?? "").clientsStillConnected).toBe(4);
    const names = log.constructed.filter((c) => c.type === "command:remote:Command");
    expect(names.map((c) => c.name)).toContain("both-scenario-game");
  });

  /** The training step alone of a verification named NAME whose failures the test takes. */
  function trainingStep(name: string) {
    const verification = new V.LabVerification(name, { ...connection, scenarios: ["training"] });
    takeFailures(verification);
    const training = verification.scenarioCommands[0];
    if (!training) throw new Error("no training step");
    return training;
  }

  it("a scenario that did not restore the latest checkpoint fails its Command, naming both", async () => {
    const wrong = { ...JSON.parse(capturedStdout("training")), resumedAtStep: 11 };
    stepEnv("training", { STUB_OUT: JSON.stringify(wrong) });
    const training = trainingStep("wrongckpt");
    expect(await stepFailure(training.stdout, "scenario training")).toBe(
      "criu-lab: scenario training failed on the lab host: the job resumed at step 11, but the " +
        "latest checkpoint was taken at step 31: not restored from the latest checkpoint",
    );
  });

  it("a scenario the host cannot run fails with the doctor's reason (exit 1 kept)", async () => {
    stepEnv("training", { STUB_OUT: capturedStdout("training-refused"), STUB_EXIT: "1" });
    const training = trainingStep("refused");
    const lines = linesOf((await failureOf(training.stdout)).message);
    expect(lines.find((l) => l.startsWith("criu-lab: scenario training failed"))).toMatch(
      /^criu-lab: scenario training failed on the lab host: training-incremental cannot run on this host: no dirty-page tracking .* \(checkpoint images kept in \/var\/log\/criu-lab\/training-.*\/checkpoints on the host\) \(exit 1\)$/,
    );
  });
});
