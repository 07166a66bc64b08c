/**
 * The host's `criu-lab` command of this checkout (what `npm run setup:host` and cloud-init
 * install), with the CRIU that setup installed: real `criu check`, a real checkpoint/restore
 * of the counter, `analyze` of its real images, and `status`. Output is read through
 * contract/checks.ts, the parser the verifier uses.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode, parseCheck, parseDemo, type DemoResult } from "../../contract/checks";
import { cannotRun, needCommand } from "../support/requirements";
import {
  alive,
  withFaultyCriu,
  HOST,
  LAB,
  labEnv,
  run,
  tempDir,
  waitFor,
} from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

/** Every path under DIR, links not followed. */
function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

describe.skipIf(cannotRun("criu-lab", needLabHost("criu", "crit")))("criu-lab on this host", () => {
  // Demos write under their own log dir: other suites may run demos on this host meanwhile,
  // and a passing demo removes the images of earlier passing runs in its log dir.
  let logDir: string;
  beforeAll(() => {
    logDir = tempDir("demo-logs");
  });
  afterAll(() => fs.rmSync(logDir, { recursive: true, force: true }));
  const lab = (...args: string[]) =>
    run(LAB.command, args, { env: labEnv({ CRIU_LAB_LOG_DIR: logDir }) });

  it("check --json: criu check passes and the verifier's parser agrees", () => {
    const ran = lab("check", "--json");
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    expect(ran.stdout.trim().split("\n")).toHaveLength(1);
    const result = parseCheck(ran.stdout);
    expect(result.ok).toBe(true);
    expect(result.criuVersion).toMatch(/^4\.\d+/);
    expect(result.kernel).toBe(run("uname", ["-r"]).stdout.trim());
    expect(result.output).toContain("Looks good.");
  });

  it("check and demo refuse to run without root (exit 2), naming sudo", () => {
    for (const command of ["check", "demo"]) {
      const ran = run("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        LAB.command,
        command,
        "--json",
      ]);
      expect(ran.code, command).toBe(ExitCode.usage);
      expect(JSON.parse(ran.stdout).error).toContain(`sudo criu-lab ${command}`);
    }
  });

  it("rejects an unknown subcommand with exit 2", () => {
    const ran = lab("frobnicate");
    expect(ran.code).toBe(ExitCode.usage);
    expect(ran.stderr).toContain("invalid choice: 'frobnicate'");
  });

  it("demo stopped mid-run (a verifier's timeout sends SIGTERM) stops its counter too", async () => {
    const child = spawn(LAB.command, ["demo", "--json", "--interval", "5"], {
      env: labEnv({ CRIU_LAB_LOG_DIR: logDir }),
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    // The counter writes "PID: N" first; it runs in its own session, outside the demo's group.
    const counterPid = await waitFor("the demo's counter to start", () => {
      for (const dir of fs.readdirSync(logDir).filter((d) => d.endsWith(`-${child.pid}`))) {
        const log = path.join(logDir, dir, "counter.log");
        const pid = fs.existsSync(log) && /^PID: (\d+)$/m.exec(fs.readFileSync(log, "utf8"));
        if (pid) return Number(pid[1]);
      }
      return undefined;
    });
    try {
      expect(alive(counterPid)).toBe(true);
      child.kill("SIGTERM");
      expect(await exited).toBe(128 + 15);
      expect(alive(counterPid)).toBe(false);
    } finally {
      if (alive(counterPid)) process.kill(counterPid, "SIGKILL"); // only on failure
    }
  });

  describe("demo --json", () => {
    let demo: DemoResult;
    let raw: string;
    beforeAll(() => {
      // As setup:host made it before the lab kept images private: readable by every user.
      fs.chmodSync(logDir, 0o755);
      const ran = lab("demo", "--json");
      raw = ran.stdout;
      expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
      demo = parseDemo(ran.stdout);
    });

    it("restores the counter with its PID, counting on from the next number", () => {
      expect(raw.trim().split("\n")).toHaveLength(1);
      expect(demo.ok, demo.error).toBe(true);
      expect(demo.restoredPid).toBe(demo.pid);
      expect(demo.lastBeforeDump).toBeGreaterThanOrEqual(3);
      expect(demo.firstAfterRestore).toBe(demo.lastBeforeDump + 1);
      console.log(
        `demo: dump ${demo.dumpMs} ms, restore ${demo.restoreMs} ms, frozen ${demo.frozenUs} us, images ${demo.imageBytes} bytes`,
      );
    });

    it("keeps the images and the counter's output, and stops its own process", () => {
      expect(alive(demo.pid)).toBe(false);
      const runDir = path.dirname(demo.imagesDir);
      expect(path.dirname(runDir)).toBe(logDir);
      expect(path.basename(runDir)).toMatch(/^demo-\d{8}T\d{6}Z-\d+$/);
      const files = fs.readdirSync(demo.imagesDir);
      expect(files).toContain("pstree.img");
      expect(files).toContain(`core-${demo.pid}.img`);
      const bytes = files.reduce((n, f) => n + fs.statSync(path.join(demo.imagesDir, f)).size, 0);
      // What the restore wrote (its stats) and the manifest written after the dump are no images.
      const extra = ["stats-restore", "MANIFEST.json"];
      expect(demo.imageBytes).toBe(
        bytes - extra.reduce((n, f) => n + fs.statSync(path.join(demo.imagesDir, f)).size, 0),
      );
      const log = fs.readFileSync(path.join(runDir, "counter.log"), "utf8");
      expect(log).toContain(`PID: ${demo.pid}\n`);
      expect(log).toContain(
        `Counter: ${demo.lastBeforeDump}\nCounter: ${demo.firstAfterRestore}\n`,
      );
      expect(fs.readFileSync(path.join(runDir, "dump.log"), "utf8")).toContain(
        "Dumping finished successfully",
      );
      expect(fs.readFileSync(path.join(runDir, "restore.log"), "utf8")).toContain(
        "Restore finished successfully",
      );
    });

    it("keeps them root's alone: no other user reads the log dir, the run or its images", () => {
      const runDir = path.dirname(demo.imagesDir);
      const open: string[] = [];
      for (const p of [logDir, runDir, ...walk(runDir)]) {
        const st = fs.lstatSync(p);
        if (st.uid !== 0 || (st.mode & 0o077) !== 0)
          open.push(`${p} ${(st.mode & 0o7777).toString(8)}`);
      }
      expect(open).toEqual([]);
      // What the issue of a readable dump is: another user reading the process's memory.
      const pages = fs.readdirSync(demo.imagesDir).find((f) => /^pages-\d+\.img$/.test(f));
      expect(pages).toBeDefined();
      for (const argv of [
        ["ls", logDir],
        ["ls", demo.imagesDir],
        ["cat", path.join(demo.imagesDir, pages as string)],
      ]) {
        const ran = run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ...argv]);
        expect(ran.code, argv.join(" ")).not.toBe(0);
        expect(ran.stderr, argv.join(" ")).toContain("Permission denied");
      }
    });

    it("its images carry a manifest: a byte changed in a copy is refused by verify and restore, naming the file", () => {
      expect(lab("checkpoint", "verify", demo.imagesDir).code).toBe(ExitCode.ok);
      const copy = path.join(tempDir("demo-copy"), "images");
      try {
        expect(run("cp", ["-a", demo.imagesDir, copy]).code).toBe(0);
        const pages = fs.readdirSync(copy).find((f) => /^pages-\d+\.img$/.test(f)) as string;
        const fd = fs.openSync(path.join(copy, pages), "r+");
        const byte = Buffer.alloc(1);
        fs.readSync(fd, byte, 0, 1, 100);
        fs.writeSync(fd, Buffer.from([byte[0] ^ 1]), 0, 1, 100);
        fs.closeSync(fd);
        const verify = lab("checkpoint", "verify", copy, "--json");
        expect(verify.code, verify.stdout).toBe(ExitCode.unreachable);
        expect(JSON.parse(verify.stdout).differs).toEqual([
          expect.objectContaining({ file: pages, problem: "sha256" }),
        ]);
        const runsBefore = fs.readdirSync(logDir).sort();
        const restore = lab("checkpoint", "restore", copy);
        expect(restore.code, restore.stdout + restore.stderr).toBe(ExitCode.unreachable);
        expect(restore.stdout).toContain(`checkpoint ${copy} refused: ${pages} changed (sha256`);
        // Refused before CRIU ran: no process came back, no restore run was made.
        expect(alive(demo.pid)).toBe(false);
        expect(fs.readdirSync(logDir).sort()).toEqual(runsBefore);
      } finally {
        fs.rmSync(path.dirname(copy), { recursive: true, force: true });
      }
    });

    it("analyze explains each image of the dump, decoded with crit", () => {
      const ran = lab("analyze", demo.imagesDir, "--json");
      expect(ran.code, ran.stderr).toBe(ExitCode.ok);
      const result = JSON.parse(ran.stdout);
      const byName = new Map<
        string,
        { bytes: number; holds: string; details: string; paths?: string[] }
      >(result.files.map((f: { name: string }) => [f.name, f]));
      expect(byName.get("pstree.img")?.holds).toContain("process tree");
      expect(byName.get("pstree.img")?.details).toContain(`PID ${demo.pid} `);
      expect(byName.get(`core-${demo.pid}.img`)?.details).toMatch(/python3 on (X86_64|AARCH64)/);
      expect(byName.get(`mm-${demo.pid}.img`)?.details).toMatch(/^\d+ memory mappings$/);
      expect(byName.get(`pagemap-${demo.pid}.img`)?.details).toMatch(/pages saved$/);
      expect(byName.get("files.img")?.details).toMatch(/files/);
      const pages = [...byName.keys()].find((n) => n.startsWith("pages-"))!;
      expect(byName.get(pages)?.details).toBe(`${byName.get(pages)!.bytes / 4096} pages`);
      expect(result.stats.frozen_time).toBe(demo.frozenUs);
      expect(result.stats.pages_written).toBeGreaterThan(0);

      const human = lab("analyze", demo.imagesDir);
      expect(human.code).toBe(ExitCode.ok);
      expect(human.stdout).toContain(`The process was frozen for ${demo.frozenUs} us`);
      // Human sizes, and the open files as a short list, one path a line, not one long line.
      expect(human.stdout).toMatch(/^pstree\.img\s+\d+ B {2}process tree/m);
      expect(human.stdout).toMatch(/^pages-1\.img\s+\d+\.\d (KiB|MiB) {2}raw memory/m);
      const paths = byName.get("files.img")!.paths!;
      expect(paths.length).toBeGreaterThan(5);
      expect(human.stdout).toContain(`\n${" ".repeat(36)}${paths[0]}\n`);
      expect(human.stdout).not.toContain(paths[5]);
      expect(human.stdout).toContain(`... and ${paths.length - 5} more (crit show files.img)`);
      expect(Math.max(...human.stdout.split("\n").map((l) => l.length))).toBeLessThan(160);
      expect(result.stale).toEqual([]);
    });

    it("names the latest passing demo demo-latest, and prints that path", () => {
      const link = path.join(logDir, "demo-latest");
      expect(fs.readlinkSync(link)).toBe(path.basename(path.dirname(demo.imagesDir)));
      const ran = lab("demo");
      expect(ran.code, ran.stdout).toBe(ExitCode.ok);
      expect(ran.stdout).toContain(`Images of the latest passing demo: ${link}/images`);
      expect(ran.stdout).toContain(`sudo criu-lab analyze ${link}/images`);
      // The link moved to the new run, whose images are there; the old run is gone.
      expect(fs.existsSync(path.join(link, "images", "pstree.img"))).toBe(true);
      expect(fs.existsSync(path.dirname(demo.imagesDir))).toBe(false);
    });

    it("a later passing demo replaces earlier images; a failed run's stay", () => {
      const failed = path.join(logDir, "demo-failed-before");
      fs.mkdirSync(failed);
      // Another kind's passing run (a scenario's) is not the demo's to remove.
      const training = path.join(logDir, "training-passed-before");
      fs.mkdirSync(training);
      fs.writeFileSync(path.join(training, "passed"), "");
      const before = fs.realpathSync(path.join(logDir, "demo-latest"));
      const again = parseDemo(lab("demo", "--json").stdout);
      expect(again.ok, again.error).toBe(true);
      expect(fs.existsSync(before)).toBe(false);
      expect(fs.existsSync(again.imagesDir)).toBe(true);
      expect(fs.realpathSync(path.join(logDir, "demo-latest/images"))).toBe(again.imagesDir);
      expect(fs.existsSync(failed)).toBe(true);
      expect(fs.existsSync(training)).toBe(true);
    });
  });

  describe("analyze", () => {
    let empty: string;
    beforeAll(() => {
      empty = tempDir("analyze");
    });
    afterAll(() => fs.rmSync(empty, { recursive: true, force: true }));

    it("says a directory without images is not a checkpoint (exit 2)", () => {
      const ran = lab("analyze", empty);
      expect(ran.code).toBe(ExitCode.usage);
      expect(ran.stdout).toContain(`${empty} is not a checkpoint directory`);
    });

    it("says no such directory for a missing one (exit 2)", () => {
      const missing = path.join(empty, "checkpoint_dir");
      const ran = lab("analyze", missing);
      expect(ran.code).toBe(ExitCode.usage);
      expect(ran.stdout.trim()).toBe(`criu-lab analyze: ${missing}: no such directory`);
      expect(JSON.parse(lab("analyze", missing, "--json").stdout).error).toBe(
        `${missing}: no such directory`,
      );
    });
  });

  it("demo fails with exit 1, the CRIU log tail and kept evidence when a dump fails", () => {
    // A criu that works except for dump, whose log says why: the demo must report it.
    const dumpFails = [
      'if [ "$1" = dump ]; then',
      '  while [ $# -gt 1 ]; do [ "$1" = -o ] && echo "Error (test): cannot dump, on purpose" > "$2"; shift; done',
      "  exit 1",
      "fi",
    ];
    withFaultyCriu("failing-criu", dumpFails, (fake, dir) => {
      const ran = run(LAB.command, ["demo", "--json"], {
        env: labEnv({ CRIU_LAB_CRIU: fake, CRIU_LAB_LOG_DIR: dir }),
      });
      expect(ran.code).toBe(ExitCode.labBroken);
      const demo = parseDemo(ran.stdout);
      expect(demo.ok).toBe(false);
      expect(demo.error).toContain("criu dump exited 1");
      expect(demo.error).toContain("cannot dump, on purpose");
      expect(fs.existsSync(demo.imagesDir)).toBe(true);
      expect(alive(demo.pid)).toBe(false);
      const human = run(LAB.command, ["demo"], {
        env: labEnv({ CRIU_LAB_CRIU: fake, CRIU_LAB_LOG_DIR: dir }),
      });
      expect(human.stdout).toMatch(/logs and images kept in \S+demo-/);
    });
  });

  it("status without --json is a human summary of the installation and the lab", () => {
    const ran = lab("status");
    expect(ran.code).toBe(ExitCode.ok);
    const record = JSON.parse(fs.readFileSync("/var/lib/criu-lab/install.json", "utf8"));
    const setup = JSON.parse(fs.readFileSync("/var/lib/criu-lab/setup.json", "utf8"));
    expect(ran.stdout).not.toContain("{");
    expect(ran.stdout).toContain(`CRIU ${record.criuVersion} at ${record.criu}\n`);
    expect(ran.stdout).toMatch(/^ {2}source: {4}(git|tarball) /m);
    expect(ran.stdout).toContain(`installed: ${record.installedAt}`);
    expect(ran.stdout).toContain(`Lab user:  ${setup.user} `);
    expect(ran.stdout).toMatch(/^Auto-stop: (never \(0 minutes\)|after \d+ minutes)/m);
  });

  it("status --json reports the installation record", () => {
    const ran = lab("status", "--json");
    expect(ran.code).toBe(ExitCode.ok);
    const status = JSON.parse(ran.stdout);
    const record = JSON.parse(fs.readFileSync("/var/lib/criu-lab/install.json", "utf8"));
    expect(status.install).toEqual(record);
    expect(status.criuVersion).toBe(record.criuVersion);
    expect(status.setup.ok).toBe(true);
  });

  it("this host's set-up made the lab's log dir root's alone (it holds checkpoint images)", () => {
    const st = fs.statSync("/var/log/criu-lab");
    expect(
      [st.uid, (st.mode & 0o777).toString(8)],
      "/var/log/criu-lab: run `sudo npm run setup:host` again to set it up as this checkout does",
    ).toEqual([0, "700"]);
  });

  it("status exits 3 where nothing is installed", () => {
    const dir = tempDir("status");
    try {
      const ran = run(LAB.command, ["status", "--json"], {
        env: labEnv({ CRIU_LAB_STATE_DIR: dir }),
      });
      expect(ran.code).toBe(ExitCode.unreachable);
      expect(JSON.parse(ran.stdout).error).toContain("not installed");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("check --json and demo --json validate their own output", () => {
    // Faults injected through the real path overrides: a criu or crit that "succeeds" but
    // says something inconsistent must never become exit 0.
    let dir: string;
    beforeAll(() => {
      dir = tempDir("self-check");
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const script = (name: string, lines: string[]) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, ["#!/bin/sh", ...lines, ""].join("\n"), { mode: 0o755 });
      return file;
    };

    it("check: criu check exits 0 without saying Looks good -> exit 1 with an error", () => {
      const criu = script("criu-silent-check", [
        'if [ "$1" = check ]; then exit 0; fi',
        `exec ${HOST.criu} "$@"`,
      ]);
      const ran = run(LAB.command, ["check", "--json"], { env: labEnv({ CRIU_LAB_CRIU: criu }) });
      expect(ran.code).toBe(ExitCode.labBroken);
      const result = parseCheck(ran.stdout);
      expect(result.ok).toBe(false);
      expect(result.error).toContain("its own result failed validation");
      expect(result.error).toContain('without saying "Looks good"');
    });

    it.each([
      ["-1", "frozenUs is -1, below 0"],
      ['"soon"', "frozenUs is 'soon', not int"],
    ])("demo: stats-dump with frozen_time %s -> exit 1 naming the field", (frozen, message) => {
      const crit = script(`crit-frozen-${frozen.length}`, [
        'case "$2" in */stats-dump)',
        `  echo '{"magic": "STATS", "entries": [{"dump": {"frozen_time": ${frozen}, "pages_scanned": 1, "pages_written": 1}}]}'`,
        "  exit 0 ;;",
        "esac",
        `exec ${HOST.crit} "$@"`,
      ]);
      const logs = path.join(dir, `logs-${frozen.length}`);
      fs.mkdirSync(logs);
      const ran = run(LAB.command, ["demo", "--json"], {
        env: labEnv({ CRIU_LAB_CRIT: crit, CRIU_LAB_LOG_DIR: logs }),
      });
      expect(ran.code, ran.stdout).toBe(ExitCode.labBroken);
      const demo = parseDemo(ran.stdout);
      expect(demo.ok).toBe(false);
      expect(demo.error).toContain(`its own result failed validation: ${message}`);
      // Not kept as the latest passing demo; its evidence stays.
      expect(fs.existsSync(path.join(logs, "demo-latest"))).toBe(false);
      expect(fs.existsSync(path.join(demo.imagesDir, "pstree.img"))).toBe(true);
      expect(alive(demo.pid)).toBe(false);
    });
  });
});

describe.skipIf(cannotRun("counter.py", [needCommand("/usr/bin/python3")]))("counter.py", () => {
  it("Ctrl-C (SIGINT) ends it quietly: exit 130, no traceback", async () => {
    const child = spawn("/usr/bin/python3", [LAB.counter, "--interval", "0.1"]);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    await waitFor("the counter to count", () => (out.includes("Counter: 2\n") ? true : undefined));
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(err).toBe("");
  });
});
