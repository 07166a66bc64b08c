/**
 * Migration downtime per mode and process size, between two network-namespace hosts
 * (netlab/netns.ts) on this kernel: the lab's `criu-lab migrate` and the same migration by hand
 * (bench/hand.ts), interleaved round by round, each over its own fresh holder
 * (bench/holder.ts). The lab runs with its images in RAM on both ends and on disk (--images),
 * one after the other in each round: each host has its own tmpfs at CRIU_LAB_RAM_DIR
 * (netlab/tmpfs.ts; the namespace hosts share /dev/shm, where the placement rule rightly puts
 * the images on disk) and its own disk directory for the run's images. Each lab downtime is
 * printed with where its images were, as a ratio to its hand floor, to the lab's cold with
 * images in the same place, and (in RAM) to the same mode on disk; each run's stages (freeze, transfer, restore) and CRIU's own timings beside it, with
 * whether the stages add up to the downtime. Targets (savings over cold): page-server at most
 * 0.8x cold at 1 GiB; pre-copy at most 0.3x cold where dirty tracking works. lazy needs a
 * second kernel, so it is not measurable here.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createLabPair, type LabPair } from "../../netlab/netns";
import { ownTmpfs } from "../../netlab/tmpfs";
import { run, waitFor } from "../../netlab/run";
import { RAN_MODES } from "../../contract/seats";
import {
  GAP,
  numbers,
  stagesAddUp,
  type BenchContext,
  type BenchResult,
  type StagesCheck,
} from "../figures";
import { coldByHand, pageServerByHand, readMarks, type Peer } from "../hand";
import { killHolder, startHolder } from "../holder";

const LAB = path.join(__dirname, "..", "..", "host", "criu-lab");
// By default every mode but lazy, which needs a second kernel (the source keeps the PID).
const MODES: string[] = RAN_MODES.filter((m) => m !== "lazy");
/** The hand procedures this bench has; a mode without one has no floor. */
const BY_HAND: Record<string, boolean> = { cold: true, "page-server": true };
/** The lab's stages inside its downtime (migrate's JSON), in the order they happen; forward
 * and daemon are lazy's (host/criu_lab/lazy.py STAGES), the others leave them out. */
export const STAGES = [
  "freezeMs",
  "manifestMs",
  "reapMs",
  "checkMs",
  "forwardMs",
  "transferMs",
  "daemonMs",
  "restoreMs",
] as const;
/** CRIU's own account (migrate's `criu`), µs and pages, shown where present. */
const CRIU_DUMP = [
  "freezingTimeUs",
  "frozenTimeUs",
  "memdumpTimeUs",
  "memwriteTimeUs",
  "pagesWritten",
  "pagesSkippedParent",
  "pagesLazy",
] as const;
const CRIU_RESTORE = ["forkingTimeUs", "restoreTimeUs", "pagesRestored"] as const;

/** How each place is named in a metric, and what migrate's `imagesIn` says for it. */
const PLACE = { ram: "RAM", disk: "disk" } as const;
type Place = keyof typeof PLACE;

const label = (size: number) => `migration ${size >= 1024 ? `${size / 1024} GiB` : `${size} MiB`}`;

