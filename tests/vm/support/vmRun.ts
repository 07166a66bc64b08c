/**
 * What both VM tier files share: the CRIU release tarball served to the guest, the tools a
 * run needs (skipped with the reason outside CI, failed under CI=true), the run itself with
 * its phase times printed, and the clean-up that ends only the QEMUs the file started.
 */
import * as fs from "node:fs";
import { expect } from "vitest";
import { formatPhases } from "../../../vm/cli";
import { destroyLab, runLab, stateDirOf, VmError, type LabRun } from "../../../vm/lab";
import { parseVmArgs, type VmOptions } from "../../../vm/options";
import type { PairRun } from "../../../vm/pair";
import { isOurQemu } from "../../../vm/qemu";
import { releaseTarball } from "../../../vm/tools";
import { cannotRun, needCommand, needRoot } from "../../support/requirements";

export const tarball = releaseTarball();

/** The `--criu-tarball` flags for the tarball (none when it could not be fetched). */
const tarballFlags = (): string[] =>
  typeof tarball === "string"
    ? []
    : ["--criu-tarball", tarball.path, "--criu-sha256", tarball.sha256];

/** A test's Debian lab VM: MORE flags, a name of this test run's (test-PID-NAME), 40 minutes'
 * timeout and the release tarball served to it. */
export function testVmOptions(name: string, more: string[] = []): VmOptions {
  return parseVmArgs([
    "--image",
    "debian",
    ...more,
    "--name",
    `test-${process.pid}-${name}`,
    "--timeout",
    "40",
    ...tarballFlags(),
  ]);
}

export const skipVm = cannotRun("lab in a local VM", [
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

/** Logs with the seconds since the file started. */
export function vmLog(): (line: string) => void {
  const started = Date.now();
  return (line: string) =>
    console.log(`[vm ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
}

/** Boots and verifies the lab, printing its phase times (and where a failure's evidence is). */
export async function bootLab(opts: VmOptions, log: (line: string) => void): Promise<LabRun> {
  let run: LabRun;
  try {
    run = await runLab(opts, log);
  } catch (err) {
    if (err instanceof VmError && err.evidenceDir) console.log(`evidence: ${err.evidenceDir}`);
    throw err;
  }
  console.log(`phase times:\n${formatPhases(run.phases)}`);
  if (run.evidenceDir) console.log(`evidence of the failure: ${run.evidenceDir}`);
  return run;
}

/** Ends only the QEMUs this file started (by their recorded PIDs), removes their overlays. */
export async function destroyRun(
  opts: VmOptions,
  run: LabRun | undefined,
  pair: PairRun | undefined,
  log: (line: string) => void,
): Promise<void> {
  const pids = [run?.vm, pair?.hosts.a, pair?.hosts.b].flatMap((vm) => (vm ? [vm.pid] : []));
  log(await destroyLab(opts.cacheDir, opts.name));
  for (const pid of pids) expect(isOurQemu(pid, stateDirOf(opts.cacheDir, opts.name))).toBe(false);
  expect(fs.existsSync(stateDirOf(opts.cacheDir, opts.name))).toBe(false);
}

/** The verifier passed: cloud-init finished, `criu check` and the demo (same PID, counts on). */
export function expectVerified(run: LabRun | undefined): void {
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
}

/** Whether something listens on `port` on an address other than 127.0.0.1 (IPv4 and IPv6). */
export function listensBeyondLoopback(port: number): string[] {
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
