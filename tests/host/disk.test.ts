/**
 * The lab's disk, for real: a dump whose images would not fit is refused before anything is
 * frozen (exit 3, with the numbers), `clean` removes the runs the lab does not keep and says
 * how much, and `status`/`doctor` show the space used and free. "Would not fit" is a small
 * tmpfs over the log directory, mounted in a private mount namespace (`unshare -m`) that ends
 * with the command: nothing of the machine's disk is filled, and the mount goes with it.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode, parseDoctor } from "../../contract/checks";
import { cannotRun, needCommand } from "../support/requirements";
import { alive, LAB, labEnv, run, tempDir, waitFor } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

interface Disk {
  dir: string;
  usedBytes: number;
  runs: number;
  runBytes: Record<string, number>;
  freeBytes: number;
  totalBytes: number;
}

interface CleanRun {
  path: string;
  kind: string;
  bytes: number;
  outcome: "passed" | "failed";
  why?: string;
}

interface Cleaned {
  ok: boolean;
  freedBytes: number;
  freedByKind: Record<string, { runs: number; bytes: number }>;
  removed: CleanRun[];
  kept: CleanRun[];
  ramFreedBytes: number;
  ramRemoved: Array<{ path: string; bytes: number; removed: boolean }>;
  ramKept: Array<{ path: string; bytes: number; why: string }>;
  disk: Disk;
}

/** `du -sB1`: the bytes the command's own count must agree with. */
const du = (p: string) => Number(run("du", ["-sB1", p]).stdout.split(/\s/)[0]);

