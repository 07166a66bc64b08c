/**
 * The lab guide's migration section starts the counter detached and keeps its PID: its
 * block, read from docs/lab-guide.md, typed line by line into a real interactive bash (tmux), as a
 * learner types it. An interactive shell is where `setsid ./counter.py & echo $!` went wrong
 * (the job leads its process group, setsid forks, `$!` is gone): here the PID it keeps must
 * be the counter's, a session leader with no terminal, which CRIU dumps without
 * --shell-job and restores with the same PID, counting on.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import { alive, HOST, LAB, run, waitFor } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

/** The lab guide's block that starts the counter detached. */
const startBlock = () => guideBlock("detached-start");

const counts = (text: string) => [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

describe.skipIf(
  cannotRun("the guide's migration start", [...needLabHost("criu"), needCommand("tmux")]),
)("the migration section's detached counter, typed into an interactive shell", () => {
  let work: string;
  let t: Terminals;
  const started: number[] = [];

  beforeAll(() => {
    ({ work, t } = learnerSeat("guide-migration", [LAB.counter], 1));
  });

  afterAll(() => leaveSeat(work, t, started));

  it("keeps the PID of a running counter that leads its own session, with no terminal", async () => {
    const lines = startBlock();
    expect(lines[lines.length - 1]).toMatch(/^tail -f counter\.log/);
    for (const line of lines) t.type(0, line);
    await t.until(0, "the counter counting in tail -f", (s) => counts(s).length >= 2);
    t.keys(0, "C-c");
    await t.idle(0, "tail -f ended by Ctrl-C");

    const pid = Number(fs.readFileSync(path.join(work, "counter.pid"), "utf8").trim());
    started.push(pid);
    expect(alive(pid), `PID ${pid} from counter.pid is running`).toBe(true);
    // `echo "$PID"` printed the same number in the terminal.
    expect(t.screen(0)).toMatch(new RegExp(`^${pid}$`, "m"));
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields: state ppid pgrp session tty_nr ...
    expect(Number(fields[3]), "the counter leads its own session").toBe(pid);
    expect(Number(fields[4]), "the counter has no controlling terminal").toBe(0);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("counter.py");
  });

  it("is the process that moves: dumped without --shell-job, restored with its PID, counting on", async () => {
    const pid = started[0]!;
    const images = path.join(work, "images");
    fs.mkdirSync(images);
    const dumped = run(HOST.criu, ["dump", "-t", String(pid), "-D", images, "-o", "dump.log"]);
    expect(dumped.code, `criu dump (log: ${images}/dump.log)`).toBe(0);
    // Restore needs the PID free: a zombie still holds it until init reaps it.
    await waitFor(
      "the dumped counter's PID free",
      () => (fs.existsSync(`/proc/${pid}`) ? undefined : true),
      30_000,
    );
    const before = Math.max(...counts(fs.readFileSync(path.join(work, "counter.log"), "utf8")));
    const restored = run(HOST.criu, ["restore", "-d", "-D", images, "-o", "restore.log"]);
    expect(restored.code, `criu restore (log: ${images}/restore.log)`).toBe(0);
    expect(alive(pid), "restored with the same PID").toBe(true);
    await waitFor(
      "the restored counter counting on",
      () => {
        const after = counts(fs.readFileSync(path.join(work, "counter.log"), "utf8"));
        return after.includes(before + 1) ? true : undefined;
      },
      30_000,
    );
  });
});
