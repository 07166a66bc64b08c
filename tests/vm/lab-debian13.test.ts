/**
 * The lab on Debian 13 (kernel 6.12) as a learner and a class use it: the image built with
 * debootstrap and CRIU built in its tree natively (`--criu-build image`: install-criu.sh in a
 * chroot, from the same served release tarball and sha256), cached under the source's sha256;
 * the guest's cloud-init run of install-criu.sh checks that build (source, version, binaries,
 * `criu check` on 6.12) and reuses it. Then the verifier, the learner's steps as ubuntu in two
 * SSH terminals, the doctor and incremental checkpoints on a kernel that tracks dirty pages,
 * and two hosts from the verified disk: the counter migrates a -> b in every mode and back, a
 * lazy migration whose daemon is killed (--fault lazy-kill), and the link between them shaped
 * with netem. Prints each phase's time and the pair's figures against cold migration.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labRun, labStages } from "../../bench/cases/migration";
import { probeBoots } from "../../vm/accel";
import { debianImageDir } from "../../vm/image";
import { LAB_USER, type LabRun } from "../../vm/lab";
import {
  migrateInPair,
  migrationTable,
  onVm,
  PAIR,
  PAIR_MODES,
  pairFigures,
  runPair,
  type PairMigration,
  type PairRun,
} from "../../vm/pair";
import { lazyKill } from "./support/lazyKill";
import { learnerSteps } from "./support/learner";
import { shapedLink } from "./support/shapedLink";
import { Terminals } from "./support/terminals";
import {
  bootLab,
  destroyRun,
  expectVerified,
  skipVm,
  tarball,
  testVmOptions,
  vmLog,
} from "./support/vmRun";

describe.skipIf(skipVm)("the lab on Debian 13 in local QEMU VMs (CRIU built in the image)", () => {
  const opts = testVmOptions("d13");
  const log = vmLog();
  let run: LabRun | undefined;
  let pair: PairRun | undefined;
  let terminals: Terminals | undefined;
  const sha256 = typeof tarball === "string" ? "" : tarball.sha256;
  const criu = { kind: "tarball" as const, url: "", sha256 };
  const baseDir = debianImageDir(opts.cacheDir, opts.debianRelease, criu);

  beforeAll(async () => {
    run = await bootLab(opts, log);
  });

  afterAll(async () => {
    terminals?.close();
    await destroyRun(opts, run, pair, log);
  });

  it("verifies: cloud-init finished, criu check and the checkpoint/restore demo passed", () => {
    expect(opts).toMatchObject({ debianRelease: "13", criuBuild: "image" });
    expectVerified(run);
  });

  it("is Debian 13 on kernel 6.12, its CRIU built in the image and reused by the guest's install", async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(baseDir, "manifest.json"), "utf8"));
    expect(manifest).toMatchObject({ release: "13", suite: "trixie" });
    expect(manifest.criu).toMatchObject({ sourceId: `tarball:${sha256}` });
    expect(manifest.criu.criuVersion).toMatch(/^4\.2/);
    expect(run?.report.check?.kernel).toMatch(/^6\.12\./);
    const names = run?.phases.map((p) => p.name) ?? [];
    expect(names).toContain("CRIU reused (checks)");
    expect(names).not.toContain("CRIU build");
    if (!run) return;
    // The guest's record is the image's own, untouched: nothing was rebuilt in the guest.
    const record = JSON.parse(
      (await onVm(run.vm, "cat /var/lib/criu-lab/install.json", 60)).stdout,
    );
    expect(record.installedAt).toBe(manifest.criu.installedAt);
    const installLog = await onVm(run.vm, "sudo cat /var/log/criu-lab/install.log", 60);
    expect(installLog.stdout).toMatch(/passes criu check on 6\.12\.\S+: nothing to do/);
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

  // What the CI machine's kernel cannot do (no soft-dirty tracking), the guest's can.
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
    // After the first (full), a checkpoint writes only the pages changed since the one before.
    log(
      `figure: incremental checkpoint ${r.imageBytes[2]} B = ` +
        `${(r.imageBytes[2] / r.imageBytes[0]).toFixed(3)}x the full one's ${r.imageBytes[0]} B`,
    );
    expect(r.imageBytes[2]).toBeLessThan(r.imageBytes[0] / 2);
  });

  // Migration between two 6.12 kernels, with the image's CRIU build on both. Last: it powers
  // the first VM off (its disk becomes the two hosts' base).
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
    for (const line of pairFigures(rows)) log(`figure: ${line}`);
    for (const m of rows) {
      const what = `${m.mode} ${m.from}->${m.to}`;
      expect(m.report.ok, `${what}: ${m.report.error}`).toBe(true);
      expect(m.exitCode, what).toBe(0);
      expect(m.report.mode, what).toBe(m.mode);
      expect(m.report.destination, what).toBe(`${LAB_USER}@${PAIR[m.to].name}`);
      expect(m.report.destinationKernel, what).toMatch(/^6\.12\./);
      expect(m.report.restoredPid, what).toBe(m.report.pid);
      expect(m.report.firstAfterRestore, what).toBe((m.report.lastBeforeDump ?? NaN) + 1);
      // The pair check passed every check, and saw the second kernel: another boot there.
      expect(
        m.report.pairChecks?.filter((c) => !c.ok),
        what,
      ).toEqual([]);
      // Twin guests count PIDs in step: the check moves b's counter past the counter's PID
      // when it is below (pair.pid_probe), so the restore finds that PID free.
      expect(m.report.pairChecks?.find((c) => c.name === "pid")?.detail, what).toMatch(
        new RegExp(
          `^PID ${m.report.pid} is free there(; its new processes are numbered above \\d+ now, clear of this tree's PIDs)?$`,
        ),
      );
      if (m.mode === "pre-copy") {
        // Rounds until the rule stopped them, each reported; the first holds every page.
        const rounds = m.report.preCopyRounds ?? [];
        expect(rounds.length, what).toBeGreaterThan(0);
        expect(rounds.length, what).toBeLessThanOrEqual(8);
        expect(rounds[0].pages, what).toBeGreaterThan(0);
        expect(["converged", "not shrinking", "round limit"], what).toContain(m.report.preCopyStop);
      }
      const j = m.report as unknown as Record<string, unknown>;
      log(`${what}: ${labRun(j).line}`);
      if (m.mode === "lazy") {
        expect(m.report.resumeMs, what).toBeGreaterThan(0);
        expect(m.report.downtimeMs, what).toBe(m.report.resumeMs);
        // Its stages, back to back from the freeze, are its downtime (lazy.py STAGES), and
        // CRIU's stats-dump of a lazy dump is left out, with the reason (common.LAZY_DUMP_STATS).
        const { stages, check } = labStages(j);
        expect(Object.keys(stages), what).toEqual(
          expect.arrayContaining([
            "freezeMs",
            "manifestMs",
            "forwardMs",
            "transferMs",
            "daemonMs",
            "restoreMs",
          ]),
        );
        expect(stages.freezeMs, what).toBeGreaterThan(0);
        expect(
          check.ok,
          `${what}: gap ${check.gap.toFixed(1)} ms (${check.gapPercent.toFixed(1)} %)`,
        ).toBe(true);
        expect(m.report.criu?.dump, what).toBeNull();
        expect(m.report.criu?.dumpLeftOut, what).toMatch(/init_stats/);
      }
    }
    expect(pairFigures(rows)).toHaveLength(2);
  });

  // After the cold b -> a: lazy's daemon killed once the counter runs on b (./support/lazyKill).
  it("a lazy migration whose criu lazy-pages is killed: the counter runs on a again, the copy on b is ended, exit 1", async () => {
    expect(pair, "the pair did not come up").toBeDefined();
    if (!pair) return;
    await lazyKill(pair, log);
  });

  // netem, which the test machine's kernel lacks (./support/shapedLink).
  it("the link shaped with a rate and a delay: shown, measured (round trip, a migration's copy), cleared", async () => {
    expect(pair, "the pair did not come up").toBeDefined();
    if (!pair) return;
    log(`load on this host: ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`);
    await shapedLink(pair, log);
    log(`load on this host: ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`);
  });
});
