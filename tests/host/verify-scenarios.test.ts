/**
 * `criu-lab-verify --scenarios` against a real sshd on 127.0.0.1 and this lab host's real
 * `criu-lab`: the doctor, the demo, then `criu-lab scenario run training|game` with real CRIU,
 * judged by the verifier's contracts. Faults are made for real, as in
 * verify.test.ts: wrappers first on the test user's sudo PATH run the real CRIU with one thing
 * changed (a missing network-lock backend; a restore from an older checkpoint), never an
 * edit of the lab's installed files.
 */
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { REMOTE_CHECKS, SCENARIO_CHECKS } from "../../contract/checks";
import { VerifyReport } from "../../verify/verifier";
import { cannotRun } from "../support/requirements";
import { TestSshd, TestUser, installCriuWrapper, needSshdHost } from "./support/sshd";
import { keyMaterial, runVerifyCli, cliTargetArgs, sshdHostForTests } from "./support/verify-cli";

const USER = "criulab-scenarios-test";

const missing = cannotRun("criu-lab-verify --scenarios on a lab host", needSshdHost({ lab: true }));

describe.skipIf(missing)("criu-lab-verify --scenarios against a real sshd and real CRIU", () => {
  let user: TestUser;
  let sshd: TestSshd;
  /** Run directories of failed runs this file made on purpose: removed afterwards. */
  const madeToFail: string[] = [];
  const cliTarget = () => cliTargetArgs(sshd, user);

  sshdHostForTests(
    {
      user: USER,
      dirPrefix: "criulab-verify-scenarios-",
      what: "verify-scenarios host tests",
      atEnd: (failed) => {
        if (failed) return;
        for (const run of madeToFail) rmSync(run, { recursive: true, force: true });
      },
    },
    (host) => ({ user, sshd } = host),
  );

  const expectNoKeyMaterial = (text: string) => {
    for (const line of keyMaterial(user.key.privateKeyOpenssh)) expect(text).not.toContain(line);
  };

  it("runs training and game after the demo: exit 0, both judged by their contracts", async () => {
    const run = await runVerifyCli(
      [...cliTarget(), "--scenarios", "game,training", "--timeout", "1200", "--json"],
      1_300_000,
    );
    expect(run.hung).toBe(false);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as VerifyReport;
    expect(report.ok).toBe(true);
    expect(report.steps.map((s) => [s.name, s.ok])).toEqual([
      [`connect ${USER}@127.0.0.1:${sshd.port}`, true],
      [REMOTE_CHECKS.cloudInit.name, true],
      [REMOTE_CHECKS.check.name, true],
      [REMOTE_CHECKS.doctor.name, true],
      [REMOTE_CHECKS.demo.name, true],
      // In the order they run, whatever the order asked.
      [SCENARIO_CHECKS.training.name, true],
      [SCENARIO_CHECKS.game.name, true],
    ]);

    // The doctor's result is in the report: this host has no dirty-page tracking.
    expect(report.doctor?.ok).toBe(true);
    expect(report.doctor?.exercises["training-full"]?.ok).toBe(true);
    expect(report.doctor?.exercises["training-incremental"]?.ok).toBe(false);
    expect(report.doctor?.networkLock).toBe("nftables");

    expect(report.scenarios?.map((s) => [s.name, s.status, s.exitCode])).toEqual([
      ["training", "pass", 0],
      ["game", "pass", 0],
    ]);
    const training = report.scenarios?.[0]?.result ?? {};
    expect(training.resumedAtStep).toBe(training.lastCheckpointStep);
    expect(training.stateMatches).toBe(true);
    expect(training.restoredPid).toBe(training.pid);
    expect(training.incremental).toBe(false);
    expect(training.checkpoints).toBe(3);
    const game = report.scenarios?.[1]?.result ?? {};
    expect(game.clientsStillConnected).toBe(game.clients);
    expect(game.scoresPreserved).toBe(true);
    expect(game.pauseMs).toBeGreaterThan(0);
    // They ran on this machine: their images are really there.
    expect(readdirSync(String(training.imagesDir))).toEqual(["1", "2", "3"]);
    expect(readdirSync(String(game.imagesDir))).toContain("pstree.img");

    expect(run.stderr).toContain("ok  scenario training");
    expect(run.stderr).toContain("ok  scenario game");
    expect(run.stderr).toMatch(/training: PID \d+ checkpointed 3 times \(full\)/);
    expectNoKeyMaterial(run.stdout + run.stderr);
  });

  it("a scenario the doctor says cannot run here is skipped with its reason, not failed", async () => {
    // CRIU without nftables support on a host without iptables: the doctor finds no
    // network-lock backend, so `game` cannot run; `criu check` and the demo still work.
    installCriuWrapper(user, "criu-no-nftables", [
      'if [ "$1 $2 $3" = "check --feature network_lock_nftables" ]; then',
      "  echo 'Error (criu/cr-check.c:1): network_lock_nftables is not supported' >&2; exit 1",
      "fi",
    ]);
    const run = await runVerifyCli(
      [...cliTarget(), "--scenarios", "game", "--timeout", "600"],
      660_000,
    );
    expect(run.hung).toBe(false);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /skip scenario game: the doctor says this host cannot run game: no network-lock backend for --tcp-established; no network-lock backend: install iptables/,
    );
    expect(run.stderr).not.toContain("... scenario game");
    // The human summary: the doctor's line and the skipped scenario.
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^criu-lab-verify: OK: /);
    expect(lines[1]).toMatch(/^doctor: .*network lock none; .*cannot: .*game \(no network-lock/);
    expect(lines[2]).toMatch(
      /^ {2}skipped game: the doctor says this host cannot run game: no network-lock backend/,
    );
  });

  it("a restore from an older checkpoint fails training (exit 1); game still runs and passes", async () => {
    // The real CRIU, but the restore is pointed at the first checkpoint instead of the
    // latest: the job comes back at an earlier step, which the verifier must catch.
    installCriuWrapper(user, "criu-old-checkpoint", [
      'if [ "$1" = restore ]; then',
      "  n=$#; prev=",
      '  for a in "$@"; do',
      // Only the training's restores (<run>/checkpoints/N): the demo's stays as it is.
      '    if [ "$prev" = -D ]; then case "$a" in */checkpoints/*) a="${a%/*}/1" ;; esac; fi',
      '    set -- "$@" "$a"; prev=$a',
      "  done",
      '  shift "$n"',
      "fi",
    ]);
    const run = await runVerifyCli(
      [...cliTarget(), "--scenarios", "training,game", "--timeout", "1200", "--json"],
      1_300_000,
    );
    expect(run.hung).toBe(false);
    const report = JSON.parse(run.stdout) as VerifyReport;
    const [training, game] = report.scenarios ?? [];
    // Its run directory (LOG_DIR/training-TIME-PID/checkpoints): removed after a pass.
    const runDir = dirname(String(training?.imagesDir));
    if (runDir.startsWith("/var/log/criu-lab/training-")) madeToFail.push(runDir);
    expect(run.code, run.stderr).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.exitCode).toBe(1);
    expect(training?.status).toBe("fail");
    expect(training?.exitCode).toBe(1);
    // The scenario's own check and the contract say the same: not the latest checkpoint.
    expect(training?.error).toMatch(
      /^scenario training failed: resumed at step (\d+), but the latest checkpoint was taken at step (\d+): not the latest checkpoint/,
    );
    const result = training?.result ?? {};
    expect(result.resumedAtStep).toBeLessThan(Number(result.lastCheckpointStep));
    // The next scenario still ran, and passed: the exit code is the worst of them.
    expect(game?.status).toBe("pass");
    expect(report.error).toBe(training?.error);
    // Evidence: the checkpoints kept on the host and the scenario's logs in the report.
    expect(readdirSync(String(training?.imagesDir))).toEqual(["1", "2", "3"]);
    expect(Object.keys(report.logs ?? {})).toEqual(
      expect.arrayContaining([join(runDir, "restore.log"), join(runDir, "trainer.log")]),
    );
    expect(run.stderr).toContain(
      `the training scenario's images and logs are kept on the host in ${training?.imagesDir}`,
    );
    expectNoKeyMaterial(run.stdout + run.stderr);
  });

  it("refuses unknown scenarios and migration before connecting (exit 2)", async () => {
    const chess = await runVerifyCli([...cliTarget(), "--scenarios", "training,chess"], 60_000);
    expect(chess.code).toBe(2);
    expect(chess.stderr).toContain(
      "--scenarios: 'chess' is not a scenario; allowed: training, game",
    );
    const migration = await runVerifyCli([...cliTarget(), "--scenarios", "migration"], 60_000);
    expect(migration.code).toBe(2);
    expect(migration.stderr).toContain(
      "'migration' cannot run on one host: it needs a second host",
    );
    for (const r of [chess, migration]) {
      expect(r.stdout).toBe("");
      expect(r.stderr).not.toContain("... connect");
    }
  });
});
