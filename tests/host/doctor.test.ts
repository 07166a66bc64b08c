/**
 * `criu-lab doctor` against this host's real CRIU: each verdict agrees with what `criu check
 * --feature` says, and a scenario the host cannot run is refused with the doctor's reason
 * before it starts anything (shown with a criu that lacks the feature, as on some kernels).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun } from "../support/requirements";
import { HOST, run, tempDir, HOST_DIR } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

/** This worktree's criu-lab (the installed one may be older). */
const LAB = path.join(HOST_DIR, "criu-lab");
const EXERCISES = [
  "training-full",
  "training-incremental",
  "game",
  "migration-cold",
  "migration-page-server",
  "migration-pre-copy",
  "migration-lazy",
  "advise",
  "advise-dirty-rate",
];

interface Doctor {
  ok: boolean;
  kernel: string;
  criuCheck: { ok: boolean };
  features: Record<string, { ok: boolean; output: string }>;
  networkLock: "iptables" | "nftables" | null;
  exercises: Record<string, { ok: boolean; reason: string; fix?: string }>;
  fixes: string[];
  link: Record<"rate" | "delay", { ok: boolean; output: string }>;
}

/** A criu that behaves like the real one except that FEATURES are missing. */
function criuWithout(dir: string, features: string[]): string {
  const fake = path.join(dir, "criu");
  const cases = features.map(
    (f) => `  "check --feature ${f}") echo "${f} is not supported (test)" >&2; exit 1 ;;`,
  );
  fs.writeFileSync(
    fake,
    ["#!/bin/sh", 'case "$*" in', ...cases, "esac", `exec ${HOST.criu} "$@"`, ""].join("\n"),
    { mode: 0o755 },
  );
  return fake;
}

