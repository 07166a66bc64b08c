/**
 * The lab guide's "What a checkpoint holds" exercise, its blocks read from docs/lab-guide.md and
 * typed line by line into a real interactive bash (tmux), as a learner types them: a
 * counter holding a made-up secret in its environment is checkpointed with --leave-running,
 * the secret is found in its pages, the lab's own checkpoint folder is root's alone, and the
 * last block ends the counter and deletes the images.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import { alive, HOST, LAB, run, waitFor } from "./support/lab-helpers";
import { needLabHost, needPanes } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

/** The section's blocks, in order: dump and search, the permissions, the clean-up. */
const blocks = () => [
  guideBlock("secret-dump"),
  guideBlock("secret-perms"),
  guideBlock("secret-cleanup"),
];

const counts = (text: string) => [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

describe.skipIf(
  cannotRun("the guide's secret-in-the-images exercise", [...needLabHost("criu"), ...needPanes()]),
)("what a checkpoint holds, typed into an interactive shell", () => {
  let work: string;
  let t: Terminals;
  let pid = 0;
  let guide: string[][];

  const typeAll = (lines: string[]) => t.typeAll(0, lines);

  beforeAll(() => {
    guide = blocks();
    ({ work, t } = learnerSeat("guide-secret", [LAB.counter], 1));
  });

  afterAll(() => leaveSeat(work, t, [pid]));

  it("has the three blocks: dump and search, the permissions, the clean-up", () => {
    expect(guide).toHaveLength(3);
  });

  it("finds the secret in the pages of a counter that goes on counting", async () => {
    await typeAll(guide[0]!);
    const images = path.join(work, "secret_dir");
    const pstree = JSON.parse(run(HOST.crit, ["show", path.join(images, "pstree.img")]).stdout);
    pid = pstree.entries[0].pid;
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("counter.py");
    expect(fs.readFileSync(`/proc/${pid}/environ`, "utf8")).toContain(
      "COUNTER_SECRET=swordfish-1234",
    );
    // grep -o prints what it found in the pages, alone on its line.
    expect(t.screen(0)).toMatch(/^COUNTER_SECRET=swordfish-1234$/m);
    // --leave-running: the counter was never stopped.
    const log = path.join(work, "secret.log");
    const before = Math.max(...counts(fs.readFileSync(log, "utf8")));
    await waitFor(
      "the counter counting on after the dump",
      () => (counts(fs.readFileSync(log, "utf8")).includes(before + 1) ? true : undefined),
      30_000,
    );
  });

  it("shows the images readable by all and the lab's own folder root's alone", async () => {
    await typeAll(guide[1]!);
    const screen = t.screen(0);
    expect(screen).toMatch(/^-rw-r--r-- +\d+ root root .*secret_dir\/pages-1\.img$/m);
    expect(screen).toMatch(/^drwx------ +\d+ root root .*\/var\/log\/criu-lab$/m);
    // "a user other than root gets Permission denied there"
    const nobody = run("setpriv", [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      "ls",
      "/var/log/criu-lab",
    ]);
    expect(nobody.code).not.toBe(0);
    expect(nobody.stderr).toContain("Permission denied");
  });

  it("ends the counter and deletes its checkpoint", async () => {
    await typeAll(guide[2]!);
    await waitFor("the counter to end", () => (alive(pid) ? undefined : true), 30_000);
    expect(fs.existsSync(path.join(work, "secret_dir"))).toBe(false);
  });
});
