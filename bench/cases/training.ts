/**
 * The training job's periodic checkpoints, per process size: the time the job is frozen per
 * checkpoint and the checkpoint's wall time, from `criu-lab scenario run training` and from the
 * same checkpoints by hand (`criu dump --leave-running` into RAM, bench/hand.ts) of the same
 * trainer, interleaved round by round; full dumps, and incremental ones (--track-mem) where the
 * doctor says dirty tracking works. Also the images per checkpoint and the lab's overhead
 * (frozen time over the interval).
 *
 * One round is three checkpoints CRIU_LAB_BENCH_INTERVAL seconds apart (default 2). The frozen
 * time does not depend on the interval, only the overhead does (frozen / interval): a 60 s
 * figure is the 2 s figure / 30. Between two checkpoints the job changes 10 % of its memory
 * (what an incremental checkpoint then writes), whatever the interval.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run, waitFor } from "../../netlab/run";
import { criuLab, envNumber } from "../criu-lab";
import type { BenchContext, BenchResult } from "../figures";
import { checkpointByHand, readMarks } from "../hand";

const TRAINER = path.join(__dirname, "..", "..", "host", "trainer.py");
const CRIT = "/usr/local/bin/crit";
const STEP_SECONDS = 0.5;
const COUNT = 3;

export default async function training(ctx: BenchContext): Promise<BenchResult[]> {
  const interval = envNumber("CRIU_LAB_BENCH_INTERVAL", 2);
  const dirtyPercent = (10 * STEP_SECONDS) / interval;
  const trainerArgs = (size: number) => [
    "--size-mib",
    String(size),
    "--step-seconds",
    String(STEP_SECONDS),
    "--dirty-percent",
    String(dirtyPercent),
  ];
  const exercises = criuLab(["doctor"]).exercises as Record<string, { ok: boolean }> | undefined;
  const incremental = exercises?.["training-incremental"]?.ok === true;
  const modes = incremental ? ["full", "incremental"] : ["full"];
  const results: BenchResult[] = [];
  /** One of the case's figures, its values filled round by round. */
  const figure = (metric: string, unit: string, more: Partial<BenchResult> = {}): BenchResult => ({
    case: "training",
    metric,
    unit,
    values: [],
    ...more,
  });
  // The lab's run directories: its own, so that keep_latest_passing never touches another's.
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "criu-lab-bench-training-"));
  const shm = fs.mkdtempSync("/dev/shm/criu-lab-bench-training-");
  try {
    for (const size of ctx.sizesMiB) {
      for (const mode of modes) {
        const label = `${mode}, ${size} MiB`;
        const plot = { panel: "training" as const, series: mode, x: size };
        const frozen = figure(`frozen per checkpoint (${label})`, "ms", {
          floor: `frozen per checkpoint by hand (${label})`,
          plot,
        });
        const frozenHand = figure(frozen.floor!, "ms", {
          plot: { ...plot, series: `${mode} by hand`, hand: true },
        });
        const dump = figure(`dump per checkpoint (${label})`, "ms", {
          floor: `dump per checkpoint by hand (${label})`,
        });
        const dumpHand = figure(dump.floor!, "ms");
        const images = figure(`images per checkpoint (${label})`, "MiB");
        const overhead = figure(`overhead at ${interval} s (${label})`, "%");
        results.push(frozen, frozenHand, dump, dumpHand, images, overhead);
        // An incremental series starts with a full dump: its later checkpoints are the figure.
        const skip = mode === "incremental" ? 1 : 0;
        for (let round = 1; round <= ctx.runs; round++) {
          ctx.log(
            `training: ${label}, checkpoints every ${interval} s, round ${round}/${ctx.runs}`,
          );
          const r = criuLab(
            [
              "scenario",
              "run",
              "training",
              `--${mode}`,
              ...trainerArgs(size),
              "--interval",
              String(interval),
              "--count",
              String(COUNT),
            ],
            { CRIU_LAB_LOG_DIR: logDir },
          );
          const labFrozen = numberList(r.frozenUs);
          const labDump = numberList(r.dumpMs);
          if (!r.ok || !labFrozen) {
            ctx.log(
              `training: ${label} round ${round} failed: ${String(r.error ?? "no frozenUs")}`,
            );
            continue;
          }
          const hand = await checkpointsByHand(
            trainerArgs(size),
            path.join(shm, `${mode}-${size}-${round}`),
            interval,
            mode === "incremental",
          );
          frozen.values.push(...labFrozen.slice(skip).map((us) => us / 1000));
          frozenHand.values.push(...hand.frozenUs.slice(skip).map((us) => us / 1000));
          if (labDump) dump.values.push(...labDump.slice(skip));
          dumpHand.values.push(...hand.dumpMs.slice(skip));
          images.values.push(
            ...(numberList(r.imageBytes) ?? []).slice(skip).map((b) => b / 2 ** 20),
          );
          if (typeof r.overheadPercent === "number") overhead.values.push(r.overheadPercent);
          const ms = (l: number[]) => l.map((v) => v.toFixed(0)).join(", ");
          ctx.log(
            `  lab: frozen ${ms(labFrozen.map((us) => us / 1000))} ms, dump ${ms(labDump ?? [])} ms; ` +
              `by hand: frozen ${ms(hand.frozenUs.map((us) => us / 1000))} ms, dump ${ms(hand.dumpMs)} ms`,
          );
        }
      }
      if (!incremental) {
        results.push(
          figure(`frozen per checkpoint (incremental, ${size} MiB)`, "ms", {
            note: "no dirty-page tracking on this kernel (criu-lab doctor)",
          }),
        );
      }
    }
  } finally {
    fs.rmSync(logDir, { recursive: true, force: true });
    fs.rmSync(shm, { recursive: true, force: true });
  }
  return results;
}

