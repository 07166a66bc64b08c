/**
 * `npm run bench`: the lab's figures, measured. Loads every bench/cases/*.ts, runs each,
 * prints the machine and a table of medians with their spread, each figure's ratio to the same
 * work done by hand (its floor, bench/hand.ts) and to its baseline, each case's target beside
 * them, and where the time went (the lab's stages, CRIU's own timings, whether they add up);
 * writes JSON and an SVG chart (bench/chart.ts) beside it. A benchmark reports; it never fails
 * on a figure (speed lives here, not in tests: docs/design.md "Style").
 *
 *   npm run bench -- [--runs N] [--sizes 64,256] [--large] [--modes cold,page-server]
 *                    [--images ram,disk] [--only NAME] [--vm] [--out FILE]
 *
 * --vm adds the VM case (bench/cases/vm.ts): two Debian 13 guests, where pre-copy, lazy and
 * incremental checkpoints can run; `--only vm --vm` runs it alone.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chartSvg, panelsFrom } from "./chart";
import { breakdown, summarize, table, type BenchContext, type BenchResult } from "./figures";

export type BenchCase = (ctx: BenchContext) => Promise<BenchResult[]>;

const USAGE =
  "usage: npm run bench -- [--runs N] [--sizes MiB,MiB] [--large] [--modes m,m] [--images ram,disk] [--only NAME] [--vm] [--out FILE]";
/** criu-lab migrate's modes (the migration case). */
const MODES = ["cold", "page-server", "pre-copy", "lazy"];
/** Where a migration's images sit while the process is down (the migration case). */
const PLACES = ["ram", "disk"] as const;
/** Short enough for a shared 2-core machine; --large adds 1 GiB. */
const SIZES = [64, 256];

export function parseArgs(argv: string[]) {
  let large = false;
  const opts = {
    vm: false,
    runs: 3,
    sizesMiB: SIZES,
    modes: undefined as string[] | undefined,
    images: [...PLACES] as Array<(typeof PLACES)[number]>,
    only: undefined as string | undefined,
    out: path.join(__dirname, "..", ".cache", "bench", "bench.json"),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (flag === "--large" || flag === "--vm") {
      if (flag === "--large") large = true;
      else opts.vm = true;
      i -= 1;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag}: a value is missing\n${USAGE}`);
    if (flag === "--runs") {
      if (!/^[1-9]\d*$/.test(value))
        throw new Error(`--runs ${value}: expected a whole number >= 1`);
      opts.runs = Number(value);
    } else if (flag === "--sizes") {
      if (!/^[1-9]\d*(,[1-9]\d*)*$/.test(value)) {
        throw new Error(`--sizes ${value}: expected MiB, comma-separated (e.g. 64,256)`);
      }
      opts.sizesMiB = value.split(",").map(Number);
    } else if (flag === "--modes") {
      const bad = value.split(",").filter((m) => !MODES.includes(m));
      if (bad.length > 0) {
        throw new Error(`--modes ${value}: '${bad[0]}' is not one of ${MODES.join(", ")}`);
      }
      opts.modes = value.split(",");
    } else if (flag === "--images") {
      const places = value.split(",");
      const bad = places.find((p) => !(PLACES as readonly string[]).includes(p));
      if (bad !== undefined || new Set(places).size !== places.length) {
        throw new Error(
          `--images ${value}: ${bad === undefined ? "a place twice" : `'${bad}' is not one of ${PLACES.join(", ")}`}` +
            " (comma-separated, e.g. ram,disk)",
        );
      }
      opts.images = places as typeof opts.images;
    } else if (flag === "--only") {
      opts.only = value;
    } else if (flag === "--out") {
      opts.out = path.resolve(value);
    } else {
      throw new Error(`unknown flag '${flag}'\n${USAGE}`);
    }
  }
  opts.sizesMiB = [...new Set([...opts.sizesMiB, ...(large ? [1024] : [])])].sort((a, b) => a - b);
  return opts;
}

function criuVersion(): string {
  try {
    const out = execFileSync("/usr/local/sbin/criu", ["--version"], { encoding: "utf8" });
    return /^Version:\s*(\S+)/m.exec(out)?.[1] ?? "unknown";
  } catch {
    return "not installed";
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const machine = {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    criuVersion: criuVersion(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 10) / 10),
  };
  console.log(
    `machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB memory, load ${machine.loadAverage.join(" ")}`,
  );
  console.log(
    `kernel ${machine.kernel}, CRIU ${machine.criuVersion}, ${opts.runs} run(s) per figure`,
  );
  const dir = path.join(__dirname, "cases");
  const names = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".ts") && (!opts.only || f.replace(/\.ts$/, "") === opts.only))
    .sort();
  if (names.length === 0) throw new Error(`no bench case matches --only ${opts.only}`);
  const results: BenchResult[] = [];
  const ctx: BenchContext = {
    runs: opts.runs,
    log: (s) => console.log(`  ${s}`),
    sizesMiB: opts.sizesMiB,
    modes: opts.modes,
    images: opts.images,
    vm: opts.vm,
  };
  for (const name of names) {
    console.log(`case ${name}`);
    const run = (await import(path.join(dir, name))).default as BenchCase;
    results.push(...(await run(ctx)));
  }
  const rows = summarize(results);
  const loadAfter = os.loadavg().map((l) => Math.round(l * 10) / 10);
  console.log(`\n${table(rows)}`);
  const parts = breakdown(rows);
  if (parts) console.log(`\nwhere the time went (ms unless named; median (min-max))\n${parts}`);
  console.log(`\nload ${machine.loadAverage.join(" ")} before, ${loadAfter.join(" ")} after`);
  if (opts.runs < 3)
    console.log(`note: ${opts.runs} round(s): a median of fewer than 3 says little`);
  const date = new Date().toISOString();
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(
    opts.out,
    `${JSON.stringify({ date, machine: { ...machine, loadAfter }, runs: opts.runs, rows }, null, 2)}\n`,
  );
  const svg = opts.out.replace(/(\.json)?$/, ".svg");
  const caption = [
    `${date.slice(0, 10)}: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, kernel ${machine.kernel}, ` +
      `CRIU ${machine.criuVersion}; load ${machine.loadAverage.join(" ")} before, ${loadAfter.join(" ")} after`,
    `median of ${opts.runs} round(s), bars min-max; dashed: the same work by hand (bench/hand.ts); dotted: the lab with its images on disk`,
  ];
  fs.writeFileSync(svg, chartSvg(panelsFrom(rows), caption));
  console.log(`\nwritten to ${opts.out} and ${svg}`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2); // bad usage or a case that could not run; never a figure
  });
}
