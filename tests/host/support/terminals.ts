/**
 * Real terminals for the lab guide's typed steps: a tmux window split into panes side by side
 * (`split-window -h`, the guide's `Ctrl-b %`), each a bash in a work directory. Lines are typed
 * as the guide gives them and the screens are read back. As the lab user where root may dump
 * another user's process, as root where it may not (this sandbox: no CAP_SYS_RESOURCE).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { alive, run, tempDir, waitFor } from "./lab-helpers";

export const LAB_USER = "ubuntu";

/** CRIU needs CAP_SYS_RESOURCE to read the rlimits of another user's process. */
export function rootHasSysResource(): boolean {
  const line = fs.readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s*([0-9a-f]+)/m);
  return line !== null && (BigInt(`0x${line[1]}`) & (1n << 24n)) !== 0n;
}

export class Terminals {
  private readonly socket: string;
  /** COUNT panes; `wrap` turns the shell's command line into the one tmux runs (e.g. to enter
   * a lab host's namespaces first). */
  constructor(
    readonly dir: string,
    count: number,
    wrap: (shell: string) => string = (shell) => shell,
  ) {
    this.socket = path.join(dir, "tmux.sock");
    let shell = "bash --norc --noprofile -i";
    if (rootHasSysResource()) {
      run("chown", ["-R", `${LAB_USER}:`, dir]);
      shell = `sudo -u ${LAB_USER} ${shell}`;
    }
    shell = wrap(shell);
    this.tmux("new-session", "-d", "-s", "lab", "-x", "240", "-y", "50", "-c", dir, shell);
    for (let i = 1; i < count; i++)
      this.tmux("split-window", "-h", "-t", `lab:0.${i - 1}`, "-c", dir, shell);
  }

  /** tmux's name of pane PANE (0 is the left one). */
  private pane(pane: number): string {
    return `lab:0.${pane}`;
  }

  tmux(...args: string[]): string {
    const ran = run("tmux", ["-S", this.socket, ...args]);
    expect(ran.code, `tmux ${args.join(" ")}: ${ran.stderr}`).toBe(0);
    return ran.stdout;
  }

  screen(pane: number): string {
    return this.tmux("capture-pane", "-p", "-J", "-S", "-5000", "-t", this.pane(pane));
  }

  type(pane: number, line: string): void {
    this.tmux("send-keys", "-t", this.pane(pane), "-l", line);
    this.tmux("send-keys", "-t", this.pane(pane), "Enter");
  }

  keys(pane: number, key: string): void {
    this.tmux("send-keys", "-t", this.pane(pane), key);
  }

  /** The command running in the foreground of PANE ("bash" at the prompt). */
  foreground(pane: number): string {
    return this.tmux(
      "display-message",
      "-p",
      "-t",
      this.pane(pane),
      "#{pane_current_command}",
    ).trim();
  }

  async until(pane: number, what: string, test: (text: string) => boolean, ms = 60_000) {
    try {
      await waitFor(what, () => (test(this.screen(pane)) ? true : undefined), ms);
    } catch (e) {
      const tail = this.screen(pane).trimEnd().split("\n").slice(-15).join("\n");
      throw new Error(`${String(e)}; pane ${pane} ends with:\n${tail}`);
    }
  }

  /** Waits for the command typed in PANE to finish (its shell in the foreground again). */
  async idle(pane: number, what: string, ms = 120_000) {
    await waitFor(what, () => (this.foreground(pane) === "bash" ? true : undefined), ms);
  }

  /** Ctrl-C in PANE: waits for the PIDS it ends (WHAT names them), then for PANE's shell
   * (PROMPT names it). */
  async interrupt(pane: number, pids: number[], what: string, prompt: string) {
    this.keys(pane, "C-c");
    await waitFor(what, () => (pids.some((pid) => alive(pid)) ? undefined : true));
    await this.idle(pane, prompt);
  }

  /** The prompts on PANE's screen so far (`bash-5.2# `, at a line's start). */
  prompts(pane: number): number {
    return this.promptsIn(this.screen(pane));
  }

  private promptsIn(screen: string): number {
    return (screen.match(/^bash-[\d.]+[#$] /gm) ?? []).length;
  }

  /** Clears PANE's screen and scrollback (`clear`) and waits until the screen shows the one
   * prompt (a job's notice may follow it): a line typed before the screen is clear would be
   * counted against the old prompts. */
  async clear(pane: number) {
    this.type(pane, "clear");
    await this.until(pane, "a clear screen", (s) => this.promptsIn(s) === 1);
  }

  /** Types each line and waits for the next prompt: the line has run (a line typed while
   * sudo still runs would be swallowed). `after` runs once a line is done. */
  async typeAll(
    pane: number,
    lines: string[],
    after: (line: string) => Promise<void> | void = () => {},
    ms = 120_000,
  ) {
    for (const line of lines) {
      const before = this.prompts(pane);
      this.type(pane, line);
      await this.until(pane, `'${line}' to finish`, () => this.prompts(pane) > before, ms);
      await after(line);
    }
  }

  close(): void {
    const pid = Number(this.tmux("display-message", "-p", "-t", "lab", "#{pid}").trim());
    if (pid) process.kill(pid, "SIGTERM");
  }
}

/** A learner's seat for a test that types the guide: a fresh work directory (named after
 * PREFIX) holding PROGRAMS, the lab's programs copied there executable under their own names,
 * and COUNT panes whose shells start in it. */
export function learnerSeat(
  prefix: string,
  programs: string[],
  count: number,
): { work: string; t: Terminals } {
  const work = tempDir(prefix);
  for (const program of programs) {
    const copy = path.join(work, path.basename(program));
    fs.copyFileSync(program, copy);
    fs.chmodSync(copy, 0o755);
  }
  return { work, t: new Terminals(work, count) };
}

/** Leaves a learnerSeat: kills the processes the test started that still run (by PID, 0 for
 * none), closes the terminals and removes the work directory. */
export function leaveSeat(work: string | undefined, t: Terminals | undefined, pids: number[]) {
  for (const pid of pids) if (pid && alive(pid)) process.kill(pid, "SIGKILL");
  t?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
}
