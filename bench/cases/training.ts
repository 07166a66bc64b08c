/**
 * The training job's periodic checkpoints: frozen time per checkpoint
 * and its overhead (frozen time over the interval) for a 1 GiB job checkpointed every 60 s,
 * full dumps, and incremental ones (--track-mem) where the doctor says dirty tracking works.
 *
 * At this case's default 60 s interval one run is three checkpoints, about 3.5 minutes. The frozen
 * time does not depend on the interval, only the overhead does (frozen / interval), so
 * CRIU_LAB_BENCH_INTERVAL=10 measures the same frozen times six times faster, with the
 * overhead of that shorter interval (60 s figure = 10 s figure / 6).
 * CRIU_LAB_BENCH_SIZE_MIB changes the size. Between two checkpoints the job changes 10 % of
 * its memory (what an incremental checkpoint then writes), whatever the interval.
 */
import { criuLab, envNumber, type BenchContext, type BenchResult } from "../criu-lab";

const STEP_SECONDS = 0.5;

export default async function training(ctx: BenchContext): Promise<BenchResult[]> {
  const interval = envNumber("CRIU_LAB_BENCH_INTERVAL", 60);
  const sizeMiB = envNumber("CRIU_LAB_BENCH_SIZE_MIB", 1024);
  const dirtyPercent = (10 * STEP_SECONDS) / interval;
  const exercises = criuLab(["doctor"]).exercises as Record<string, { ok: boolean }> | undefined;
  const incremental = exercises?.["training-incremental"]?.ok === true;
  const results: BenchResult[] = [];
  for (const mode of incremental ? ["full", "incremental"] : ["full"]) {
    const frozen: number[] = [];
    const images: number[] = [];
    const overhead: number[] = [];
    for (let run = 1; run <= ctx.runs; run++) {
      ctx.log(
        `training: ${mode} dumps of ${sizeMiB} MiB every ${interval} s, run ${run}/${ctx.runs}`,
      );
      const r = criuLab([
        "scenario",
        "run",
        "training",
        `--${mode}`,
        "--size-mib",
        String(sizeMiB),
        "--interval",
        String(interval),
        "--count",
        "3",
        "--step-seconds",
        String(STEP_SECONDS),
        "--dirty-percent",
        String(dirtyPercent),
      ]);
      if (!r.ok) {
        ctx.log(`training: ${mode} run ${run} failed: ${String(r.error)}`);
        continue;
      }
      // An incremental series starts with a full dump: its later checkpoints are the figure.
      const skip = mode === "incremental" ? 1 : 0;
      frozen.push(...(r.frozenUs as number[]).slice(skip).map((us) => us / 1000));
      images.push(...(r.imageBytes as number[]).slice(skip).map((b) => b / 2 ** 20));
      overhead.push(r.overheadPercent as number);
    }
    const label = `${mode}, ${sizeMiB} MiB`;
    results.push(
      { case: "training", metric: `frozen per checkpoint (${label})`, unit: "ms", values: frozen },
      { case: "training", metric: `images per checkpoint (${label})`, unit: "MiB", values: images },
      {
        case: "training",
        metric: `overhead at ${interval} s (${label})`,
        unit: "%",
        values: overhead,
      },
    );
  }
  if (!incremental) {
    results.push({
      case: "training",
      metric: `frozen per checkpoint (incremental, ${sizeMiB} MiB)`,
      unit: "ms",
      values: [],
      note: "no dirty-page tracking on this kernel (criu-lab doctor)",
    });
  }
  return results;
}
