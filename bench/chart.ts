/**
 * The bench's picture: a hand-written SVG (no dependency) beside its JSON. One panel per kind
 * of figure: migration downtime per mode against process size, and frozen time per training
 * checkpoint (full, incremental where measured) against process size; the same work by hand
 * (the floor) dashed in its mode's colour, a migration with its images on disk ("MODE (disk)")
 * dotted in it, with them in RAM ("MODE (RAM)") solid. Each point is a median with its min-max as a bar.
 * Pure: tests/unit/bench-chart.test.ts.
 */
import type { Row } from "./figures";

export interface Point {
  x: number;
  y: number;
  lo: number;
  hi: number;
}

export interface Series {
  name: string;
  points: Point[];
  /** The hand floor: drawn dashed. */
  dashed: boolean;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

const PANELS = {
  migration: {
    title: "Migration downtime",
    xLabel: "process size (MiB, log scale)",
    yLabel: "downtime (ms)",
  },
  training: {
    title: "Training checkpoint: time frozen",
    xLabel: "process size (MiB, log scale)",
    yLabel: "frozen per checkpoint (ms)",
  },
} as const;

/** The chart's panels from the bench's rows: a series per plotted series name, in row order. */
export function panelsFrom(rows: Row[]): Panel[] {
  const panels: Panel[] = [];
  for (const [key, text] of Object.entries(PANELS)) {
    const series = new Map<string, Series>();
    for (const r of rows) {
      if (r.plot?.panel !== key || !r.stat) continue;
      const s = series.get(r.plot.series) ?? {
        name: r.plot.series,
        points: [],
        dashed: r.plot.hand === true,
      };
      s.points.push({ x: r.plot.x, y: r.stat.median, lo: r.stat.min, hi: r.stat.max });
      series.set(r.plot.series, s);
    }
    if (series.size > 0) {
      panels.push({ ...text, series: [...series.values()].map(sortByX) });
    }
  }
  return panels;
}

const sortByX = (s: Series): Series => ({ ...s, points: [...s.points].sort((a, b) => a.x - b.x) });

/** Maps [d0, d1] onto [r0, r1] linearly; a one-point domain maps to the range's middle. */
export function linear(domain: [number, number], range: [number, number]): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  if (d1 === d0) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

/** Process sizes double: log2, so 64, 256 and 1024 MiB stand evenly apart. */
export function log2(domain: [number, number], range: [number, number]): (v: number) => number {
  const scale = linear([Math.log2(domain[0]), Math.log2(domain[1])], range);
  return (v) => scale(Math.log2(v));
}

/** Round tick values from 0 to at least MAX: about five of 1, 2 or 5 times a power of ten. */
export function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const out: number[] = [];
  for (let v = 0; v < max + step; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/** Escapes text for XML content and attribute values. */
export function esc(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

const W = 460;
const H = 320;
const M = { left: 64, right: 16, top: 36, bottom: 52 };
const LEGEND = 22;

/** A series's mode: "cold by hand", "cold (RAM)" and "cold (disk)" are all "cold". */
const modeOf = (name: string) => name.replace(/ by hand$| \((RAM|disk)\)$/, "");

/** The colour of a series: its mode's, the hand floor's and both image places' alike. */
function colourOf(panel: Panel, name: string): string {
  const modes = [...new Set(panel.series.map((s) => modeOf(s.name)))];
  return COLOURS[modes.indexOf(modeOf(name)) % COLOURS.length];
}

function drawPanel(panel: Panel, left: number, top: number): string {
  const xs = panel.series.flatMap((s) => s.points.map((p) => p.x));
  const yMax = Math.max(...panel.series.flatMap((s) => s.points.map((p) => p.hi)), 0);
  const yTicks = ticks(yMax);
  const xAt = log2(
    [Math.min(...xs), Math.max(...xs)],
    [left + M.left + 20, left + W - M.right - 20],
  );
  const y = linear([0, yTicks[yTicks.length - 1]], [top + H - M.bottom, top + M.top]);
  const x0 = left + M.left;
  const x1 = left + W - M.right;
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [`<g class="panel">`];
  out.push(
    `<text class="title" x="${f(left + W / 2)}" y="${f(top + 20)}" text-anchor="middle">${esc(panel.title)}</text>`,
  );
  for (const t of yTicks) {
    out.push(
      `<line class="grid" x1="${f(x0)}" x2="${f(x1)}" y1="${f(y(t))}" y2="${f(y(t))}"/>`,
      `<text x="${f(x0 - 6)}" y="${f(y(t) + 4)}" text-anchor="end">${t}</text>`,
    );
  }
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(
      `<text x="${f(xAt(v))}" y="${f(top + H - M.bottom + 16)}" text-anchor="middle">${v}</text>`,
    );
  }
  out.push(
    `<line class="axis" x1="${f(x0)}" x2="${f(x1)}" y1="${f(y(0))}" y2="${f(y(0))}"/>`,
    `<line class="axis" x1="${f(x0)}" x2="${f(x0)}" y1="${f(y(0))}" y2="${f(top + M.top)}"/>`,
    `<text class="axis-label x" x="${f((x0 + x1) / 2)}" y="${f(top + H - 14)}" text-anchor="middle">${esc(panel.xLabel)}</text>`,
    `<text class="axis-label y" transform="translate(${f(left + 16)} ${f(top + (H - M.bottom + M.top) / 2)}) rotate(-90)" text-anchor="middle">${esc(panel.yLabel)}</text>`,
  );
  panel.series.forEach((s, i) => {
    const colour = colourOf(panel, s.name);
    // Series at one size stand a few pixels apart, so that their min-max bars do not hide
    // each other.
    const dodge = (i - (panel.series.length - 1) / 2) * 3;
    const x = (v: number) => xAt(v) + dodge;
    const dash = s.dashed
      ? ` stroke-dasharray="6 4"`
      : / \(disk\)$/.test(s.name)
        ? ` stroke-dasharray="2 3"`
        : "";
    out.push(`<g class="series" data-series="${esc(s.name)}">`);
    out.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="2"${dash} points="${s.points
        .map((p) => `${f(x(p.x))},${f(y(p.y))}`)
        .join(" ")}"/>`,
    );
    for (const p of s.points) {
      out.push(
        `<line stroke="${colour}" x1="${f(x(p.x))}" x2="${f(x(p.x))}" y1="${f(y(p.lo))}" y2="${f(y(p.hi))}"/>`,
        `<circle fill="${s.dashed ? "white" : colour}" stroke="${colour}" cx="${f(x(p.x))}" cy="${f(y(p.y))}" r="3"><title>${esc(
          `${s.name}, ${p.x} MiB: median ${p.y.toFixed(1)} (${p.lo.toFixed(1)}-${p.hi.toFixed(1)})`,
        )}</title></circle>`,
      );
    }
    const ly = top + M.top + 4 + i * 16;
    out.push(
      `<line stroke="${colour}" stroke-width="2"${dash} x1="${f(x0 + 10)}" x2="${f(x0 + 10 + LEGEND)}" y1="${f(ly)}" y2="${f(ly)}"/>`,
      `<text x="${f(x0 + 16 + LEGEND)}" y="${f(ly + 4)}">${esc(s.name)}</text>`,
      `</g>`,
    );
  });
  out.push(`</g>`);
  return out.join("\n");
}

/** The whole picture: PANELS side by side, CAPTION's lines (the machine, its load, the date)
 * below. */
export function chartSvg(panels: Panel[], caption: string[]): string {
  const width = Math.max(1, panels.length) * W;
  const height = H + 8 + 16 * caption.length;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<style>.grid{stroke:#e4e4e4}.axis{stroke:#333}.title{font-size:13px;font-weight:bold}</style>`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...panels.map((p, i) => drawPanel(p, i * W, 0)),
    ...caption.map(
      (line, i) => `<text class="caption" x="8" y="${H + 12 + 16 * i}">${esc(line)}</text>`,
    ),
    `</svg>`,
    "",
  ].join("\n");
}