describe.skipIf(
  cannotRun("the lab's disk", [...needLabHost("criu", "crit"), needCommand("unshare")]),
)("criu-lab and the lab host's disk", () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir("disk");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /**
   * criu-lab ARGS with its log dir on a tmpfs of SIZE in a private mount namespace; prints
   * its JSON, then the files left in the log dir (gone with the namespace).
   */
  function inSmallDisk(size: string, args: string[]) {
    const logs = path.join(dir, `small-${size}-${args[0]}`);
    fs.mkdirSync(logs);
    const script = [
      "set -e",
      `mount -t tmpfs -o size=${size} clsmall "$1"`,
      'shift; code=0; "$@" || code=$?',
      'echo "--- $code"',
      'cd "$CRIU_LAB_LOG_DIR" && find . -type f | sort',
    ].join("\n");
    const ran = run(
      "unshare",
      ["-m", "--propagation", "private", "sh", "-c", script, "sh", logs, LAB.command, ...args],
      { env: labEnv({ CRIU_LAB_LOG_DIR: logs }) },
    );
    const [out, after = ""] = ran.stdout.split(/^--- /m);
    const [code, ...files] = after.trim().split("\n");
    expect(ran.code, ran.stderr).toBe(0);
    return { code: Number(code), result: JSON.parse(out), files, stderr: ran.stderr };
  }

  it("demo: images that would not fit are refused before the freeze (exit 3, the numbers); with room it passes", () => {
    const refused = inSmallDisk("6m", ["demo", "--json"]);
    expect(refused.code, refused.stderr).toBe(ExitCode.unreachable);
    expect(refused.result.ok).toBe(false);
    expect(refused.result.error).toMatch(
      /no room for the images of PID \d+ in .*\/images: about [\d.]+ MiB needed \(its memory, plus a tenth and 8 MiB\), [\d.]+ MiB free there; nothing was frozen/,
    );
    expect(refused.result.error).toContain("sudo criu-lab clean");
    // CRIU never ran: no dump log, no image; the counter had counted and was stopped.
    expect(refused.files.some((f) => /dump\.log|\.img$/.test(f))).toBe(false);
    expect(refused.files.some((f) => f.endsWith("/counter.log"))).toBe(true);
    expect(alive(refused.result.pid)).toBe(false);

    const roomy = inSmallDisk("64m", ["demo", "--json"]);
    expect(roomy.code, roomy.result.error).toBe(ExitCode.ok);
    expect(roomy.files.some((f) => f.endsWith("/images/pstree.img"))).toBe(true);
  });

  it("training: a checkpoint that would not fit is refused (exit 3), the trainer stopped, never frozen", () => {
    const refused = inSmallDisk("16m", [
      "scenario",
      "run",
      "training",
      "--size-mib",
      "24",
      "--interval",
      "1",
      "--count",
      "1",
      "--json",
    ]);
    expect(refused.code, refused.stderr).toBe(ExitCode.unreachable);
    // Every checkpoint ends up on disk (in RAM only until it is persisted): the disk decides.
    expect(refused.result.error).toMatch(
      /no room on disk for checkpoint 1: about [\d.]+ \S+ of images, [\d.]+ \S+ free where checkpoints are kept; nothing was frozen/,
    );
    expect(refused.result.checkpoints).toBe(0);
    expect(refused.files.some((f) => /dump-1\.log|\.img$/.test(f))).toBe(false);
    expect(alive(refused.result.pid)).toBe(false);
  });

  it("doctor: with little room for the images, says how to make some", () => {
    const d = inSmallDisk("6m", ["doctor", "--json"]);
    expect(d.code, d.stderr).toBe(ExitCode.ok);
    expect(d.result.disk.freeBytes).toBeLessThanOrEqual(6 * 2 ** 20);
    expect(d.result.fixes).toContain(
      `only ${(d.result.disk.freeBytes / 2 ** 20).toFixed(1)} MiB free for the images in ${d.result.disk.dir}: ` +
        "`sudo criu-lab clean` (or `clean --all`) removes the runs not kept",
    );
  });

  describe("clean, status and doctor", () => {
    let logs: string;
    /** CRIU_LAB_RAM_DIR: clean looks at this, never at the machine's /dev/shm. */
    let ram: string;
    let realDemo: string;
    let sleeper: ReturnType<typeof spawn> | undefined;
    let ramSleeper: ReturnType<typeof spawn> | undefined;
    const lab = (...args: string[]) =>
      run(LAB.command, args, { env: labEnv({ CRIU_LAB_LOG_DIR: logs, CRIU_LAB_RAM_DIR: ram }) });

    /** A run directory as the lab leaves them: a few files of SIZE bytes, `passed` or not. */
    function fakeRun(name: string, size: number, passed: boolean): string {
      const p = path.join(logs, name);
      fs.mkdirSync(path.join(p, "images"), { recursive: true });
      fs.writeFileSync(path.join(p, "images", "pages-1.img"), Buffer.alloc(size, 1));
      fs.writeFileSync(path.join(p, "dump.log"), "dump log\n");
      if (passed) fs.writeFileSync(path.join(p, "passed"), "");
      return p;
    }

    beforeAll(async () => {
      logs = path.join(dir, "logs");
      fs.mkdirSync(logs);
      ram = path.join(dir, "ram");
      fs.mkdirSync(ram);
      const demo = lab("demo", "--json");
      expect(demo.code, demo.stdout).toBe(ExitCode.ok);
      realDemo = path.dirname(JSON.parse(demo.stdout).imagesDir);
      fs.writeFileSync(path.join(logs, "setup.log"), "not a run\n");
    });
    afterAll(() => {
      for (const s of [sleeper, ramSleeper]) if (s?.pid && alive(s.pid)) s.kill("SIGKILL");
    });

    it("keeps failed runs and the latest passing run of each kind; removes the rest and says how much", async () => {
      // PIDs above pid_max: no criu-lab of these runs can still be running.
      const older = [
        fakeRun("demo-20260101T000000Z-999999991", 300_000, true),
        fakeRun("demo-20260102T000000Z-999999992", 200_000, true),
      ];
      const failed = fakeRun("demo-20260103T000000Z-999999993", 100_000, false);
      const training = fakeRun("training-20260101T000000Z-999999994", 100_000, true);
      // A migration's copy on its destination (never marked there by an older criu-lab).
      const received = fakeRun("migration-20260101T000000Z-999999995", 100_000, false);
      // A run in progress: a process works in it (as a restore or a restored counter would).
      const busy = fakeRun("game-20260101T000000Z-999999996", 100_000, true);
      sleeper = spawn("sleep", ["300"], { cwd: busy, stdio: "ignore" });
      await waitFor("the sleeper", () => (sleeper?.pid && alive(sleeper.pid) ? true : undefined));
      const olderBytes = older.map(du).reduce((a, b) => a + b, 0);

      const ran = lab("clean", "--json");
      expect(ran.code, ran.stderr).toBe(ExitCode.ok);
      const r = JSON.parse(ran.stdout) as Cleaned;
      expect(r.removed.map((x) => x.path).sort()).toEqual(older);
      expect(older.some((p) => fs.existsSync(p))).toBe(false);
      expect(r.freedBytes).toBe(olderBytes);
      expect(r.freedByKind).toEqual({ demo: { runs: 2, bytes: olderBytes } });
      const why = Object.fromEntries(r.kept.map((x) => [x.path, x.why]));
      expect(why[realDemo]).toBe("the latest passing demo run (--all removes it)");
      expect(why[failed]).toBe("failed: kept as evidence (--all removes it)");
      expect(why[received]).toBe("failed: kept as evidence (--all removes it)");
      expect(why[training]).toBe("the latest passing training run (--all removes it)");
      expect(why[busy]).toMatch(
        new RegExp(`^in progress: PID ${sleeper.pid} \\(sleep 300\\) works in it`),
      );
      expect(fs.readlinkSync(path.join(logs, "demo-latest"))).toBe(path.basename(realDemo));

      const text = lab("clean");
      expect(text.code).toBe(ExitCode.ok);
      expect(text.stdout).toMatch(/^removed 0 runs, 0 B freed\n/);
      expect(text.stdout).toContain(`kept ${failed} (`);
      expect(text.stdout).toMatch(/Disk: [\d.]+ [KMG]?i?B in .* \(5 runs with their images: demo/);
    });

    it("removes a migration's images left in RAM once it is over, never one that may still run", async () => {
      const inRam = (name: string, size: number) => {
        const p = path.join(ram, name);
        fs.mkdirSync(path.join(p, "images"), { recursive: true });
        fs.writeFileSync(path.join(p, "images", "pages-1.img"), Buffer.alloc(size, 1));
        return p;
      };
      // Over: started long ago, its PID above pid_max (no criu-lab of it runs).
      const stale = inRam("criu-lab-migrate-20260101T000000Z-999999991", 200_000);
      // In progress: a process works in it (as a page server or a restore there would).
      const busy = inRam("criu-lab-migrate-20260101T000000Z-999999992", 4096);
      ramSleeper = spawn("sleep", ["300"], { cwd: busy, stdio: "ignore" });
      await waitFor("the sleeper", () =>
        ramSleeper?.pid && alive(ramSleeper.pid) ? true : undefined,
      );
      // Just started: maybe a migration into this host between its steps.
      const stamp = new Date().toISOString().replace(/[-:]|\.\d+/g, "");
      const young = inRam(`criu-lab-migrate-${stamp}-999999993`, 4096);
      const other = inRam("criu-lab-training-x", 4096); // not a migration's
      const staleBytes = du(stale);

      const ran = lab("clean", "--json");
      expect(ran.code, ran.stderr).toBe(ExitCode.ok);
      const r = JSON.parse(ran.stdout) as Cleaned;
      expect(r.ramRemoved).toEqual([{ path: stale, bytes: staleBytes, removed: true }]);
      expect(r.ramFreedBytes).toBe(staleBytes);
      expect(fs.existsSync(stale)).toBe(false);
      const why = Object.fromEntries(r.ramKept.map((x) => [x.path, x.why]));
      expect(Object.keys(why).sort()).toEqual([busy, young]);
      expect(why[busy]).toMatch(
        new RegExp(`^in progress: PID ${ramSleeper.pid} \\(sleep 300\\) works in it`),
      );
      expect(why[young]).toMatch(/^started 0 min ago: may be a migration into this host/);
      for (const p of [busy, young, other]) expect(fs.existsSync(p)).toBe(true);

      // Said in words; once the busy one's process ends, it goes too.
      ramSleeper.kill("SIGKILL");
      await waitFor("the sleeper to end", () => (alive(ramSleeper!.pid!) ? undefined : true));
      const text = lab("clean");
      expect(text.code).toBe(ExitCode.ok);
      expect(text.stdout).toContain(
        `removed 1 migration image directory left in RAM under ${ram}, `,
      );
      expect(text.stdout).toContain(`\n  removed ${busy} (`);
      expect(text.stdout).toContain(`  kept ${young} (`);
      expect(fs.existsSync(busy)).toBe(false);
      fs.rmSync(young, { recursive: true });
    });

    it("status and doctor show the space the runs use and what is free", () => {
      for (const command of ["status", "doctor"]) {
        const ran = lab(command, "--json");
        expect(ran.code, ran.stderr).toBe(ExitCode.ok);
        const d = JSON.parse(ran.stdout).disk as Disk;
        expect(d.dir).toBe(logs);
        expect(d.usedBytes).toBe(du(logs));
        expect(d.runs).toBe(5);
        expect(Object.keys(d.runBytes).sort()).toEqual(["demo", "game", "migration", "training"]);
        expect(d.runBytes.training).toBe(
          du(
            fs
              .readdirSync(logs)
              .map((n) => path.join(logs, n))
              .find((p) => p.includes("/training-"))!,
          ),
        );
        const df = Number(run("df", ["-B1", "--output=avail", logs]).stdout.split("\n")[1]);
        expect(Math.abs(d.freeBytes - df)).toBeLessThan(64 * 2 ** 20); // others write meanwhile
        expect(d.totalBytes).toBeGreaterThan(d.freeBytes);
        expect(lab(command).stdout).toMatch(/^Disk: .* free of /m);
        // Plenty of room here: no fix about it.
        if (command === "doctor") {
          expect(JSON.parse(ran.stdout).fixes.join("\n")).not.toContain("free for the images");
        }
        // The verifier (and the stack output `doctor`) carry it on.
        if (command === "doctor") {
          expect(parseDoctor(ran.stdout).disk).toEqual({
            dir: logs,
            usedBytes: d.usedBytes,
            freeBytes: d.freeBytes,
            totalBytes: d.totalBytes,
          });
        }
      }
    });

    it("--all removes failed and latest runs too, never a run in progress; then that one when it ends", async () => {
      const ran = lab("clean", "--all", "--json");
      expect(ran.code, ran.stderr).toBe(ExitCode.ok);
      const r = JSON.parse(ran.stdout) as Cleaned;
      expect(r.removed.map((x) => x.kind).sort()).toEqual([
        "demo",
        "demo",
        "migration",
        "training",
      ]);
      expect(r.kept.map((x) => x.kind)).toEqual(["game"]);
      expect(fs.existsSync(path.join(logs, "demo-latest"))).toBe(false);
      expect(fs.existsSync(path.join(logs, "setup.log"))).toBe(true);
      sleeper!.kill("SIGKILL");
      await waitFor("the sleeper to end", () => (alive(sleeper!.pid!) ? undefined : true));
      const last = JSON.parse(lab("clean", "--all", "--json").stdout) as Cleaned;
      expect(last.removed.map((x) => x.kind)).toEqual(["game"]);
      expect(fs.readdirSync(logs)).toEqual(["setup.log"]);
      expect(last.disk.runs).toBe(0);
    });

    it("needs root (exit 2)", () => {
      const ran = run(
        "setpriv",
        ["--reuid=65534", "--regid=65534", "--clear-groups", LAB.command, "clean", "--json"],
        {
          env: labEnv({ CRIU_LAB_LOG_DIR: logs }),
        },
      );
      expect(ran.code).toBe(ExitCode.usage);
      expect(JSON.parse(ran.stdout).error).toContain("sudo criu-lab clean");
    });
  });
});
