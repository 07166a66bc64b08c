/**
 * `criu-lab scenario run training` for real: trainer.py checkpointed periodically while it
 * runs, killed with SIGKILL and restored from the latest checkpoint. It passes with every
 * field right, and fails when the restore comes from the wrong checkpoint. Each checkpoint
 * is dumped into RAM (a tmpfs directory of the test's own here) and persisted to disk after
 * the job runs on, or straight to disk when the RAM budget is short. The trainer runs as root
 * here (root on this host cannot dump another user's process).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import {
  withFaultyCriu,
  alive,
  HOST,
  HOST_DIR,
  hostProgram,
  itRefusesBadFlags,
  LAB,
  run,
  scenarioRunner,
  tempDir,
  waitFor,
} from "./support/lab-helpers";
import { needLabHost, needPanes } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

const LEFT = 0;
const RIGHT = 1;
// Small and quick: 64 MiB, a checkpoint every 2 s (the bench measures 1 GiB at 60 s).
const QUICK = ["--size-mib", "64", "--interval", "2", "--count", "3", "--step-seconds", "0.2"];

interface Training {
  ok: boolean;
  error?: string;
  checkpoints: number;
  incremental: boolean;
  lastCheckpointStep: number;
  resumedAtStep: number;
  crashedAtStep: number;
  lostSteps: number;
  stateMatches: boolean;
  pid: number;
  restoredPid: number;
  frozenUs: number[];
  imageBytes: number[];
  dumpMs: number[];
  checkpointDetails: {
    checkpoint: number;
    step: number;
    where: "ram" | "disk";
    why: string;
    frozenMs: number;
    dumpMs: number;
    persistMs: number;
    imageBytes: number;
  }[];
  restoredCheckpoint: number;
  restoredFrom: string;
  overheadPercent: number;
  imagesDir: string;
}

const skipScenario = cannotRun("training scenario", needLabHost("criu", "crit"));
describe.skipIf(skipScenario)("criu-lab scenario run training", () => {
  let logs: string;
  let ram: string;
  const lab = scenarioRunner("training", () => ({ CRIU_LAB_LOG_DIR: logs, CRIU_LAB_RAM_DIR: ram }));
  beforeAll(() => {
    logs = tempDir("training");
    // The tmpfs the scenario dumps into, a directory of the test's own on it.
    ram = fs.mkdtempSync("/dev/shm/criu-lab-test-training-");
  });
  afterAll(() => {
    fs.rmSync(logs, { recursive: true, force: true });
    fs.rmSync(ram, { recursive: true, force: true });
  });

  describe("--json", () => {
    let r: Training;
    beforeAll(() => {
      const ran = lab([...QUICK, "--json"]);
      expect(ran.stdout.trim().split("\n"), ran.stderr).toHaveLength(1);
      r = JSON.parse(ran.stdout);
      expect(ran.code, r.error).toBe(ExitCode.ok);
    });

    it("resumes at the latest checkpoint's step with its state, with the PID it had", () => {
      expect(r.ok).toBe(true);
      expect(r.checkpoints).toBe(3);
      expect(r.resumedAtStep).toBe(r.lastCheckpointStep);
      expect(r.lastCheckpointStep).toBeGreaterThan(0);
      expect(r.lostSteps).toBe(r.crashedAtStep - r.resumedAtStep);
      expect(r.lostSteps).toBeGreaterThanOrEqual(2);
      expect(r.stateMatches).toBe(true);
      expect(r.restoredPid).toBe(r.pid);
      expect(alive(r.pid)).toBe(false);
    });

    it("reports frozen time and image size per checkpoint, and the overhead", () => {
      const doctor = JSON.parse(run(LAB.command, ["doctor", "--json"]).stdout);
      expect(r.incremental).toBe(doctor.exercises["training-incremental"].ok);
      expect(r.frozenUs).toHaveLength(3);
      expect(r.imageBytes).toHaveLength(3);
      for (const us of r.frozenUs) expect(us).toBeGreaterThan(0);
      // A full dump holds the whole state; an incremental one only the first time.
      const mib = 64 * 2 ** 20;
      for (const bytes of r.incremental ? r.imageBytes.slice(0, 1) : r.imageBytes) {
        expect(bytes).toBeGreaterThan(mib);
      }
      const mean = r.frozenUs.reduce((a, b) => a + b, 0) / 3;
      expect(r.overheadPercent).toBeCloseTo((mean / 2e6) * 100, 2);
      console.log(
        `training (64 MiB, 2 s): frozen ${r.frozenUs.map((us) => (us / 1000).toFixed(1)).join(", ")} ms, ` +
          `images ${r.imageBytes.map((b) => (b / 2 ** 20).toFixed(1)).join(", ")} MiB, ` +
          `overhead ${r.overheadPercent} %, lost ${r.lostSteps} steps`,
      );
    });

    it("dumps each checkpoint into RAM, persists it to disk after, and frees the RAM", () => {
      expect(r.checkpointDetails.map((c) => c.checkpoint)).toEqual([1, 2, 3]);
      for (const [i, c] of r.checkpointDetails.entries()) {
        expect(c.where, c.why).toBe("ram");
        expect(c.why).toMatch(/^about [\d.]+ MiB of images fit in the [\d.]+ GiB of RAM available/);
        // CRIU's frozen time lies within the dump's wall time; the copy to disk comes after.
        expect(c.frozenMs).toBeGreaterThan(0);
        expect(c.frozenMs).toBeLessThanOrEqual(c.dumpMs);
        expect(c.frozenMs).toBeCloseTo(r.frozenUs[i] / 1000, 1);
        expect(c.dumpMs).toBe(r.dumpMs[i]);
        expect(c.persistMs).toBeGreaterThan(0);
        expect(c.imageBytes).toBe(r.imageBytes[i]);
      }
      expect(r.checkpointDetails[2].step).toBe(r.lastCheckpointStep);
      expect(fs.readdirSync(ram)).toEqual([]); // no copy of the job's memory left in RAM
      console.log(
        `training (64 MiB, RAM): frozen ${r.checkpointDetails.map((c) => c.frozenMs).join(", ")} ms, ` +
          `then on disk in ${r.checkpointDetails.map((c) => c.persistMs).join(", ")} ms`,
      );
    });

    it("restores the latest checkpoint complete on disk: its MANIFEST.json names every file", () => {
      expect(r.restoredCheckpoint).toBe(3);
      expect(r.restoredFrom).toBe(path.join(r.imagesDir, "3"));
      const manifest = JSON.parse(
        fs.readFileSync(path.join(r.restoredFrom, "MANIFEST.json"), "utf8"),
      );
      expect(manifest).toMatchObject({ checkpoint: 3, step: r.lastCheckpointStep, where: "ram" });
      expect(manifest.criuVersion).toMatch(/^\d+\.\d+/);
      const files = Object.keys(manifest.files).sort();
      expect(files).toContain("pages-1.img");
      expect([...files, "MANIFEST.json"].sort()).toEqual(
        fs
          .readdirSync(r.restoredFrom)
          .filter((n) => !["parent", "stats-restore"].includes(n)) // the restore wrote its stats
          .sort(),
      );
      for (const name of files) {
        const bytes = fs.readFileSync(path.join(r.restoredFrom, name));
        expect(bytes.length, name).toBe(manifest.files[name].size);
        expect(createHash("sha256").update(bytes).digest("hex"), name).toBe(
          manifest.files[name].sha256,
        );
      }
    });

    it("keeps the numbered checkpoints and the trainer's log, with its passed self-check", () => {
      expect(fs.readdirSync(r.imagesDir).sort()).toEqual(["1", "2", "3"]);
      const ran = run(HOST.crit, ["show", path.join(r.imagesDir, "3", "pstree.img")]);
      expect(JSON.parse(ran.stdout).entries[0].pid).toBe(r.pid);
      const log = fs.readFileSync(path.join(path.dirname(r.imagesDir), "trainer.log"), "utf8");
      expect(log).toMatch(/^check step \d+ checksum [0-9a-f]{16}: ok$/m);
      // The restored job printed the step after its checkpoint's again (the lost work redone).
      const again = log.match(new RegExp(`^step ${r.lastCheckpointStep + 1} checksum`, "gm"));
      expect(again).toHaveLength(2);
    });
  });

  it("draws its timeline in the terminal", () => {
    const ran = lab(QUICK);
    expect(ran.code, ran.stdout).toBe(ExitCode.ok);
    expect(ran.stdout).toMatch(/^time \(s\) +0\.0/m);
    expect(ran.stdout).toMatch(/^trainer +=+F=+F=+F=*X\.*R+=*$/m);
    expect(ran.stdout).toMatch(
      /^ +\d+\.\d s {2}F checkpoint 1 \((full|incremental)\) at step \d+: frozen/m,
    );
    expect(ran.stdout).toMatch(/X kill -9 at step \d+/);
    expect(ran.stdout).toMatch(/R restore of checkpoint 3 in \d+ ms: resumed at step \d+/);
    expect(ran.stdout).toContain("training: recovered from the latest checkpoint.");
  });

  it("a RAM budget too small for a checkpoint: straight to disk, saying so, and recovers from it", () => {
    const ran = lab([
      ...QUICK.slice(0, 4),
      "--count",
      "1",
      "--step-seconds",
      "0.2",
      "--ram-budget-mib",
      "0",
    ]);
    expect(ran.code, ran.stdout).toBe(ExitCode.ok);
    expect(ran.stdout).toMatch(
      /^checkpoint 1 goes straight to disk \(the job stays frozen while it is written\): about [\d.]+ MiB of images, more than the RAM budget of 0 B \(--ram-budget-mib\)$/m,
    );
    expect(ran.stdout).toMatch(
      /F checkpoint 1 \(\w+\) at step \d+: frozen [\d.]+ ms, [\d.]+ MiB of images straight to disk, synced in \d+ ms/,
    );
    expect(ran.stdout).toMatch(/R restore of checkpoint 1 in \d+ ms/);
    expect(ran.stdout).toContain("training: recovered from the latest checkpoint.");
    expect(fs.readdirSync(ram)).toEqual([]);
  });

  it("fails when the restore comes from the wrong checkpoint, keeping the evidence", () => {
    // A criu that restores checkpoint 1 whatever directory it is given.
    const restoresFirst = [
      'if [ "$1" = restore ]; then',
      '  for a; do shift; case "$a" in */checkpoints/[0-9]*) a="${a%/*}/1" ;; esac; set -- "$@" "$a"; done',
      "fi",
    ];
    withFaultyCriu("wrong-checkpoint", restoresFirst, (fake) => {
      const ran = lab([...QUICK, "--json"], { CRIU_LAB_CRIU: fake });
      expect(ran.code).toBe(ExitCode.labBroken);
      const r: Training = JSON.parse(ran.stdout);
      expect(r.ok).toBe(false);
      expect(r.resumedAtStep).toBeLessThan(r.lastCheckpointStep);
      expect(r.error).toContain(
        `but the latest checkpoint was taken at step ${r.lastCheckpointStep}`,
      );
      expect(fs.readdirSync(r.imagesDir).sort()).toEqual(["1", "2", "3"]);
      expect(alive(r.pid)).toBe(false);
      const human = lab(QUICK, { CRIU_LAB_CRIU: fake });
      expect(human.code).toBe(ExitCode.labBroken);
      expect(human.stdout).toMatch(/training scenario FAILED: .*not the latest checkpoint/);
      expect(human.stdout).toMatch(/logs and checkpoints kept in \S+training-/);
    });
  });

  itRefusesBadFlags(
    [
      [["--size-mib", "0"], "--size-mib: '0' is not a positive number"],
      [["--interval", "soon"], "--interval: 'soon' is not a positive number"],
      [["--count", "-1"], "--count: '-1' is not a positive number"],
      [["--full", "--incremental"], "--incremental: not allowed with argument --full"],
      [["--dirty-percent", "x"], "--dirty-percent: 'x' is not a positive number"],
      [["--ram-budget-mib", "-1"], "--ram-budget-mib: '-1' is not a whole number of MiB"],
    ],
    lab,
    () => logs,
  );

  it("trainer.py checks its flags too", () => {
    const ran = hostProgram("trainer.py", ["--dirty-percent", "101"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("--dirty-percent 101.0: at most 100");
  });
});

