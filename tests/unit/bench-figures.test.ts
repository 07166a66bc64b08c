/**
 * The bench's arithmetic (bench/figures.ts): medians and spreads, ratios to the hand floor
 * paired round by round, whether a run's stages add up to its downtime, fields read by name;
 * the hand procedures' clock (bench/hand.ts readMarks) and the bench's flags (bench/run.ts).
 * Pure code: no CRIU, no root.
 */
import { describe, expect, it } from "vitest";
import { labRun, labStages } from "../../bench/cases/migration";
import {
  breakdown,
  GAP,
  median,
  numbers,
  ratio,
  spread,
  stagesAddUp,
  summarize,
  table,
  type BenchResult,
} from "../../bench/figures";
import { coldByHand, readMarks } from "../../bench/hand";
import { parseArgs } from "../../bench/run";

describe("median and spread", () => {
  it("takes the middle figure, or the mean of the two middle ones, whatever the order", () => {
    expect(median([30, 10, 20])).toBe(20);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(spread([30, 10, 20])).toEqual({ median: 20, min: 10, max: 30 });
    expect(spread([])).toBeUndefined();
  });
});

describe("ratio to the floor", () => {
  it("divides round by round when both have a figure per round: the spread is of the ratios", () => {
    // Round 2 was slow for both (a load spike): its ratio is like the others'.
    const r = ratio([110, 220, 120], [100, 200, 100])!;
    expect(r.paired).toBe(true);
    expect(r.median).toBeCloseTo(1.1);
    expect(r.min).toBeCloseTo(1.1);
    expect(r.max).toBeCloseTo(1.2);
  });

  it("falls back to medians, with the widest spread the figures allow, when the counts differ", () => {
    const r = ratio([100, 200], [50, 100, 150])!;
    expect(r.paired).toBe(false);
    expect(r.median).toBeCloseTo(150 / 100);
    expect(r.min).toBeCloseTo(100 / 150);
    expect(r.max).toBeCloseTo(200 / 50);
  });

  it("has none without figures or with a floor of zero", () => {
    expect(ratio([], [1])).toBeUndefined();
    expect(ratio([1], [])).toBeUndefined();
    expect(ratio([1, 2], [1, 0])).toBeUndefined();
  });
});

describe("summarize", () => {
  const results: BenchResult[] = [
    { case: "m", metric: "cold", unit: "ms", values: [200, 300, 250], floor: "cold by hand" },
    { case: "m", metric: "cold by hand", unit: "ms", values: [100, 150, 100] },
    {
      case: "m",
      metric: "page-server",
      unit: "ms",
      values: [100, 240, 250],
      baseline: "cold",
      target: { atMost: 0.8, of: "ratio", text: "<= 0.8x cold" },
    },
    {
      case: "m",
      metric: "page-server (disk)",
      unit: "ms",
      values: [200, 300, 200],
    },
    {
      case: "m",
      metric: "page-server (RAM)",
      unit: "ms",
      values: [100, 150, 150],
      versus: "page-server (disk)",
    },
    {
      case: "m",
      metric: "pre-copy",
      unit: "ms",
      values: [],
      baseline: "cold",
      target: { atMost: 0.3, of: "ratio", text: "<= 0.3x cold" },
      note: "no dirty tracking",
    },
  ];
  const rows = summarize(results);

  it("gives each figure its ratio to its floor and to its baseline, from the same case", () => {
    expect(rows[0].overFloor?.median).toBeCloseTo(2);
    expect(rows[0].overFloor?.min).toBeCloseTo(2);
    expect(rows[0].overFloor?.max).toBeCloseTo(2.5);
    expect(rows[1].overFloor).toBeUndefined();
    // page-server over cold, round by round: 0.5, 0.8, 1.0.
    expect(rows[2].overBaseline?.median).toBeCloseTo(0.8);
    expect(rows[2].status).toBe("met");
    // RAM over disk, round by round: 0.5, 0.5, 0.75.
    expect(rows[4].overVersus).toMatchObject({ median: 0.5, min: 0.5, max: 0.75, paired: true });
    expect(rows[3].overVersus).toBeUndefined();
    expect(rows[5].status).toBe("not measurable here");
  });

  it("prints the ratios with their spread, and the note where there are no figures", () => {
    const text = table(rows);
    expect(text).toContain("2.00x (2.00-2.50)");
    expect(text).toContain("0.80x (0.50-1.00) cold");
    expect(text).toContain("0.50x (0.50-0.75) page-server (disk)");
    expect(text).toContain("no dirty tracking");
    expect(text.split("\n")).toHaveLength(2 + rows.length);
  });
});

describe("stages add up", () => {
  it("says the gap between the downtime and its stages, and whether it is within 5 %", () => {
    const ok = stagesAddUp(1000, { freeze: 500, transfer: 300, restore: 160 });
    expect(ok).toEqual({ sum: 960, gap: 40, gapPercent: 4, ok: true });
    const off = stagesAddUp(1000, { freeze: 500, transfer: 300, restore: 100 });
    expect(off.gap).toBe(100);
    expect(off.ok).toBe(false);
    // Stages longer than the downtime do not add up either.
    expect(stagesAddUp(1000, { freeze: 1100 }).ok).toBe(false);
    expect(stagesAddUp(0, {}).ok).toBe(false);
  });

  it("breakdown shows a failed check plainly, naming the runs' gaps", () => {
    const rows = summarize([
      {
        case: "m",
        metric: "cold",
        unit: "ms",
        values: [1, 2, 3],
        parts: { freeze: [1, 1, 1], [GAP]: [1.5, -7.25, 2] },
      },
    ]);
    const text = breakdown(rows);
    expect(text).toContain("STAGES DO NOT ADD UP in 1 of 3 runs: gaps -7.3 %");
    expect(breakdown(summarize([{ ...rows[0], parts: { [GAP]: [1, 2] } }]))).toContain(
      "stages add up: all 2 runs",
    );
  });
});

