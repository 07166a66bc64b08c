/**
 * Real terminals for the README's typed lab steps: a tmux session with one window per
 * terminal, each a bash in a work directory. Lines are typed as the README gives them and
 * the screens are read back. As the lab user where root may dump another user's process,
 * as root where it may not (this sandbox: no CAP_SYS_RESOURCE).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { run, waitFor } from "./lab-helpers";

export const LAB_USER = "ubuntu";

/** CRIU needs CAP_SYS_RESOURCE to read the rlimits of another user's process. */
export function rootHasSysResource(): boolean {
  const line = fs.readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s*([0-9a-f]+)/m);
  return line !== null && (BigInt(`0x${line[1]}`) & (1n << 24n)) !== 0n;
}

export class Terminals {
  private readonly socket: string;
  constructor(
    readonly dir: string,
    count: number,
  ) {
    this.socket = path.join(dir, "tmux.sock");
    let shell = "bash --norc --noprofile -i";
    if (rootHasSysResource()) {
      run("chown", ["-R", `${LAB_USER}:`, dir]);
      shell = `sudo -u ${LAB_USER} ${shell}`;
    }
    this.tmux("new-session", "-d", "-s", "lab", "-x", "200", "-y", "50", "-c", dir, shell);
    for (let i = 1; i < count; i++) this.tmux("new-window", "-t", "lab", "-c", dir, shell);
  }

  tmux(...args: string[]): string {
    const ran = run("tmux", ["-S", this.socket, ...args]);
    expect(ran.code, `tmux ${args.join(" ")}: ${ran.stderr}`).toBe(0);
    return ran.stdout;
  }

  screen(window: number): string {
    return this.tmux("capture-pane", "-p", "-J", "-S", "-5000", "-t", `lab:${window}`);
  }

  type(window: number, line: string): void {
    this.tmux("send-keys", "-t", `lab:${window}`, "-l", line);
    this.tmux("send-keys", "-t", `lab:${window}`, "Enter");
  }

  keys(window: number, key: string): void {
    this.tmux("send-keys", "-t", `lab:${window}`, key);
  }

  /** The command running in the foreground of WINDOW ("bash" at the prompt). */
  foreground(window: number): string {
    return this.tmux(
      "display-message",
      "-p",
      "-t",
      `lab:${window}`,
      "#{pane_current_command}",
    ).trim();
  }

  async until(window: number, what: string, test: (text: string) => boolean, ms = 60_000) {
    try {
      await waitFor(what, () => (test(this.screen(window)) ? true : undefined), ms);
    } catch (e) {
      const tail = this.screen(window).trimEnd().split("\n").slice(-15).join("\n");
      throw new Error(`${String(e)}; window ${window} ends with:\n${tail}`);
    }
  }

  /** Waits for the command typed in WINDOW to finish (its shell in the foreground again). */
  async idle(window: number, what: string, ms = 120_000) {
    await waitFor(what, () => (this.foreground(window) === "bash" ? true : undefined), ms);
  }

  close(): void {
    const pid = Number(this.tmux("display-message", "-p", "-t", "lab", "#{pid}").trim());
    if (pid) process.kill(pid, "SIGTERM");
  }
}
