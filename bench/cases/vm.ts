/**
 * The VM tier's figures (`npm run bench -- --vm`): two Debian 13 guests (kernel 6.12: dirty
 * tracking for pre-copy and incremental checkpoints, and a second kernel for lazy migration)
 * booted from the cached image as `npm run lab:vm -- --image debian --hosts 2` boots them.
 * Then, round by round, a fresh holder of each size (bench/holder.ts: random bytes in every
 * page) moved a -> b by `criu-lab migrate` in each mode, interleaved (cold, page-server,
 * pre-copy, lazy, cold, ...), each downtime a ratio to cold's of the same round; lazy's
 * `resumeMs` (running there) beside its `completeMs` (the last page there); and the training
 * job's checkpoints on host a, full and incremental, the frozen time of each after the first.
 * Off unless asked: three guest boots under software emulation take about a quarter of an hour.
 */
import { RAN_MODES } from "../../contract/seats";
import { destroyLab, runLab } from "../../vm/lab";
import { parseVmArgs } from "../../vm/options";
import { onVm, PAIR, PID_LEAD, runPair, type PairRun } from "../../vm/pair";
import { releaseTarball } from "../../vm/tools";
import type { BenchContext, BenchResult } from "../figures";
import { killHolderScript, startHolder } from "../holder";
import { addParts, labRun } from "./migration";

const label = (size: number) => `VM ${size >= 1024 ? `${size / 1024} GiB` : `${size} MiB`}`;
/** Targets (docs/design.md "Measured here"): the savings the two modes exist for. */
const TARGETS: Record<string, { atMost: number; text: string }> = {
  "pre-copy downtime": { atMost: 0.3, text: "<= 0.3x cold" },
  "lazy resume": { atMost: 0.25, text: "<= 0.25x cold" },
};

export default async function vm(ctx: BenchContext): Promise<BenchResult[]> {
  if (!ctx.vm) {
    ctx.log("not run: --vm boots two Debian 13 guests (about a quarter of an hour under TCG)");
    return [];
  }
  const tarball = releaseTarball();
  if (typeof tarball === "string") throw new Error(`the VM case needs CRIU's source: ${tarball}`);
  const opts = parseVmArgs([
    "--image",
    "debian",
    "--name",
    `bench-${process.pid}`,
    "--criu-tarball",
    tarball.path,
    "--criu-sha256",
    tarball.sha256,
  ]);
  try {
    const first = await runLab(opts, ctx.log);
    if (!first.report.ok) {
      throw new Error(`the lab in the VM did not verify: ${first.report.error ?? "?"}`);
    }
    const pair = await runPair(opts, first, ctx.log);
    return [...(await migrations(ctx, pair)), ...(await training(ctx, pair))];
  } finally {
    ctx.log(await destroyLab(opts.cacheDir, opts.name));
  }
}

async function must(pair: PairRun, role: "a" | "b", script: string, what: string) {
  const r = await onVm(pair.hosts[role], script, 900);
  if (r.code !== 0) throw new Error(`${what} on ${role} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function migrations(ctx: BenchContext, pair: PairRun): Promise<BenchResult[]> {
  const modes = ctx.modes ?? RAN_MODES;
  const results: BenchResult[] = [];
  const figure = new Map<string, BenchResult>();
  for (const size of ctx.sizesMiB) {
    const add = (metric: string, series: string, baseline: boolean) => {
      const target = TARGETS[metric];
      const r: BenchResult = {
        case: label(size),
        metric,
        unit: "ms",
        values: [],
        ...(baseline ? { baseline: "cold downtime" } : {}),
        ...(target ? { target: { ...target, of: "ratio" as const } } : {}),
        plot: { panel: "migration", series: `VM ${series}`, x: size },
      };
      figure.set(`${size} ${metric}`, r);
      results.push(r);
    };
    for (const mode of modes) {
      add(mode === "lazy" ? "lazy resume" : `${mode} downtime`, mode, mode !== "cold");
      if (mode === "lazy") add("lazy complete", "lazy (last page)", true);
    }
  }
  const to = `${pair.hosts.b.user}@${PAIR.b.name}`;
  for (const size of ctx.sizesMiB) {
    for (let i = 1; i <= ctx.runs; i++) {
      for (const mode of modes) {
        const ready = `/run/criu-lab-bench-${mode}-${size}-${i}.ready`;
        const pid = Number(
          await must(
            pair,
            "a",
            `${PID_LEAD}; sudo sh -c '${startHolder(size, ready).replace(/'/g, `'\\''`)}'`,
            "a holder",
          ),
        );
        await must(
          pair,
          "a",
          `while [ ! -e ${ready} ]; do sleep 0.5; done; sudo rm ${ready}`,
          "filling it",
        );
        const ran = await onVm(
          pair.hosts.a,
          `sudo criu-lab migrate --pid ${pid} --to ${to} --mode ${mode} --json`,
          1800,
        );
        // Wherever it runs now (there, or back here after a failure): ended by PID, if a holder.
        for (const role of ["a", "b"] as const) {
          await onVm(pair.hosts[role], `sudo sh -c '${killHolderScript(pid)}'`, 60);
        }
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(ran.stdout) as Record<string, unknown>;
        } catch {
          throw new Error(`migrate printed no JSON (exit ${ran.code}): ${ran.stderr.trim()}`);
        }
        if (j.ok !== true)
          throw new Error(`migrate ${mode} ${size} MiB failed: ${String(j.error)}`);
        const got = labRun(j);
        // Lazy's stages add up to its resumeMs (its downtimeMs): they go with that figure.
        const r = figure.get(`${size} ${mode === "lazy" ? "lazy resume" : `${mode} downtime`}`)!;
        r.values.push(j.downtimeMs as number);
        addParts(r, got.parts);
        if (mode === "lazy") {
          figure.get(`${size} lazy complete`)!.values.push(j.completeMs as number);
        }
        ctx.log(`${label(size)} ${mode} #${i}: ${got.line}`);
      }
    }
  }
  return results;
}

async function training(ctx: BenchContext, pair: PairRun): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const size of ctx.sizesMiB) {
    const frozen: Record<string, BenchResult> = {};
    for (const mode of ["full", "incremental"]) {
      frozen[mode] = {
        case: `${label(size)} training`,
        metric: `frozen per checkpoint (${mode})`,
        unit: "ms",
        values: [],
        ...(mode === "incremental"
          ? {
              baseline: "frozen per checkpoint (full)",
              target: { atMost: 0.3, of: "ratio" as const, text: "<= 0.3x full" },
            }
          : {}),
        plot: { panel: "training", series: `VM ${mode}`, x: size },
      };
      results.push(frozen[mode]);
    }
    for (let i = 1; i <= ctx.runs; i++) {
      for (const mode of ["full", "incremental"]) {
        const out = await must(
          pair,
          "a",
          `sudo criu-lab scenario run training --${mode} --size-mib ${size} --count 3 --interval 5 --json`,
          `training (${mode})`,
        );
        const r = JSON.parse(out) as { frozenUs?: number[]; imageBytes?: number[] };
        // The first checkpoint of an incremental series is a full one: the later ones are the figure.
        const later = (r.frozenUs ?? []).slice(1).map((us) => us / 1000);
        frozen[mode].values.push(...later);
        ctx.log(
          `${label(size)} training ${mode} #${i}: frozen ${later.map((v) => v.toFixed(0)).join(", ")} ms, ` +
            `images ${(r.imageBytes ?? []).map((b) => (b / 2 ** 20).toFixed(1)).join(", ")} MiB`,
        );
      }
    }
  }
  return results;
}