/** A list of numbers from the host command's JSON, or undefined (a field read by name). */
function numberList(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.every((n) => typeof n === "number") ? (v as number[]) : undefined;
}

/**
 * The same trainer (same arguments), checkpointed COUNT times INTERVAL seconds apart by hand
 * into DIR (in RAM), then ended by PID. CRIU's frozen time (µs, stats-dump) and each dump's
 * wall time (ms) per checkpoint.
 */
async function checkpointsByHand(
  args: string[],
  dir: string,
  interval: number,
  incremental: boolean,
): Promise<{ frozenUs: number[]; dumpMs: number[] }> {
  fs.mkdirSync(dir, { recursive: true });
  const log = path.join(dir, "trainer.log");
  // Detached (its own session, no terminal), as the lab starts it; the bench is its parent
  // and reaps it.
  const fd = fs.openSync(log, "a");
  const trainer = spawn("/usr/bin/python3", [TRAINER, ...args], {
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  const pid = trainer.pid!;
  const out = { frozenUs: [] as number[], dumpMs: [] as number[] };
  try {
    await waitFor(
      "the trainer's first step",
      () => (/^step 1 /m.test(fs.readFileSync(log, "utf8")) ? true : undefined),
      300_000,
    );
    const t0 = Date.now();
    for (let i = 1; i <= COUNT; i++) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, t0 + i * interval * 1000 - Date.now())),
      );
      const images = path.join(dir, String(i));
      const prev = incremental && i > 1 ? `../${i - 1}` : undefined;
      const done = run("bash", ["-c", checkpointByHand(pid, images, prev)]);
      if (done.code !== 0) throw new Error(`criu dump by hand exited ${done.code}: ${done.stderr}`);
      out.dumpMs.push(readMarks(done.stdout).total);
      out.frozenUs.push(frozenUs(images));
    }
  } finally {
    killTrainer(pid);
    if (trainer.exitCode === null && trainer.signalCode === null) {
      await new Promise((resolve) => trainer.once("exit", resolve));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

function frozenUs(images: string): number {
  const shown = run(CRIT, ["show", path.join(images, "stats-dump")]);
  const entry = (
    JSON.parse(shown.stdout) as { entries?: Array<{ dump?: { frozen_time?: unknown } }> }
  ).entries?.[0]?.dump?.frozen_time;
  if (typeof entry !== "number")
    throw new Error(`no frozen_time in ${images}/stats-dump: ${shown.stderr}`);
  return entry;
}

/** Ends PID only while it is still a trainer (a PID can be reused). */
function killTrainer(pid: number): void {
  try {
    if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("trainer.py")) {
      process.kill(pid, "SIGKILL");
    }
  } catch {
    // already ended
  }
}
