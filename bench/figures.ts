/**
 * The bench's pure arithmetic: what a case measured (BenchResult), its median and spread,
 * its ratio to the same work done by hand (the floor) and to another of its figures (cold),
 * and whether a run's stages add up to its downtime. No I/O: tests/unit/bench-figures.test.ts.
 *
 * A figure and its floor are measured interleaved in one run (lab, hand, lab, hand...), round
 * by round, so round i of one is divided by round i of the other: the ratio's spread is the
 * min-max of those per-round ratios, and a load spike that slows both rounds of a pair cancels
 * out (docs/design.md "Measured here").
 */

export interface BenchContext {
  /** Rounds per figure (--runs). */
  runs: number;
  log: (s: string) => void;
  /** Process sizes in MiB (--sizes). */
  sizesMiB: number[];
  /** Migration modes (--modes). */
  modes?: string[];
  /** The VM case asked for (--vm): it boots Debian 13 guests. */
  vm?: boolean;
  /** Where a migration's images sit while the process is down (--images): each measured. */
  images?: Array<"ram" | "disk">;
}

/** Where a figure goes in the chart (bench/chart.ts): a panel, a series, a point at x. */
export interface Plot {
  panel: "migration" | "training";
  series: string;
  x: number;
  /** The same work done by hand (drawn dashed). */
  hand?: boolean;
}

