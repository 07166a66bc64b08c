/**
 * `npm run bench`: the lab's figures, measured. Loads every
 * bench/cases/*.ts, runs each, prints the machine and a table of medians with their spread,
 * ratios to a baseline and each case's target beside them, and writes JSON. A benchmark
 * reports; it never fails on a figure (speed lives here, not in tests: docs/design.md "Style").
 *
 *   npm run bench -- [--runs N] [--sizes 256,1024] [--modes cold,page-server] [--only NAME]
 *                    [--out FILE]
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface BenchContext {
  /** How many times each figure is measured. */
  runs: number;
  log: (s: string) => void;
  /** Process sizes in MiB, for cases that take them (--sizes). */
  sizesMiB?: number[];
  /** Modes, for cases that take them (--modes). */
  modes?: string[];
}

export interface BenchResult {
  case: string;
  metric: string;
  unit: string;
  values: number[];
  /** Another metric of the same case whose median this one is divided by (e.g. cold). */
  baseline?: string;
  /** The case's target: the ratio to the baseline (or the value) at most this. */
  target?: { atMost: number; of: "ratio" | "value"; text: string };
  /** Why there are no values (e.g. "no dirty tracking on this kernel"). */
  note?: string;
}

export type BenchCase = (ctx: BenchContext) => Promise<BenchResult[]>;

const USAGE =
  "usage: npm run bench -- [--runs N] [--sizes MiB,MiB] [--modes m,m] [--only NAME] [--out FILE]";

function parseArgs(argv: string[]) {
  const opts = {
    runs: 3,
    sizesMiB: undefined as number[] | undefined,
    modes: undefined as string[] | undefined,
    only: undefined as string | undefined,
    out: path.join(__dirname, "..", ".cache", "bench", "bench.json"),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: a value is missing\n${USAGE}`);
    if (flag === "--runs") {
      if (!/^[1-9]\d*$/.test(value))
        throw new Error(`--runs ${value}: expected a whole number >= 1`);
      opts.runs = Number(value);
    } else if (flag === "--sizes") {
      if (!/^[1-9]\d*(,[1-9]\d*)*$/.test(value)) {
        throw new Error(`--sizes ${value}: expected MiB, comma-separated (e.g. 256,1024)`);
      }
      opts.sizesMiB = value.split(",").map(Number);
    } else if (flag === "--modes") {
      opts.modes = value.split(",");
    } else if (flag === "--only") {
      opts.only = value;
    } else if (flag === "--out") {
      opts.out = path.resolve(value);
    } else {
      throw new Error(`unknown flag '${flag}'\n${USAGE}`);
    }
  }
  return opts;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface Row extends BenchResult {
  median?: number;
  min?: number;
  max?: number;
  ratio?: number;
  status: "met" | "not met" | "not measurable here" | "";
}

/** Medians, spreads, ratios to the baseline and the target's status, per result. */
export function summarize(results: BenchResult[]): Row[] {
  const medians = new Map(
    results
      .filter((r) => r.values.length > 0)
      .map((r) => [`${r.case}\0${r.metric}`, median(r.values)]),
  );
  return results.map((r) => {
    const row: Row = { ...r, status: "" };
    if (r.values.length > 0) {
      row.median = median(r.values);
      row.min = Math.min(...r.values);
      row.max = Math.max(...r.values);
      const base = r.baseline && medians.get(`${r.case}\0${r.baseline}`);
      if (base) row.ratio = row.median / base;
    }
    if (r.target) {
      const figure = r.target.of === "ratio" ? row.ratio : row.median;
      row.status =
        figure === undefined
          ? "not measurable here"
          : figure <= r.target.atMost
            ? "met"
            : "not met";
    }
    return row;
  });
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? "-" : n.toFixed(digits));

export function table(rows: Row[]): string {
  const header = ["case", "metric", "median", "spread (min-max)", "n", "ratio", "target", "status"];
  const lines = rows.map((r) => [
    r.case,
    r.metric,
    r.median === undefined ? "-" : `${fmt(r.median)} ${r.unit}`,
    r.min === undefined ? (r.note ?? "-") : `${fmt(r.min)}-${fmt(r.max)}`,
    String(r.values.length),
    r.ratio === undefined ? "-" : `${fmt(r.ratio, 2)}x ${r.baseline}`,
    r.target?.text ?? "",
    r.status,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const show = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [show(header), show(widths.map((w) => "-".repeat(w))), ...lines.map(show)].join("\n");
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
  };
  for (const name of names) {
    console.log(`case ${name}`);
    const run = (await import(path.join(dir, name))).default as BenchCase;
    results.push(...(await run(ctx)));
  }
  const rows = summarize(results);
  console.log(`\n${table(rows)}`);
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(
    opts.out,
    `${JSON.stringify({ date: new Date().toISOString(), machine, runs: opts.runs, rows }, null, 2)}\n`,
  );
  console.log(`\nwritten to ${opts.out}`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2); // bad usage or a case that could not run; never a figure
  });
}
