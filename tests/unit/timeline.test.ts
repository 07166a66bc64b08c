/**
 * The host command's timeline drawing (host/criu_lab/timeline.py), run by the system
 * Python as the host runs it: pure code, no root. A short span that follows another keeps a
 * column of its own, so a fast restore right after a kill still shows in the drawing.
 */
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

const PACKAGE_DIR = path.resolve(__dirname, "../../host");

function draw(lanes: unknown, total: number): string[] {
  const script = [
    "import json, sys",
    "from criu_lab import timeline",
    "lanes, total = json.loads(sys.argv[1])",
    "print(timeline.draw([(n, [tuple(s) for s in spans], [tuple(m) for m in marks]) for n, spans, marks in lanes], {'=': 'running'}, total))",
  ].join("\n");
  return execFileSync("/usr/bin/python3", ["-c", script, JSON.stringify([lanes, total])], {
    cwd: PACKAGE_DIR,
    // Nothing written into the checkout (no __pycache__ beside the lab's files).
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    encoding: "utf8",
  }).split("\n");
}

describe("timeline.draw", () => {
  it("shows a restore that took less than a column right after the kill", () => {
    // 6.8 s over 60 columns: a column is about 0.11 s; the kill, the down time and a 98 ms
    // restore all fall into the same column.
    const spans = [
      [0, 6.4, "="],
      [6.4, 6.45, "."],
      [6.45, 6.548, "R"],
      [6.548, 6.8, "="],
    ];
    const marks = [
      [2, "F"],
      [6.4, "X"],
    ];
    const lane = draw([["trainer", spans, marks]], 6.8).find((l) => l.startsWith("trainer"));
    expect(lane).toMatch(/^trainer +=+F=+X\.*R+=*$/);
  });

  it("keeps overlapping spans where they are (a gap painted over a lane)", () => {
    const lane = draw(
      [
        [
          "players",
          [
            [0, 6, "-"],
            [0, 2, " "],
          ],
          [],
        ],
      ],
      6,
    ).find((l) => l.startsWith("players"));
    // The gap covers the first third: the lane starts with spaces, then plays to the end.
    expect(lane).toMatch(/^players {20,}-{35,}$/);
  });

  it("ends the lane on its last span even when every event falls in the last column", () => {
    const spans = [
      [0, 6.8, "="],
      [6.8, 6.8, "."],
      [6.8, 6.8, "R"],
      [6.8, 6.8, "="],
    ];
    const lane = draw([["trainer", spans, [[6.8, "X"]]]], 6.8).find((l) => l.startsWith("trainer"));
    expect(lane).toMatch(/^trainer +=+XR=$/);
  });
});