export default async function migration(ctx: BenchContext): Promise<BenchResult[]> {
  const sizes = ctx.sizesMiB;
  const modes = ctx.modes ?? MODES;
  const places: Place[] = ctx.images ?? ["ram", "disk"];
  const metric = (mode: string, place: Place) => `${mode} downtime (${PLACE[place]})`;
  const results: BenchResult[] = [];
  const lab = new Map<string, BenchResult>();
  const hand = new Map<string, BenchResult>();
  for (const size of sizes) {
    for (const mode of modes) {
      const plot = { panel: "migration" as const, series: mode, x: size };
      for (const place of places) {
        const r: BenchResult = {
          case: label(size),
          metric: metric(mode, place),
          unit: "ms",
          values: [],
          ...(BY_HAND[mode] ? { floor: `${mode} downtime by hand` } : {}),
          ...(mode === "cold" ? {} : { baseline: metric("cold", place) }),
          ...(place === "ram" && places.includes("disk") ? { versus: metric(mode, "disk") } : {}),
          plot: { ...plot, series: `${mode} (${PLACE[place]})` },
        };
        if (mode === "page-server" && size >= 1024) {
          r.target = { atMost: 0.8, of: "ratio", text: "<= 0.8x cold" };
        }
        if (mode === "pre-copy") r.target = { atMost: 0.3, of: "ratio", text: "<= 0.3x cold" };
        lab.set(`${size} ${mode} ${place}`, r);
        results.push(r);
      }
      if (BY_HAND[mode]) {
        const h: BenchResult = {
          case: label(size),
          metric: `${mode} downtime by hand`,
          unit: "ms",
          values: [],
          ...(mode === "cold" ? {} : { baseline: "cold downtime by hand" }),
          plot: { ...plot, series: `${mode} by hand`, hand: true },
        };
        hand.set(`${size} ${mode}`, h);
        results.push(h);
      }
    }
  }
  if (process.getuid?.() !== 0) {
    results.forEach((r) => (r.note = "needs root"));
    return results;
  }
  const tracks = run("/usr/local/sbin/criu", ["check", "--feature", "mem_dirty_track"]).code === 0;
  const measurable = (mode: string) => {
    if (mode === "pre-copy" && !tracks) return "no dirty tracking on this kernel";
    if (mode === "lazy") return "needs a second kernel (the source keeps the PID)";
    return undefined;
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "criu-lab-bench-"));
  // The hand procedure's images: in RAM on both hosts (the destination sees its own tmpfs here).
  const shm = fs.mkdtempSync("/dev/shm/criu-lab-bench-");
  const work = path.join(dir, "work");
  fs.mkdirSync(work, { mode: 0o755 });
  // The lab's run directories (its images on disk): work/logs, on the destination a directory
  // of this machine's disk bound there (work is an empty tmpfs there: hidden, and RAM).
  const logs = path.join(work, "logs");
  fs.mkdirSync(logs);
  const dstLogs = path.join(dir, "dst-logs");
  fs.mkdirSync(dstLogs);
  // CRIU_LAB_RAM_DIR: each host's own tmpfs, room for the largest size's images and more.
  const ram = path.join(work, "ram");
  let unmountRam = () => {};
  let pair: LabPair | undefined;
  const pids: number[] = [];
  let port = 27000;
  try {
    pair = await createLabPair({ dir, hide: [work, shm], replace: quietShell(dir) });
    const p = pair;
    const bound = p.destination.ssh(`mkdir -p ${logs} && mount --bind ${dstLogs} ${logs}`);
    if (bound.code !== 0) throw new Error(`binding ${dstLogs} at ${logs} there: ${bound.stderr}`);
    unmountRam = ownTmpfs(
      [(s) => p.source.ssh(s), (s) => p.destination.ssh(s)],
      ram,
      `${Math.max(...sizes) * 2 + 128}m`,
    );
    const peer: Peer = {
      address: p.destination.address,
      identity: p.key.path,
      knownHosts: p.knownHosts,
      control: path.join(dir, "ctl"),
    };
    // A fresh holder of SIZE MiB on the source, its memory written; its PID.
    const holder = async (size: number, name: string) => {
      const ready = path.join(work, `${name}.ready`);
      const pid = Number(p.source.ssh(startHolder(size, ready)).stdout.trim());
      pids.push(pid);
      await waitFor(
        `${size} MiB written`,
        () => (fs.existsSync(ready) ? true : undefined),
        300_000,
      );
      return pid;
    };
    for (const size of sizes) {
      for (let i = 1; i <= ctx.runs; i++) {
        for (const mode of modes) {
          const why = measurable(mode);
          if (why) {
            places.forEach((place) => (lab.get(`${size} ${mode} ${place}`)!.note = why));
            continue;
          }
          const name = `${mode}-${size}-${i}`;
          // The lab: criu-lab migrate, its images in RAM, then on disk (a RAM budget of 0).
          for (const place of places) {
            const r = lab.get(`${size} ${mode} ${place}`)!;
            const run = `${name}-${place}`;
            const pid = await holder(size, run);
            const ran = p.source.ssh(
              `CRIU_LAB_RAM_DIR=${ram} CRIU_LAB_LOG_DIR=${logs}/${run} ${LAB} migrate ` +
                `--to root@${p.destination.address} --identity ${p.key.path} ` +
                `--known-hosts ${p.knownHosts} --pid ${pid} --mode ${mode} ` +
                `${place === "disk" ? "--ram-budget-mib 0 " : ""}--json`,
            );
            let j: Record<string, unknown>;
            try {
              j = JSON.parse(ran.stdout) as Record<string, unknown>;
            } catch {
              throw new Error(`migrate printed no JSON (exit ${ran.code}): ${ran.stderr}`);
            }
            if (j.ok !== true)
              throw new Error(`migrate ${mode} ${size} MiB failed: ${String(j.error)}`);
            killHolder(pid);
            // A figure measured elsewhere than asked would be filed under the wrong place.
            const where = (j.imagesIn ?? {}) as Record<string, unknown>;
            if (where.here !== place || where.there !== place) {
              throw new Error(
                `migrate ${mode} ${size} MiB: images here in ${String(where.here)}, there in ` +
                  `${String(where.there)}, not both in ${place} as asked (${String(where.why)})`,
              );
            }
            const got = labRun(j);
            r.values.push(j.downtimeMs as number);
            addParts(r, got.parts);
            ctx.log(
              `${label(size)} ${mode} #${i}, images ${place === "ram" ? "in RAM" : "on disk"} on both ends: ${got.line}`,
            );
            p.destination.ssh(`rm -rf ${logs}/${run}`);
            fs.rmSync(path.join(logs, run), { recursive: true, force: true });
          }
          // The same by hand, right after.
          const h = hand.get(`${size} ${mode}`);
          if (h) {
            const hpid = await holder(size, `${name}-hand`);
            const images = handImages(shm, name);
            const script =
              mode === "cold"
                ? coldByHand(peer, hpid, images)
                : pageServerByHand(peer, hpid, images, port++);
            const done = p.source.ssh(script);
            killHolder(hpid);
            if (done.code !== 0) {
              throw new Error(`${mode} by hand, ${size} MiB, exited ${done.code}: ${done.stderr}`);
            }
            const marks = readMarks(done.stdout);
            h.values.push(marks.total);
            // The hand's steps under the lab's stage names, side by side in the breakdown.
            addParts(h, {
              freeze: marks.steps.dumped,
              transfer: marks.steps.copied,
              restore: marks.steps.restored,
            });
            const steps = Object.entries(marks.steps).map(([k, v]) => `${k} ${v.toFixed(0)}`);
            ctx.log(
              `${label(size)} ${mode} by hand #${i}: downtime ${marks.total.toFixed(0)} ms (${steps.join(", ")})`,
            );
          }
          // Both hosts' copies of the hand's images go: the destination's live in its own tmpfs.
          p.destination.ssh(`rm -rf ${handImages(shm, name)}`);
          fs.rmSync(handImages(shm, name), { recursive: true, force: true });
        }
      }
    }
  } finally {
    pids.forEach(killHolder);
    unmountRam();
    await pair?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(shm, { recursive: true, force: true });
  }
  return results;
}

