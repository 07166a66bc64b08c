/**
 * `npm run lab:vm` (criu-lab-local vm): the lab in a local QEMU VM, verified; `--destroy` removes it.
 * Progress goes to stderr, so that `--json` leaves stdout to the verifier's report alone.
 */
import { ExitCode } from "../contract/checks";
import { runMain } from "../verify/cliCommon";
import { worstExitCode } from "../contract/checks";
import { destroyLab, runLab, sshCommand, VmError, type PhaseTime } from "./lab";
import { parseVmArgs, USAGE, type VmOptions } from "./options";
import {
  migrateInPair,
  migrationTable,
  PAIR,
  PAIR_MODES,
  runPair,
  type PairMigration,
} from "./pair";

export function formatPhases(phases: PhaseTime[]): string {
  const width = Math.max(...phases.map((p) => p.name.length), 5);
  return phases
    .map(
      (p) =>
        `  ${p.name.padEnd(width)}  ${(p.ms / 1000).toFixed(1).padStart(7)} s${p.note ? `  (${p.note})` : ""}`,
    )
    .join("\n");
}

export async function main(argv: string[]): Promise<number> {
  // A VmError carries its exit code, and where the failed VM's evidence was kept.
  const known = (e: unknown) =>
    e instanceof VmError
      ? {
          exitCode: e.exitCode,
          message: e.evidenceDir ? `${e.message}\nevidence: ${e.evidenceDir}` : e.message,
        }
      : undefined;
  return runMain({ name: "criu-lab-local vm", usage: USAGE, known }, async () =>
    runVm(parseVmArgs(argv)),
  );
}

async function runVm(opts: VmOptions): Promise<number> {
  if (opts.help) {
    console.log(USAGE);
    return ExitCode.ok;
  }
  const log = (line: string) => console.error(line);
  if (opts.destroy) {
    log(await destroyLab(opts.cacheDir, opts.name));
    return ExitCode.ok;
  }
  const run = await runLab(opts, log);
  log(`\nphase times:\n${formatPhases(run.phases)}`);
  if (opts.json) console.log(JSON.stringify(run.report, null, 2));
  if (run.report.ok) {
    const demo = run.report.demo;
    log(
      `\nthe lab works: CRIU ${run.report.check?.criuVersion ?? "?"} on kernel ${run.report.check?.kernel ?? "?"}` +
        (demo
          ? `; demo restored PID ${demo.restoredPid}, counter ${demo.lastBeforeDump} -> ${demo.firstAfterRestore}`
          : ""),
    );
  } else {
    log(`\nthe lab did not verify: ${run.report.error ?? "see the steps above"}`);
    if (run.evidenceDir) log(`evidence: ${run.evidenceDir}`);
  }
  const destroy = `npm run lab:vm -- --destroy${opts.name === "criu-lab" ? "" : ` --name ${opts.name}`}`;
  if (opts.hosts === 1 || !run.report.ok) {
    log(`\nthe VM keeps running. SSH in with:\n  ${sshCommand(run.vm)}`);
    log(`remove it with: ${destroy}`);
    return run.report.exitCode;
  }
  log("\ntwo hosts: booting a and b from the verified VM's disk");
  const pair = await runPair(opts, run, log);
  const rows: PairMigration[] = [];
  for (const mode of PAIR_MODES) {
    log(`migrating the counter a -> b (${mode})`);
    rows.push(await migrateInPair(pair, "a", mode));
  }
  log("and back, b -> a (cold)");
  rows.push(await migrateInPair(pair, "b", "cold"));
  log(`\n${migrationTable(rows)}`);
  for (const m of rows.filter((row) => !row.report.ok)) {
    log(`${m.mode} ${m.from}->${m.to} failed: ${m.report.error ?? "no error given"}`);
  }
  if (opts.json) console.log(JSON.stringify(rows, null, 2));
  log(
    `\nboth hosts keep running; from either, root reaches the other as ubuntu@${PAIR.a.name} / ubuntu@${PAIR.b.name}`,
  );
  for (const role of ["a", "b"] as const) log(`  host ${role}: ${sshCommand(pair.hosts[role])}`);
  log(`remove them with: ${destroy}`);
  return worstExitCode(
    rows.map((row) =>
      row.report.ok ? ExitCode.ok : ((row.exitCode ?? ExitCode.labBroken) as ExitCode),
    ),
  );
}