export interface BenchResult {
  case: string;
  metric: string;
  unit: string;
  /** One figure per round (or per checkpoint, rounds in order). */
  values: number[];
  /** The metric of the same case that measured this work by hand, interleaved: the floor. */
  floor?: string;
  /** Another metric of the same case this one is compared with (e.g. cold downtime). */
  baseline?: string;
  /** A third metric of the same case this one is set against, round by round (e.g. the
   * same mode with its images on disk against this one's in RAM). */
  versus?: string;
  /** The case's target: the ratio to the baseline (or the value) at most this. */
  target?: { atMost: number; of: "ratio" | "value"; text: string };
  /** Why there are no values (e.g. "no dirty tracking on this kernel"). */
  note?: string;
  plot?: Plot;
  /** Where each round's time went (a stage, CRIU's own timing, "gap %"): one figure per round. */
  parts?: Record<string, number[]>;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export interface Ratio extends Spread {
  /** true: round i over round i (same count of figures); false: median over median, and
   * the spread the widest the figures allow (min over max, max over min). */
  paired: boolean;
}

/** VALUES over BASE: per round when both have one figure per round, else medians. */
export function ratio(values: number[], base: number[]): Ratio | undefined {
  if (values.length === 0 || base.length === 0 || base.some((b) => !(b > 0))) return undefined;
  if (values.length === base.length) {
    const per = values.map((v, i) => v / base[i]);
    return { ...spread(per)!, paired: true };
  }
  return {
    median: median(values) / median(base),
    min: Math.min(...values) / Math.max(...base),
    max: Math.max(...values) / Math.min(...base),
    paired: false,
  };
}

export interface Row extends BenchResult {
  stat?: Spread;
  /** Over the hand floor. */
  overFloor?: Ratio;
  /** Over the baseline. */
  overBaseline?: Ratio;
  /** Over the metric it is set against (versus). */
  overVersus?: Ratio;
  status: "met" | "not met" | "not measurable here" | "";
}

/** Medians, spreads, ratios to the floor and the baseline, and the target's status. */
export function summarize(results: BenchResult[]): Row[] {
  const byName = new Map(results.map((r) => [`${r.case}\0${r.metric}`, r.values]));
  const of = (r: BenchResult, name: string | undefined) =>
    name === undefined ? undefined : ratio(r.values, byName.get(`${r.case}\0${name}`) ?? []);
  return results.map((r) => {
    const row: Row = { ...r, status: "" };
    row.stat = spread(r.values);
    row.overFloor = of(r, r.floor);
    row.overBaseline = of(r, r.baseline);
    row.overVersus = of(r, r.versus);
    if (r.target) {
      const figure = r.target.of === "ratio" ? row.overBaseline?.median : row.stat?.median;
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

export interface StagesCheck {
  sum: number;
  /** Downtime minus the stages' sum: time in none of them. */
  gap: number;
  /** The gap as a percentage of the downtime. */
  gapPercent: number;
  /** The stages add up to the downtime within the tolerance. */
  ok: boolean;
}

/** Do STAGES (ms, each inside the downtime) add up to DOWNTIME within TOLERANCE (0.05 = 5 %)? */
export function stagesAddUp(
  downtime: number,
  stages: Record<string, number>,
  tolerance = 0.05,
): StagesCheck {
  const sum = Object.values(stages).reduce((a, b) => a + b, 0);
  const gap = downtime - sum;
  const gapPercent = downtime > 0 ? (gap / downtime) * 100 : NaN;
  return { sum, gap, gapPercent, ok: downtime > 0 && Math.abs(gap) <= tolerance * downtime };
}

/** The numbers among OBJ's KEYS, by name: a field missing or of another type is left out
 * (the host command's JSON grows and changes while the bench reads it). */
export function numbers(obj: unknown, keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof obj !== "object" || obj === null) return out;
  for (const k of keys) {
    const v = (obj as Record<string, unknown>)[k];
    if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
  }
  return out;
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? "-" : n.toFixed(digits));

function ratioText(r: Ratio | undefined): string {
  if (!r) return "-";
  return `${fmt(r.median, 2)}x (${fmt(r.min, 2)}-${fmt(r.max, 2)}${r.paired ? "" : ", unpaired"})`;
}

/** A Markdown table: one row per figure. */
export function table(rows: Row[]): string {
  const header = [
    "case",
    "metric",
    "median",
    "spread (min-max)",
    "n",
    "x hand floor (min-max)",
    "x baseline (min-max)",
    "x versus (min-max)",
    "target",
    "status",
  ];
  const lines = rows.map((r) => [
    r.case,
    r.metric,
    r.stat ? `${fmt(r.stat.median)} ${r.unit}` : "-",
    r.stat ? `${fmt(r.stat.min)}-${fmt(r.stat.max)}` : (r.note ?? "-"),
    String(r.values.length),
    ratioText(r.overFloor),
    r.overBaseline ? `${ratioText(r.overBaseline)} ${r.baseline}` : "-",
    r.overVersus ? `${ratioText(r.overVersus)} ${r.versus}` : "-",
    r.target?.text ?? "",
    r.status,
  ]);
  return markdown(header, lines);
}

/** Where the time went: one line per figure with parts, a column per part (medians and
 * spreads), then the verdict on the gaps: every run's stages within 5 % of its downtime. */
export function breakdown(rows: Row[]): string {
  const withParts = rows.filter((r) => r.parts && r.values.length > 0);
  if (withParts.length === 0) return "";
  const columns = [...new Set(withParts.flatMap((r) => Object.keys(r.parts!)))];
  const lines = withParts.map((r) => [
    r.case,
    r.metric,
    ...columns.map((c) => {
      const s = spread(r.parts![c] ?? []);
      return s
        ? `${fmt(s.median, c.startsWith("pages") ? 0 : 1)} (${fmt(s.min)}-${fmt(s.max)})`
        : "-";
    }),
  ]);
  const gaps = withParts.flatMap((r) => r.parts![GAP] ?? []);
  const off = gaps.filter((g) => !(Math.abs(g) <= 5));
  const verdict =
    gaps.length === 0
      ? ""
      : off.length === 0
        ? `\nstages add up: all ${gaps.length} runs' stages within 5 % of their downtime`
        : `\nSTAGES DO NOT ADD UP in ${off.length} of ${gaps.length} runs: gaps ${off.map((g) => `${fmt(g, 1)} %`).join(", ")} of the downtime (over 5 %)`;
  return markdown(["case", "metric", ...columns], lines) + verdict;
}

/** The part holding each run's gap (downtime minus its stages) in % of the downtime. */
export const GAP = "gap %";

export function markdown(header: string[], lines: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const show = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [show(header), show(widths.map((w) => "-".repeat(w))), ...lines.map(show)].join("\n");
}