describe.skipIf(cannotRun("criu-lab doctor", needLabHost("criu")))("criu-lab doctor", () => {
  let doctor: Doctor;
  let dir: string;
  beforeAll(() => {
    dir = tempDir("doctor");
    const ran = run(LAB, ["doctor", "--json"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    doctor = JSON.parse(ran.stdout);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reports the kernel, criu check and a verdict for every exercise", () => {
    expect(doctor.ok).toBe(true);
    expect(doctor.kernel).toBe(run("uname", ["-r"]).stdout.trim());
    expect(doctor.criuCheck.ok).toBe(true);
    expect(Object.keys(doctor.exercises).sort()).toEqual([...EXERCISES].sort());
    for (const [name, v] of Object.entries(doctor.exercises)) {
      if (!v.ok) {
        expect(v.reason, name).not.toBe("");
        expect(v.fix, name).toBeTruthy();
      }
    }
    console.log(
      "doctor here: " +
        Object.entries(doctor.exercises)
          .map(([n, v]) => `${n} ${v.ok ? "yes" : "no"}`)
          .join(", "),
    );
  });

  it("each feature's verdict is what `criu check --feature` says", () => {
    for (const [name, v] of Object.entries(doctor.features)) {
      const ran = run(HOST.criu, ["check", "--feature", name]);
      expect(v.ok, name).toBe(ran.code === 0);
    }
    const dirty = doctor.features.mem_dirty_track.ok;
    expect(doctor.exercises["training-incremental"].ok).toBe(dirty);
    expect(doctor.exercises["migration-pre-copy"].ok).toBe(dirty);
    expect(doctor.exercises["advise-dirty-rate"].ok).toBe(dirty);
    expect(doctor.exercises.advise.ok).toBe(true);
    if (!dirty) expect(doctor.exercises["training-incremental"].reason).toContain("dirty");
    expect(doctor.exercises["migration-lazy"].ok).toBe(
      doctor.features.uffd.ok && doctor.features["uffd-noncoop"].ok,
    );
  });

  it("says whether `criu-lab link` can shape a rate and a delay, as tc says in a namespace", () => {
    // The same question asked again, independently: can this kernel add the qdisc?
    const tries = (kind: string, args: string[]) =>
      run("unshare", ["--net", "tc", "qdisc", "add", "dev", "lo", "root", kind, ...args]).code ===
      0;
    const rate = tries("tbf", ["rate", "1mbit", "burst", "32k", "latency", "50ms"]);
    const delay = tries("netem", ["delay", "5ms"]);
    expect(doctor.link.rate.ok).toBe(rate);
    expect(doctor.link.delay.ok).toBe(delay);
    expect(doctor.fixes.some((f) => f.includes("no netem qdisc"))).toBe(!delay);
    console.log(`link shaping here: rate ${rate ? "yes" : "no"}, delay ${delay ? "yes" : "no"}`);
  });

  it("picks the network lock this host has: iptables where its binary is, else nftables", () => {
    const iptables = run("sh", [
      "-c",
      "command -v iptables-restore || command -v iptables-legacy-restore",
    ]);
    const expected =
      iptables.code === 0
        ? "iptables"
        : doctor.features.network_lock_nftables.ok
          ? "nftables"
          : null;
    expect(doctor.networkLock).toBe(expected);
    expect(doctor.exercises.game.ok).toBe(expected !== null);
  });

  it("prints the same verdicts as text, with the fixes for what is missing", () => {
    const ran = run(LAB, ["doctor"]);
    expect(ran.code).toBe(ExitCode.ok);
    expect(ran.stdout).toMatch(/^CRIU 4\.\S+, kernel \S+ .*criu check: passed/);
    for (const name of EXERCISES) {
      expect(ran.stdout).toMatch(
        new RegExp(`^  ${name} +${doctor.exercises[name].ok ? "yes" : "no"}`, "m"),
      );
    }
    for (const fix of doctor.fixes) expect(ran.stdout).toContain(fix);
  });

  it("names what is missing and its fix where a kernel lacks dirty tracking and userfaultfd", () => {
    const fake = criuWithout(dir, ["mem_dirty_track", "uffd"]);
    const ran = run(LAB, ["doctor", "--json"], { env: { ...process.env, CRIU_LAB_CRIU: fake } });
    expect(ran.code).toBe(ExitCode.ok);
    const d: Doctor = JSON.parse(ran.stdout);
    expect(d.exercises["training-incremental"]).toMatchObject({ ok: false });
    expect(d.exercises["migration-pre-copy"].reason).toContain(
      "mem_dirty_track is not supported (test)",
    );
    expect(d.exercises["migration-lazy"]).toMatchObject({ ok: false });
    expect(d.exercises["training-full"].ok).toBe(true);
    expect(d.fixes.join("\n")).toContain("vm.unprivileged_userfaultfd");
    expect(d.fixes.join("\n")).toContain("CONFIG_MEM_SOFT_DIRTY");
  });

  it("a scenario the host cannot run is refused with the doctor's reason, before it starts", () => {
    const logs = path.join(dir, "logs");
    fs.mkdirSync(logs);
    const env = { ...process.env, CRIU_LAB_LOG_DIR: logs };
    const noDirty = criuWithout(dir, ["mem_dirty_track"]);
    const training = run(LAB, ["scenario", "run", "training", "--incremental", "--json"], {
      env: { ...env, CRIU_LAB_CRIU: noDirty },
    });
    expect(training.code).toBe(ExitCode.labBroken);
    const t = JSON.parse(training.stdout);
    expect(t.ok).toBe(false);
    expect(t.error).toContain(
      "training-incremental cannot run on this host: no dirty-page tracking",
    );
    expect(t.error).toContain("sudo criu-lab doctor");

    // No lock backend: no nftables in CRIU, and no iptables binary on the PATH.
    const noLock = criuWithout(dir, ["network_lock_nftables"]);
    const game = run(LAB, ["scenario", "run", "game", "--json"], {
      env: { ...env, CRIU_LAB_CRIU: noLock, PATH: "/usr/bin:/bin" },
    });
    expect(game.code).toBe(ExitCode.labBroken);
    expect(JSON.parse(game.stdout).error).toContain(
      "game cannot run on this host: no network-lock backend",
    );
    expect(fs.readdirSync(logs)).toEqual([]);
  });

  it("refuses to run without root (exit 2), naming sudo", () => {
    const ran = run("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      LAB,
      "doctor",
      "--json",
    ]);
    expect(ran.code).toBe(ExitCode.usage);
    expect(JSON.parse(ran.stdout).error).toContain("sudo criu-lab doctor");
  });
});
