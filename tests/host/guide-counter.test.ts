/**
 * The lab guide's first lesson and its image tour, their blocks read from docs/lab-guide.md and
 * typed into two tmux panes side by side, as a learner types them: the counter started in the
 * left pane with its PID kept in a file, dumped from the right pane, restored there counting
 * on from the next number with its PID; restored again from the left pane while that copy
 * runs (CRIU refuses: the PID is taken) and once it has ended (the same number again).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import { alive, LAB, waitFor } from "./support/lab-helpers";
import { needLabHost, needPanes } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

const LEFT = 0;
const RIGHT = 1;
const counts = (text: string) => [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

describe.skipIf(
  cannotRun("the guide's counter lesson", [...needLabHost("criu", "criuLab"), ...needPanes()]),
)("the counter lesson, typed into two panes", () => {
  let work: string;
  let t: Terminals;
  let pid = 0;
  let lastBeforeDump = -1;

  beforeAll(() => {
    ({ work, t } = learnerSeat("guide-counter", [LAB.counter], 2));
  });

  afterAll(() => leaveSeat(work, t, [pid]));

  it("left pane: the counter starts in the background, its PID in counter.pid", async () => {
    await t.typeAll(LEFT, guideBlock("counter-start"));
    await t.until(LEFT, "Counter: 1", (s) => counts(s).includes(1));
    pid = Number(fs.readFileSync(path.join(work, "counter.pid"), "utf8"));
    // The file holds the counter itself, the PID it prints.
    expect(t.screen(LEFT)).toMatch(new RegExp(`PID: ${pid}$`, "m"));
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("counter.py");
  });

  it("right pane: the dump stops it and saves it in checkpoint_dir", async () => {
    await t.typeAll(RIGHT, guideBlock("counter-dump"));
    expect(t.screen(RIGHT)).toContain("Dumping finished successfully");
    expect(t.screen(RIGHT)).toMatch(new RegExp(`^${pid}$`, "m")); // echo "$PID"
    await waitFor("the counter to be gone", () => (alive(pid) ? undefined : true));
    lastBeforeDump = Math.max(...counts(t.screen(LEFT)));
    t.type(LEFT, "");
    await t.until(LEFT, "the job reported killed", (s) => /Killed +\.\/counter\.py/.test(s));
    expect(fs.existsSync(path.join(work, "checkpoint_dir/pstree.img"))).toBe(true);
  });

  it("right pane: the restore brings it back with its PID, from the next number", async () => {
    const [restore] = guideBlock("counter-restore");
    await t.clear(RIGHT);
    t.type(RIGHT, restore!);
    await t.until(RIGHT, `Counter: ${lastBeforeDump + 2}`, (s) =>
      counts(s).includes(lastBeforeDump + 2),
    );
    expect(t.screen(RIGHT)).toContain("Restore finished successfully");
    expect(counts(t.screen(RIGHT))[0]).toBe(lastBeforeDump + 1);
    expect(alive(pid)).toBe(true);
  });

  it("left pane: the same images again while it runs: CRIU refuses, the PID is taken", async () => {
    const [again] = guideBlock("counter-restore-again");
    await t.clear(LEFT);
    await t.typeAll(LEFT, [again!]);
    expect(t.screen(LEFT)).toMatch(new RegExp(`Can't fork for ${pid}: File exists`));
    expect(t.screen(LEFT)).toContain("Restoring FAILED");
  });

  it("after Ctrl-C there, the same command restores it again, from the same number", async () => {
    await t.interrupt(RIGHT, [pid], "the restored counter to end", "the right pane's prompt");
    // Ctrl-C ends it quietly: no traceback.
    expect(t.screen(RIGHT)).not.toMatch(/Traceback|KeyboardInterrupt/);
    const [again] = guideBlock("counter-restore-again");
    await t.clear(LEFT);
    t.type(LEFT, again!);
    await t.until(LEFT, "the second restore counting", (s) => counts(s).length >= 2);
    expect(counts(t.screen(LEFT))[0]).toBe(lastBeforeDump + 1);
    expect(alive(pid)).toBe(true);
    await t.interrupt(LEFT, [pid], "the second copy to end", "the left pane's prompt");
  });

  it("the image tour: criu-lab analyze and crit read the checkpoint", async () => {
    await t.clear(RIGHT);
    await t.typeAll(RIGHT, guideBlock("tour-analyze"));
    const analyze = t.screen(RIGHT);
    // A --shell-job dump also saves the terminal it ran in.
    for (const file of ["pstree.img", `core-${pid}.img`, "tty-info.img", "pages-1.img"])
      expect(analyze).toContain(file);
    await t.clear(RIGHT);
    await t.typeAll(RIGHT, guideBlock("tour-crit"));
    const crit = t.screen(RIGHT);
    expect(crit).toMatch(new RegExp(`"pid": ${pid},`));
    expect(crit).toMatch(/"frozen_time": \d+/);
    expect(crit).toMatch(new RegExp(`^\\s*${pid}\\s+\\d+\\s+\\d+\\s+python3`, "m"));
  });
});
