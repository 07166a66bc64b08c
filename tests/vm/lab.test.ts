/**
 * The lab in a local VM, end to end: the Debian 12 image built with debootstrap
 * from the host's own mirror (cached in .cache/vm across runs; CI starts without it), booted
 * with the user-data rendered for the VM target, CRIU built inside from the release tarball
 * served to it, then the verifier: cloud-init finished, `criu check` and the
 * checkpoint/restore demo passed. Then the original lab's steps as the learner: user `ubuntu`
 * in two real SSH terminals, reading the screens. Prints each phase's time. About 20-30
 * minutes under software emulation.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatPhases } from "../../vm/cli";
import { debianImageDir } from "../../vm/image";
import { destroyLab, LAB_USER, runLab, stateDirOf, VmError, type LabRun } from "../../vm/lab";
import { parseVmArgs } from "../../vm/options";
import {
  migrateInPair,
  migrationTable,
  onVm,
  PAIR,
  PAIR_MODES,
  runPair,
  type PairMigration,
  type PairRun,
} from "../../vm/pair";
import { isOurQemu } from "../../vm/qemu";
import { probeBoots } from "../../vm/accel";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import { learnerSteps } from "./support/learner";
import { Terminals } from "./support/terminals";

const ROOT = path.resolve(__dirname, "..", "..");

/** The CRIU release tarball from scripts/fetch-criu-source.sh ("<sha256>  <path>"). */
function criuTarball(): { sha256: string; path: string } | string {
  try {
    const out = execFileSync("bash", [path.join(ROOT, "scripts/fetch-criu-source.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const m = /^([0-9a-f]{64}) {2}(\/\S+)$/m.exec(out);
    return m
      ? { sha256: m[1], path: m[2] }
      : `fetch-criu-source.sh printed no '<sha256>  <path>' line: ${out}`;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    return `scripts/fetch-criu-source.sh failed: ${stderr.trim().split("\n").slice(-3).join(" / ")}`;
  }
}

const tarball = criuTarball();
const skip = cannotRun("lab in a local VM", [
  needRoot(),
  needCommand("qemu-system-x86_64", "apt-get install qemu-system-x86"),
  needCommand("qemu-img", "apt-get install qemu-utils"),
  needCommand("debootstrap", "apt-get install debootstrap"),
  needCommand("genisoimage", "apt-get install genisoimage"),
  needCommand("mkfs.ext4", "apt-get install e2fsprogs"),
  needCommand("tmux", "apt-get install tmux"),
  needCommand("ssh", "apt-get install openssh-client"),
  typeof tarball === "string" ? tarball : undefined,
]);

/** Whether something listens on `port` on an address other than 127.0.0.1 (IPv4 and IPv6). */
function listensBeyondLoopback(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const found: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      // state 0A = LISTEN
      if (local?.endsWith(`:${hexPort}`) && state === "0A" && local !== `0100007F:${hexPort}`) {
        found.push(`${table} ${local}`);
      }
    }
  }
  return found;
}

// Debian 12, although `lab:vm --image debian` builds Debian 13 by default: under software
// emulation on this 2-core machine Debian 13's CRIU build takes 2-4x as long as Debian 12's
// (1322 s against 323-520 s on a quiet machine; about 50 min against 24 at load 6),
// and the whole tier on it would not fit CI's 60 minutes. Why is not known: not the guest's
// kernel or process spawns (about the same on both, measured with init=/bin/bash), nor the
// verifier's own polling (fixed: contract/checks.ts); gcc 14 is the likeliest remaining cause.
describe.skipIf(skip)("the lab in a local QEMU VM (Debian 12 image, CRIU from the tarball)", () => {
  const name = `test-${process.pid}`;
  const opts = parseVmArgs([
    "--image",
    "debian",
    "--debian-release",
    "12",
    "--name",
    name,
    "--timeout",
    "40",
    ...(typeof tarball === "string"
      ? []
      : ["--criu-tarball", tarball.path, "--criu-sha256", tarball.sha256]),
  ]);
  const started = Date.now();
  const log = (line: string) =>
    console.log(`[vm ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
  let run: LabRun | undefined;
  let pair: PairRun | undefined;
  let terminals: Terminals | undefined;
  const baseDir = debianImageDir(opts.cacheDir, opts.debianRelease);

  beforeAll(async () => {
    try {
      run = await runLab(opts, log);
    } catch (err) {
      if (err instanceof VmError && err.evidenceDir) console.log(`evidence: ${err.evidenceDir}`);
      throw err;
    }
    console.log(`phase times:\n${formatPhases(run.phases)}`);
    if (run.evidenceDir) console.log(`evidence of the failure: ${run.evidenceDir}`);
  });

  afterAll(async () => {
    terminals?.close();
    // Ends only the QEMUs this test started (by their recorded PIDs) and removes their overlays.
    const pids = [run?.vm, pair?.hosts.a, pair?.hosts.b].flatMap((vm) => (vm ? [vm.pid] : []));
    log(await destroyLab(opts.cacheDir, name));
    for (const pid of pids) expect(isOurQemu(pid, stateDirOf(opts.cacheDir, name))).toBe(false);
    expect(fs.existsSync(stateDirOf(opts.cacheDir, name))).toBe(false);
  });

  it("verifies: cloud-init finished, criu check and the checkpoint/restore demo passed", () => {
    const report = run?.report;
    expect(report, "no report").toBeDefined();
    expect(
      report?.ok,
      `${report?.error}\nsteps: ${JSON.stringify(report?.steps)}\nevidence: ${run?.evidenceDir}`,
    ).toBe(true);
    expect(report?.steps.map((s) => [s.name, s.ok])).toContainEqual(["cloud-init", true]);
    expect(report?.check?.ok).toBe(true);
    // Built from the tarball served to it: Debian's criu_4.2.1 source.
    expect(report?.check?.criuVersion).toMatch(/^4\.2/);
    expect(report?.demo?.ok).toBe(true);
    expect(report?.demo?.restoredPid).toBe(report?.demo?.pid);
    expect(report?.demo?.firstAfterRestore).toBe((report?.demo?.lastBeforeDump ?? NaN) + 1);
  });

  it("is the Debian 12 guest, its apt sources naming the host's mirror", () => {
    expect(opts.debianRelease).toBe("12");
    const manifest = JSON.parse(fs.readFileSync(path.join(baseDir, "manifest.json"), "utf8"));
    expect(manifest).toMatchObject({ release: "12", suite: "bookworm" });
    expect(manifest.sources).toMatch(/^deb \S+ bookworm main$/m);
    // Debian 12's kernel (6.1), as the verifier's criu check saw it in the guest.
    expect(run?.report.check?.kernel).toMatch(/^6\.1\./);
  });

  // The original lab's interactive steps, as the learner types them (./support/learner).
  it("the learner's steps as ubuntu in two SSH terminals: dump in one, restore in the other", async () => {
    expect(run?.report.ok, "the lab did not verify").toBe(true);
    if (!run) return;
    terminals = new Terminals();
    await learnerSteps(run.vm, terminals, log);
  });

  it("probes acceleration by booting the image's own kernel up to its root mount", async () => {
    const kernel = path.join(baseDir, "vmlinuz");
    expect(await probeBoots("tcg", 120_000, { kind: "kernel", kernel })).toBe(true);
    // A kernel that cannot run: the probe must say so, not wait forever or pass.
    const notAKernel = path.join(opts.cacheDir, "not-a-kernel");
    fs.writeFileSync(notAKernel, "this is not a bzImage\n");
    try {
      expect(await probeBoots("tcg", 10_000, { kind: "kernel", kernel: notAKernel })).toBe(false);
    } finally {
      fs.rmSync(notAKernel, { force: true });
    }
  });

  it("forwards SSH on 127.0.0.1 only and runs on an overlay that leaves the base untouched", () => {
    const vm = run?.vm;
    expect(vm).toBeDefined();
    if (!vm) return;
    expect(listensBeyondLoopback(vm.sshPort)).toEqual([]);
    const info = JSON.parse(
      execFileSync(
        "qemu-img",
        ["info", "-U", "--output=json", path.join(vm.stateDir, "disk.qcow2")],
        {
          encoding: "utf8",
        },
      ),
    ) as { format: string; "backing-filename"?: string };
    expect(info.format).toBe("qcow2");
    expect(info["backing-filename"]).toBe(path.join(baseDir, "disk.raw"));
    // The manifest is written after the base disk is made: a write by the VM would make the
    // disk newer than it.
    const disk = fs.statSync(path.join(baseDir, "disk.raw"));
    const manifest = fs.statSync(path.join(baseDir, "manifest.json"));
    expect(disk.mtimeMs).toBeLessThanOrEqual(manifest.mtimeMs);
  });

  // What this host's kernel cannot do (no soft-dirty tracking), the guest's can.
  it("on the guest's kernel, which tracks dirty pages: the doctor allows incremental checkpoints, and the training job's are", async () => {
    expect(run?.report.ok, "the lab did not verify").toBe(true);
    if (!run) return;
    const doctor = JSON.parse((await onVm(run.vm, "sudo criu-lab doctor --json", 300)).stdout);
    expect(doctor.features.mem_dirty_track.ok).toBe(true);
    for (const exercise of ["training-incremental", "migration-pre-copy", "migration-lazy"]) {
      const e = doctor.exercises[exercise];
      expect(e.ok, `${exercise}: ${e.reason}`).toBe(true);
    }
    const training = await onVm(
      run.vm,
      "sudo criu-lab scenario run training --incremental --size-mib 64 --count 3 --interval 5 --json",
      900,
    );
    const r = JSON.parse(training.stdout);
    log(
      `training (incremental, 64 MiB): images ${r.imageBytes}, frozen ${r.frozenUs} us, ` +
        `resumed at ${r.resumedAtStep} (checkpoint ${r.lastCheckpointStep}, lost ${r.lostSteps})`,
    );
    expect(r.ok, r.error).toBe(true);
    expect(training.code).toBe(0);
    expect(r.incremental).toBe(true);
    expect(r.checkpoints).toBe(3);
    expect(r.resumedAtStep).toBe(r.lastCheckpointStep);
    expect(r.stateMatches).toBe(true);
    // After the first, a checkpoint writes only the pages changed since the one before.
    expect(r.imageBytes[2]).toBeLessThan(r.imageBytes[0] / 2);
  });

  // Migration between two kernels, with the same CRIU build on both. Last:
  // it powers the first VM off (its disk becomes the two hosts' base).
  it("two hosts from the verified disk: the counter migrates a -> b in every mode, each under its own kernel, and back", async () => {
    expect(run?.report.ok, "the lab did not verify").toBe(true);
    if (!run) return;
    terminals?.close();
    terminals = undefined;
    pair = await runPair(opts, run, log);
    const hosts = pair.hosts;
    const bootId = async (vm: typeof hosts.a) =>
      (await onVm(vm, "cat /proc/sys/kernel/random/boot_id", 60)).stdout.trim();
    expect(await bootId(hosts.a)).not.toBe(await bootId(hosts.b));
    const rows: PairMigration[] = [];
    for (const mode of PAIR_MODES) rows.push(await migrateInPair(pair, "a", mode));
    rows.push(await migrateInPair(pair, "b", "cold"));
    log(`migrations:\n${migrationTable(rows)}`);
    for (const m of rows) {
      const what = `${m.mode} ${m.from}->${m.to}`;
      expect(m.report.ok, `${what}: ${m.report.error}`).toBe(true);
      expect(m.exitCode, what).toBe(0);
      expect(m.report.mode, what).toBe(m.mode);
      expect(m.report.destination, what).toBe(`${LAB_USER}@${PAIR[m.to].name}`);
      expect(m.report.restoredPid, what).toBe(m.report.pid);
      expect(m.report.firstAfterRestore, what).toBe((m.report.lastBeforeDump ?? NaN) + 1);
      // The pair check passed every check, and saw the second kernel: another boot there.
      expect(
        m.report.pairChecks?.filter((c) => !c.ok),
        what,
      ).toEqual([]);
      expect(m.report.pairChecks?.find((c) => c.name === "pid")?.detail, what).toMatch(
        /^PID \d+ is free there$/,
      );
      if (m.mode === "pre-copy") {
        // Rounds until the rule stopped them, each reported; the first holds every page.
        const rounds = m.report.preCopyRounds ?? [];
        expect(rounds.length, what).toBeGreaterThan(0);
        expect(rounds.length, what).toBeLessThanOrEqual(8);
        expect(rounds[0].pages, what).toBeGreaterThan(0);
        expect(["converged", "not shrinking", "round limit"], what).toContain(m.report.preCopyStop);
      }
    }
  });
});