/**
 * Root's ~/.bashrc, which bash reads for every SSH command, replaced by an empty file for both
 * hosts' sshds: a machine's own start-up files (this one's run `pyenv init`, about 2-3 s per
 * command under load) are no part of a migration, and every SSH command of the lab's and the
 * hand's would pay them inside the downtime. The machine's file itself is left alone.
 */
function quietShell(dir: string): Array<{ file: string; target: string }> {
  const bashrc = path.join(os.homedir(), ".bashrc");
  if (!fs.existsSync(bashrc)) return [];
  const empty = path.join(dir, "empty-bashrc");
  fs.writeFileSync(empty, "");
  return [{ file: empty, target: bashrc }];
}

const handImages = (shm: string, name: string) => path.join(shm, name);

/** Adds one round's figures to R's parts. */
export function addParts(r: BenchResult, figures: Record<string, number>): void {
  r.parts ??= {};
  for (const [k, v] of Object.entries(figures)) (r.parts[k] ??= []).push(v);
}

/** A run's downtime (lazy's: resumeMs), its stages by name and whether they add up to it. */
export function labStages(j: Record<string, unknown>): {
  downtime: number;
  stages: Record<string, number>;
  check: StagesCheck;
} {
  const downtime = typeof j.downtimeMs === "number" ? j.downtimeMs : NaN;
  const stages = numbers(j, STAGES);
  return { downtime, stages, check: stagesAddUp(downtime, stages) };
}

/** One lab run, read by name: its stages, CRIU's own account (ms and pages) and the gap
 * between its downtime and its stages (bench/figures.ts GAP), and the line the bench logs. */
export function labRun(j: Record<string, unknown>): {
  parts: Record<string, number>;
  line: string;
} {
  const { downtime, stages, check } = labStages(j);
  const criu = (j.criu ?? {}) as Record<string, unknown>;
  const own: Record<string, number> = {};
  for (const [k, v] of Object.entries({
    ...numbers(criu.dump, CRIU_DUMP),
    ...numbers(criu.restore, CRIU_RESTORE),
  })) {
    if (k.endsWith("TimeUs")) own[`CRIU ${k.replace(/TimeUs$/, "")}`] = v / 1000;
    else own[`pages ${k.replace(/^pages/, "").toLowerCase()}`] = v;
  }
  const parts: Record<string, number> = {};
  for (const [k, v] of Object.entries(stages)) parts[k.replace(/Ms$/, "")] = v;
  Object.assign(parts, own, { [GAP]: check.gapPercent });
  const line =
    `downtime ${downtime} ms = ${Object.entries(stages)
      .map(([k, v]) => `${k.replace(/Ms$/, "")} ${v}`)
      .join(" + ")} + gap ${check.gap.toFixed(1)} ms (${check.gapPercent.toFixed(1)} %): ` +
    (check.ok ? "stages add up within 5 %" : "STAGES DO NOT ADD UP within 5 %") +
    `\n    CRIU's own: ${
      Object.entries(own)
        .map(([k, v]) => (k.startsWith("CRIU") ? `${k} ${v.toFixed(1)} ms` : `${k} ${v}`))
        .join(", ") || "none in the JSON"
    }`;
  return { parts, line };
}