const skipSteps = cannotRun("training lab steps", [...needLabHost("criu", "crit"), ...needPanes()]);
describe.skipIf(skipSteps)("the lab guide's training steps, typed into two panes", () => {
  let work: string;
  let t: Terminals;
  let pid = 0;
  const steps = (text: string) =>
    new Map(
      [...text.matchAll(/^step (\d+) checksum ([0-9a-f]{16})$/gm)].map((m) => [Number(m[1]), m[2]]),
    );
  const last = (text: string) => Math.max(...steps(text).keys());
  let dumpStart = 0;
  let dumpEnd = 0;

  beforeAll(() => {
    ({ work, t } = learnerSeat("training-steps", [path.join(HOST_DIR, "trainer.py")], 2));
  });
  afterAll(() => leaveSeat(work, t, [pid]));

  it("left pane: the job starts in the background, its PID in trainer.pid", async () => {
    await t.typeAll(LEFT, guideBlock("trainer-start"));
    await t.until(LEFT, "step 2", (text) => steps(text).has(2));
    pid = Number(fs.readFileSync(path.join(work, "trainer.pid"), "utf8"));
    expect(t.screen(LEFT)).toContain(
      "trainer: 256 MiB of state, 65536 pages, 655 changed per step",
    );
  });

  it("right pane: two checkpoints with --leave-running; the job runs on", async () => {
    await t.typeAll(RIGHT, guideBlock("training-dumps"), async (line) => {
      const n = line.match(/-D ckpt\/(\d)/)?.[1];
      if (!n) return;
      // The second checkpoint's step lies between the steps printed before and after it.
      if (n === "1") dumpStart = last(t.screen(LEFT));
      else dumpEnd = last(t.screen(LEFT));
      expect(fs.existsSync(path.join(work, `ckpt/${n}/stats-dump`)), `checkpoint ${n}`).toBe(true);
      expect(alive(pid)).toBe(true);
    });
    const before = last(t.screen(LEFT));
    await t.until(LEFT, "steps after the checkpoints", (text) => last(text) >= before + 2);
  });

  it("right pane: kill -9 is the crash; criu restore resumes at checkpoint 2's step", async () => {
    await t.typeAll(RIGHT, guideBlock("training-crash"));
    await waitFor("the job to die", () => (alive(pid) ? undefined : true));
    const original = steps(t.screen(LEFT));
    await t.clear(RIGHT);
    const [restore] = guideBlock("training-restore");
    t.type(RIGHT, restore!); // in the foreground, until Ctrl-C
    await t.until(RIGHT, "the restored job's steps", (text) => steps(text).size >= 2, 120_000);
    const restored = steps(t.screen(RIGHT));
    const first = Math.min(...restored.keys());
    // It resumed where checkpoint 2 was taken (after checkpoint 1, by the end of that dump),
    // not at 0 and not at the crash, and redoes each step with the original's checksum.
    expect(first - 1).toBeGreaterThanOrEqual(dumpStart);
    expect(first - 1).toBeLessThanOrEqual(dumpEnd);
    expect(Math.max(...original.keys())).toBeGreaterThan(first);
    expect(restored.get(first)).toBe(original.get(first));
    expect(alive(pid)).toBe(true);
  });

  it("left pane: kill -USR1 makes it check its memory: ok", async () => {
    await t.typeAll(LEFT, guideBlock("training-check"));
    await t.until(RIGHT, "the self-check", (text) =>
      /^check step \d+ checksum [0-9a-f]{16}: /m.test(text),
    );
    expect(t.screen(RIGHT)).toMatch(/^check step \d+ checksum [0-9a-f]{16}: ok$/m);
    await t.interrupt(RIGHT, [pid], "the restored job to end", "the restore's shell back");
  });

  it("right pane: what the checkpoints cost: stats-dump, analyze, du", async () => {
    await t.clear(RIGHT);
    await t.typeAll(RIGHT, guideBlock("training-cost"));
    const screen = t.screen(RIGHT);
    expect(Number(screen.match(/"frozen_time": (\d+)/)?.[1])).toBeGreaterThan(0);
    // Sizes in human units: "pages-1.img   256.0 MiB".
    expect(screen).toMatch(/^pages-\d+\.img +[\d.]+ (B|KiB|MiB|GiB) {2}/m);
    // du's tab reaches the screen as spaces.
    expect(screen).toMatch(/^\d+(\.\d+)?M\s+ckpt\/1\n\d+(\.\d+)?M\s+ckpt\/2$/m);
  });
});
