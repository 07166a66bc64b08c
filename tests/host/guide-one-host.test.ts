/**
 * The lab guide's one-host migration story, its blocks read from docs/lab-guide.md and typed into
 * tmux panes as a learner types them: a detached counter checkpointed to disk (the dump ends
 * it, as a reboot or a spot reclaim would) and restored in the background, counting on from
 * the next number; then a twin: a counter dumped with --leave-running, whose images CRIU will
 * not restore while it holds the PID, restored by criu-ns in a PID namespace of its own with
 * that PID inside and another outside.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import { alive, LAB, waitFor } from "./support/lab-helpers";
import { needLabHost, needPanes } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

const LEFT = 0;
const RIGHT = 1;
const CRIU_NS = "/usr/local/sbin/criu-ns";
const SETUP = "run `sudo npm run setup:host` first";
const counts = (text: string) => [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

/** A checkpointed process's PID is free once its parent has reaped it. On a lab host systemd
 * does that at once; this machine's init takes its time, and a restore must wait for it. */
const pidFree = (pid: number) =>
  waitFor(`PID ${pid} free`, () => (fs.existsSync(`/proc/${pid}`) ? undefined : true), 60_000);

const skip = cannotRun("the guide's one-host story", [...needLabHost("criu"), ...needPanes()]);
describe.skipIf(skip)("every seat: checkpoint, reboot, restore, typed into a pane", () => {
  let work: string;
  let t: Terminals;
  let pid = 0;
  const log = () => fs.readFileSync(path.join(work, "counter.log"), "utf8");

  beforeAll(() => ({ work, t } = learnerSeat("guide-spot", [LAB.counter], 1)));
  afterAll(() => leaveSeat(work, t, [pid]));

  it("starts the detached counter and checkpoints it to disk: it stops", async () => {
    const start = guideBlock("detached-start");
    await t.typeAll(LEFT, start.slice(0, -1));
    t.type(LEFT, start.at(-1)!); // tail -f, until Ctrl-C
    await t.until(LEFT, "the counter counting", (s) => counts(s).length >= 2);
    t.keys(LEFT, "C-c");
    await t.idle(LEFT, "tail -f ended");
    pid = Number(fs.readFileSync(path.join(work, "counter.pid"), "utf8"));
    await t.typeAll(LEFT, guideBlock("spot-dump"));
    await waitFor("the counter to stop", () => (alive(pid) ? undefined : true));
    expect(fs.existsSync(path.join(work, "spot/pstree.img"))).toBe(true);
  });

  it("restores it in the background: same PID, the next number", async () => {
    const last = Math.max(...counts(log()));
    await pidFree(pid);
    await t.clear(LEFT);
    await t.typeAll(LEFT, guideBlock("spot-restore"));
    expect(alive(pid)).toBe(true);
    // tail -n 3 shows the last numbers before the dump, then the next ones, none missing.
    const tail = counts(t.screen(LEFT));
    expect(tail).toContain(last);
    expect(tail).toContain(last + 1);
    expect(tail).toEqual(tail.map((_, i) => tail[0]! + i));
  });
});

describe.skipIf(
  cannotRun("the guide's criu-ns twin", [
    ...needLabHost("criu"),
    ...needPanes(),
    needCommand(CRIU_NS, `${SETUP} (install-criu.sh installs criu-ns)`),
  ]),
)("PID already taken: criu-ns, typed into two panes", () => {
  let work: string;
  let t: Terminals;
  let pid = 0;
  let twin = 0;

  beforeAll(() => ({ work, t } = learnerSeat("guide-twin", [LAB.counter], 2)));
  afterAll(() => leaveSeat(work, t, [pid, twin]));

  it("left: a counter; right: dumped, left running, and CRIU refuses its images", async () => {
    await t.typeAll(LEFT, guideBlock("twin-start"));
    await t.until(LEFT, "Counter: 1", (s) => counts(s).includes(1));
    pid = Number(fs.readFileSync(path.join(work, "counter.pid"), "utf8"));
    await t.typeAll(RIGHT, guideBlock("twin-dump"));
    expect(t.screen(RIGHT)).toContain(`Can't fork for ${pid}: File exists`);
    expect(alive(pid)).toBe(true);
  });

  it("right: criu-ns restores the twin, counting on; both run", async () => {
    const atDump = Math.max(...counts(t.screen(LEFT)));
    const [restore] = guideBlock("twin-restore");
    await t.clear(RIGHT);
    t.type(RIGHT, restore!);
    await t.until(RIGHT, "the twin counting", (s) => counts(s).length >= 2);
    expect(counts(t.screen(RIGHT))[0]).toBeLessThanOrEqual(atDump + 1);
    twin = Number(fs.readFileSync(path.join(work, "twin/twin.pid"), "utf8"));
    expect(twin).not.toBe(pid);
    expect(alive(pid)).toBe(true);
    expect(alive(twin)).toBe(true);
  });

  it("left: NSpid names the twin's PID on the host, then the original's inside", async () => {
    await t.clear(LEFT);
    await t.typeAll(LEFT, guideBlock("twin-nspid"));
    expect(t.screen(LEFT)).toMatch(new RegExp(`^NSpid:\\s+${twin}\\s+${pid}$`, "m"));
  });

  it("Ctrl-C in the right pane ends the twin; the original goes on", async () => {
    await t.interrupt(RIGHT, [twin], "the twin to end", "the right pane's prompt");
    expect(alive(pid)).toBe(true);
  });
});