describe("reading the host command's JSON by name", () => {
  it("keeps the numbers among the named fields and leaves out the rest", () => {
    expect(numbers({ a: 1, b: "2", c: null, d: NaN }, ["a", "b", "c", "d", "e"])).toEqual({ a: 1 });
    expect(numbers(undefined, ["a"])).toEqual({});
  });

  it("labRun reads migrate's stages and CRIU's own account, whatever is missing", () => {
    const got = labRun({
      ok: true,
      downtimeMs: 1000,
      freezeMs: 600,
      transferMs: 200,
      restoreMs: 150,
      criu: {
        dump: { frozenTimeUs: 580000, pagesWritten: 65536, memwriteTimeUs: "soon" },
        restore: {},
      },
    });
    expect(got.parts).toEqual({
      freeze: 600,
      transfer: 200,
      restore: 150,
      "CRIU frozen": 580,
      "pages written": 65536,
      [GAP]: 5,
    });
    expect(got.line).toContain("stages add up within 5 %");
    const bare = labRun({ ok: true, downtimeMs: 1000, freezeMs: 100 });
    expect(bare.line).toContain("STAGES DO NOT ADD UP");
    expect(bare.line).toContain("none in the JSON");
  });

  it("labRun sums lazy's own stages (forward, daemon) to its downtime, its null stats-dump left out", () => {
    const lazy = {
      ok: true,
      mode: "lazy",
      downtimeMs: 1000,
      resumeMs: 1000,
      completeMs: 9000,
      freezeMs: 300,
      manifestMs: 10,
      reapMs: 0,
      checkMs: 0,
      forwardMs: 90,
      transferMs: 200,
      daemonMs: 150,
      restoreMs: 250,
      criu: { dump: null, restore: { restoreTimeUs: 200000 }, dumpLeftOut: "reset" },
    };
    expect(labStages(lazy).check).toMatchObject({ sum: 1000, gap: 0, ok: true });
    const got = labRun(lazy);
    expect(got.parts).toMatchObject({ forward: 90, daemon: 150, "CRIU restore": 200, [GAP]: 0 });
    expect(got.parts["CRIU frozen"]).toBeUndefined();
    // Without its forward and daemon stages (the lab before them), 24 % of it is in none.
    const { forwardMs, daemonMs, ...older } = lazy;
    expect(forwardMs + daemonMs).toBe(240);
    expect(labStages(older).check.ok).toBe(false);
  });
});

describe("hand procedures", () => {
  it("read their own clock: each step from the mark before it", () => {
    const out = "mark start 1000000000\nnoise\nmark dumped 1250000000\nmark restored 1400500000\n";
    expect(readMarks(out)).toEqual({ total: 400.5, steps: { dumped: 250, restored: 150.5 } });
    expect(() => readMarks("mark start 1\n")).toThrow(/no marks/);
  });

  it("cold by hand: dump into RAM, copy over SSH with AES-GCM on a master opened before, restore there", () => {
    const script = coldByHand(
      { address: "10.0.0.2", identity: "/k", knownHosts: "/kh", control: "/c" },
      42,
      "/dev/shm/x",
    );
    const lines = script.split("\n");
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/ControlMaster=yes/)).toBeLessThan(at(/^echo "mark start/));
    expect(script).toContain("criu dump -t 42 -D /dev/shm/x\n");
    expect(script).toMatch(/tar -C \/dev\/shm\/x -cf - \. \| ssh -c aes128-gcm@openssh\.com/);
    expect(at(/restore -d -D \/dev\/shm\/x/)).toBeLessThan(at(/^echo "mark restored/));
  });
});

describe("bench flags", () => {
  it("default to 64 and 256 MiB, 3 rounds; --large adds 1 GiB", () => {
    expect(parseArgs([])).toMatchObject({ runs: 3, sizesMiB: [64, 256] });
    expect(parseArgs(["--large"]).sizesMiB).toEqual([64, 256, 1024]);
    expect(parseArgs([]).vm).toBe(false);
    expect(parseArgs(["--vm", "--only", "vm"])).toMatchObject({ vm: true, only: "vm" });
    expect(parseArgs(["--sizes", "128", "--large", "--runs", "5"])).toMatchObject({
      runs: 5,
      sizesMiB: [128, 1024],
    });
    expect(() => parseArgs(["--sizes", "1G"])).toThrow(/--sizes 1G: expected MiB/);
    expect(() => parseArgs(["--runs"])).toThrow(/--runs: a value is missing/);
    expect(() => parseArgs(["--modes", "cold,warm"])).toThrow(
      /--modes cold,warm: 'warm' is not one of cold, page-server, pre-copy, lazy/,
    );
  });

  it("--images: RAM and disk by default, or the places named; a bad one named with what is allowed", () => {
    expect(parseArgs([]).images).toEqual(["ram", "disk"]);
    expect(parseArgs(["--images", "disk"]).images).toEqual(["disk"]);
    expect(parseArgs(["--images", "disk,ram"]).images).toEqual(["disk", "ram"]);
    expect(() => parseArgs(["--images", "ram,ssd"])).toThrow(
      /^--images ram,ssd: 'ssd' is not one of ram, disk \(comma-separated, e\.g\. ram,disk\)/,
    );
    expect(() => parseArgs(["--images", "ram,ram"])).toThrow(/^--images ram,ram: a place twice/);
    expect(() => parseArgs(["--images", ""])).toThrow(/^--images : '' is not one of ram, disk/);
  });
});
