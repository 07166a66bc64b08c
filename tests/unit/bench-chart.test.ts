/**
 * The bench's picture (bench/chart.ts): its scales, a series per mode and per hand floor, a
 * label per axis, and well-formed XML, read back by the system Python's XML parser (a real
 * parser: a chart a browser refuses shows nothing). Pure code: no CRIU, no root.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { chartSvg, esc, linear, log2, panelsFrom, ticks } from "../../bench/chart";
import { summarize, type BenchResult } from "../../bench/figures";

/** The SVG parsed by Python's ElementTree: its series' names and its texts by class. */
function parse(svg: string): { series: string[]; texts: Record<string, string[]>; dashed: number } {
  const script = [
    "import json, sys, xml.etree.ElementTree as ET",
    "root = ET.fromstring(sys.stdin.buffer.read())",
    "ns = '{http://www.w3.org/2000/svg}'",
    "series = [g.get('data-series') for g in root.iter(ns + 'g') if g.get('class') == 'series']",
    "texts = {}",
    "for t in root.iter(ns + 'text'): texts.setdefault(t.get('class') or '', []).append(''.join(t.itertext()))",
    "dashed = sum(1 for p in root.iter(ns + 'polyline') if p.get('stroke-dasharray'))",
    "print(json.dumps({'series': series, 'texts': texts, 'dashed': dashed}))",
  ].join("\n");
  return JSON.parse(
    execFileSync("/usr/bin/python3", ["-c", script], { input: svg, encoding: "utf8" }),
  );
}

const results: BenchResult[] = [];
for (const x of [64, 256, 1024]) {
  for (const mode of ["cold", "page-server"]) {
    results.push(
      {
        case: `migration ${x}`,
        metric: mode,
        unit: "ms",
        values: [x * 2, x * 2.2, x * 2.1],
        plot: { panel: "migration", series: mode, x },
      },
      {
        case: `migration ${x}`,
        metric: `${mode} by hand`,
        unit: "ms",
        values: [x, x * 1.1, x * 1.05],
        plot: { panel: "migration", series: `${mode} by hand`, x, hand: true },
      },
    );
  }
  results.push({
    case: "training",
    metric: `frozen ${x}`,
    unit: "ms",
    values: [x / 2, x / 3, x / 4],
    plot: { panel: "training", series: "full", x },
  });
}
// A figure with no values (not measurable here) draws nothing.
results.push({
  case: "migration 64",
  metric: "pre-copy",
  unit: "ms",
  values: [],
  note: "no dirty tracking",
  plot: { panel: "migration", series: "pre-copy", x: 64 },
});

describe("scales", () => {
  it("linear maps the domain's ends onto the range's, inverted for a y axis", () => {
    const y = linear([0, 100], [300, 20]);
    expect(y(0)).toBe(300);
    expect(y(100)).toBe(20);
    expect(y(50)).toBe(160);
    expect(linear([5, 5], [0, 10])(5)).toBe(5); // one point: the middle
  });

  it("log2 sets doubling sizes evenly apart", () => {
    const x = log2([64, 1024], [0, 400]);
    expect(x(64)).toBe(0);
    expect(x(256)).toBe(200);
    expect(x(1024)).toBe(400);
  });

  it("ticks are round numbers from 0 up to at least the largest figure", () => {
    expect(ticks(2150)).toEqual([0, 500, 1000, 1500, 2000, 2500]);
    expect(ticks(9)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ticks(0.3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(ticks(0)).toEqual([0, 1]);
  });
});

describe("chart", () => {
  const panels = panelsFrom(summarize(results));

  it("has a panel per kind, a series per mode and per hand floor, points sorted by size", () => {
    expect(panels.map((p) => p.title)).toEqual([
      "Migration downtime",
      "Training checkpoint: time frozen",
    ]);
    expect(panels[0].series.map((s) => s.name)).toEqual([
      "cold",
      "cold by hand",
      "page-server",
      "page-server by hand",
    ]);
    expect(panels[0].series[1].dashed).toBe(true);
    expect(panels[0].series[0].points.map((p) => p.x)).toEqual([64, 256, 1024]);
    // The median with its min-max.
    expect(panels[0].series[0].points[0]).toEqual({ x: 64, y: 64 * 2.1, lo: 128, hi: 64 * 2.2 });
  });

  it("is well-formed SVG with a series group per series, a label per axis and the caption", () => {
    const svg = chartSvg(panels, ["2 CPUs <shared>, load 1.2 & 3.4", "median of 3"]);
    const got = parse(svg);
    expect(got.series).toEqual([
      "cold",
      "cold by hand",
      "page-server",
      "page-server by hand",
      "full",
    ]);
    expect(got.dashed).toBe(2);
    expect(got.texts["axis-label x"]).toEqual([
      "process size (MiB, log scale)",
      "process size (MiB, log scale)",
    ]);
    expect(got.texts["axis-label y"]).toEqual(["downtime (ms)", "frozen per checkpoint (ms)"]);
    expect(got.texts.caption).toEqual(["2 CPUs <shared>, load 1.2 & 3.4", "median of 3"]);
  });

  it("escapes what XML would read as markup", () => {
    expect(esc(`a<b>&"c"`)).toBe("a&lt;b&gt;&amp;&quot;c&quot;");
  });

  it("gives a mode's RAM, disk and hand series its one colour: disk dotted, hand dashed", () => {
    const point = { x: 64, y: 1, lo: 1, hi: 1 };
    const svg = chartSvg(
      [
        {
          title: "Migration downtime",
          xLabel: "x",
          yLabel: "y",
          series: ["cold (RAM)", "cold (disk)", "cold by hand", "page-server (RAM)"].map(
            (name) => ({ name, points: [point], dashed: name.endsWith(" by hand") }),
          ),
        },
      ],
      [],
    );
    const lines = [
      ...svg.matchAll(
        /<polyline fill="none" stroke="([^"]+)"[^>]*?(?: stroke-dasharray="([^"]+)")? points/g,
      ),
    ];
    expect(lines.map((m) => [m[1], m[2]])).toEqual([
      [lines[0][1], undefined],
      [lines[0][1], "2 3"],
      [lines[0][1], "6 4"],
      [expect.not.stringMatching(lines[0][1]), undefined],
    ]);
  });

  it("draws no panel for a kind the run did not measure", () => {
    const onlyTraining = panelsFrom(summarize(results.filter((r) => r.case === "training")));
    expect(onlyTraining.map((p) => p.title)).toEqual(["Training checkpoint: time frozen"]);
    expect(() => parse(chartSvg([], ["nothing measured"]))).not.toThrow();
  });
});
