/**
 * The lab guide's first steps (docs/lab-guide.md, its blocks read by name), as a learner types
 * them on EC2:
 * user `ubuntu`, two SSH sessions with a pty each (`ssh -tt` in two windows of a tmux on
 * this host, so the guest's sshd gives each its own terminal), the counter started as a shell
 * job in the first, dumped and restored with `--shell-job` from the second, where it counts
 * on with the same PID. Everything is read off the screens, never from a log. (The same blocks
 * as root on this host, in tmux panes: tests/host/guide-counter.test.ts.)
 */
import { expect } from "vitest";
import { GUEST_HOSTNAME } from "../../../vm/image";
import type { VmState } from "../../../vm/lab";
import { guideBlock } from "../../support/guide-blocks";
import type { Terminals } from "./terminals";

export async function learnerSteps(
  vm: VmState,
  term: Terminals,
  log: (line: string) => void,
): Promise<void> {
  const t0 = Date.now();
  const ssh = [
    "ssh",
    "-tt",
    "-i",
    vm.privateKeyPath,
    "-p",
    String(vm.sshPort),
    "-o",
    `UserKnownHostsFile=${vm.knownHostsPath}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    `${vm.user}@127.0.0.1`,
  ];
  term.open([ssh, ssh]);
  // Everything waits on the guest under software emulation: generous guards, not timings.
  const WAIT = 5 * 60_000;
  /** The screen ends with a bare prompt: the shell waits for input. */
  const ps1 = `${vm.user}@${GUEST_HOSTNAME}:~$`;
  const atPrompt = (text: string) => text.trimEnd().split("\n").at(-1) === ps1;
  const prompts = (text: string) => text.split("\n").filter((l) => l.startsWith(ps1)).length;
  /** Types `line` in window `w` and waits for the shell's next prompt after it. */
  const typeAndWait = async (w: number, line: string, what: string) => {
    const before = prompts(term.screen(w));
    term.type(w, line);
    await term.until(w, what, (s) => prompts(s) > before && atPrompt(s), WAIT);
  };
  const counts = (text: string) =>
    [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));
  /** The output line `tag: N` of a command typed as `...; echo "tag: $?"`. */
  const status = (tag: string) => (text: string) =>
    text.match(new RegExp(`^${tag}: (\\d+)$`, "m"))?.[1];
  for (const w of [0, 1]) await term.until(w, "the shell prompt", atPrompt, WAIT);
  log("learner: two SSH terminals as ubuntu");

  // Terminal 1: the counter as a shell job; it prints its PID, then counts.
  const [start] = guideBlock("counter-start");
  term.type(0, start!);
  const pid = Number(
    await term.until(
      0,
      "Counter: 2",
      (s) => counts(s).includes(2) && s.match(/PID: (\d+)/)?.[1],
      WAIT,
    ),
  );
  expect(pid).toBeGreaterThan(1);

  // Terminal 2: the dump. (Typing ahead while sudo runs would be swallowed: wait for the
  // prompt, then for CRIU's last words.)
  const dump = guideBlock("counter-dump");
  for (const line of dump.slice(0, -1)) await typeAndWait(1, line, `the prompt after ${line}`);
  expect(term.screen(1)).toMatch(new RegExp(`^${pid}$`, "m")); // echo "$PID", from counter.pid
  term.type(1, dump.at(-1)!);
  await term.until(
    1,
    "the end of the dump",
    (s) => /Dumping (finished successfully|FAILED)/.test(s),
    WAIT,
  );
  expect(term.screen(1)).toContain("Dumping finished successfully");
  const dumped = Date.now();

  // Terminal 1: the counter is gone (CRIU killed it after saving it) and stopped counting.
  term.type(0, `ps -o pid=,user=,args= -p ${pid}; echo "after dump: $?"`);
  expect(await term.until(0, "ps after the dump", status("after dump"), WAIT)).toBe("1");
  const lastBeforeDump = Math.max(...counts(term.screen(0)));
  expect(lastBeforeDump).toBeGreaterThanOrEqual(2);

  // Terminal 2: the restore; the counter goes on here, from the next number.
  const [restore] = guideBlock("counter-restore");
  term.type(1, restore!);
  await term.until(
    1,
    `Counter: ${lastBeforeDump + 2} in terminal 2`,
    (s) => counts(s).includes(lastBeforeDump + 2),
    WAIT,
  );
  const restored = term.screen(1);
  expect(restored).toContain("Restore finished successfully");
  expect(counts(restored)[0], "the first number after the restore").toBe(lastBeforeDump + 1);
  // Terminal 1 stayed quiet: nothing counted there after the dump.
  expect(Math.max(...counts(term.screen(0)))).toBe(lastBeforeDump);

  // Terminal 1: the restored counter has the PID it had, and is the lab user's counter.
  term.type(0, `ps -o pid=,user=,args= -p ${pid}; echo "after restore: $?"`);
  expect(await term.until(0, "ps after the restore", status("after restore"), WAIT)).toBe("0");
  expect(term.screen(0)).toMatch(
    new RegExp(`^\\s*${pid} ${vm.user}\\s+python3 \\./counter\\.py$`, "m"),
  );

  // Ctrl-C in terminal 2 ends it, as the guide says.
  const before = prompts(term.screen(1));
  term.key(1, "C-c");
  await term.until(1, "the prompt after Ctrl-C", (s) => prompts(s) > before, WAIT);
  term.type(0, `ps -o pid= -p ${pid}; echo "after ctrl-c: $?"`);
  expect(await term.until(0, "ps after Ctrl-C", status("after ctrl-c"), WAIT)).toBe("1");
  log(
    `learner: dump ${((dumped - t0) / 1000).toFixed(0)} s into the steps, all steps ` +
      `${((Date.now() - t0) / 1000).toFixed(0)} s; counter ${lastBeforeDump} -> ${lastBeforeDump + 1}, PID ${pid}`,
  );
}
