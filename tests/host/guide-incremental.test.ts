/**
 * The lab guide's incremental checkpoints by hand, typed into two tmux panes from
 * docs/lab-guide.md: the training job started in the left pane with its PID kept, then, in the
 * right pane, the kernel asked for dirty tracking, a pre-dump and a dump on top of it, and
 * their sizes. On a kernel without soft-dirty tracking (this project's test machine) the
 * guide's "where tracking is missing" path must hold: the check says so, both dumps refuse
 * --track-mem, nothing is written and the job runs on. Where the kernel tracks, the second
 * dump must be smaller than the first and name it as its parent.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import { alive, HOST, LAB, REPO, run } from "./support/lab-helpers";
import { needLabHost, needPanes } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

const LEFT = 0;
const RIGHT = 1;
const steps = (text: string) =>
  [...text.matchAll(/^step (\d+) checksum [0-9a-f]{16}$/gm)].map((m) => Number(m[1]));

const WARN_NO_TRACKING =
  "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.";
const REFUSAL =
  "Error (criu/config.c:1131): Tracking memory is not available. Consider omitting --track-mem option.";

/** The guide's transcript of the path without tracking holds LINE, as this CRIU printed it. */
function expectInGuide(screen: string, line: string) {
  expect(screen).toContain(line);
  expect(fs.readFileSync(path.join(REPO, "docs/lab-guide.md"), "utf8")).toContain(line);
}

/** The kernel's answer, asked as the guide asks it. */
const tracks = () => run(HOST.criu, ["check", "--feature", "mem_dirty_track"]).code === 0;

describe.skipIf(
  cannotRun("the guide's incremental checkpoints by hand", [
    ...needLabHost("criu"),
    ...needPanes(),
  ]),
)("incremental checkpoints by hand, typed into two panes", () => {
  let work: string;
  let t: Terminals;
  let pid = 0;

  beforeAll(() => {
    ({ work, t } = learnerSeat("guide-incremental", [LAB.trainer], 2));
  });

  afterAll(() => leaveSeat(work, t, [pid]));

  it("left pane: the job starts, its PID in trainer.pid", async () => {
    await t.typeAll(LEFT, guideBlock("trainer-start"));
    await t.until(LEFT, "step 2", (s) => steps(s).includes(2), 120_000);
    pid = Number(fs.readFileSync(path.join(work, "trainer.pid"), "utf8"));
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("trainer.py");
  });

  it("right pane: the kernel says whether it tracks dirty pages", async () => {
    await t.typeAll(RIGHT, guideBlock("incremental-check"));
    if (tracks()) expect(t.screen(RIGHT)).toContain("mem_dirty_track is supported");
    else expectInGuide(t.screen(RIGHT), WARN_NO_TRACKING);
  });

  it("right pane: pre-dump, dump on top of it, du: as the guide says for this kernel", async () => {
    await t.clear(RIGHT);
    await t.typeAll(RIGHT, guideBlock("incremental-dumps"));
    const screen = t.screen(RIGHT);
    const du = [...screen.matchAll(/^(\S+)\s+inc\/([12])$/gm)].map((m) => [m[2], m[1]]);
    expect(du.map(([dir]) => dir)).toEqual(["1", "2"]);
    if (tracks()) {
      const size = (d: string) =>
        Number(run("du", ["-sb", path.join(work, "inc", d)]).stdout.split("\t")[0]);
      expect(size("2")).toBeLessThan(size("1") / 2);
      expect(fs.readlinkSync(path.join(work, "inc/2/parent"))).toBe("../1");
    } else {
      // The guide's "where tracking is missing" transcript: both refuse, nothing written.
      const refusals = screen.match(
        /Tracking memory is not available\. Consider omitting --track-mem option\./g,
      );
      expect(refusals).toHaveLength(2);
      expectInGuide(screen, REFUSAL);
      expect(du.map(([, size]) => size)).toEqual(["4.0K", "4.0K"]);
      expect(fs.readdirSync(path.join(work, "inc/1"))).toEqual([]);
    }
    // Never left frozen: the job goes on stepping in the left pane.
    const before = Math.max(...steps(t.screen(LEFT)));
    await t.until(LEFT, "steps after the dumps", (s) => Math.max(...steps(s)) >= before + 2);
    expect(alive(pid)).toBe(true);
  });
});
