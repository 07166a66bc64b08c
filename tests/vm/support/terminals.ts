/**
 * Real terminals for the VM tier: a private tmux server on this host whose windows each run
 * one command (here `ssh -tt` into the guest, so the guest's sshd gives each session its own
 * pty, as a learner's two SSH terminals). Tests type into a window and read its screen, as a
 * person would, never a log.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run } from "../../host/support/lab-helpers";

export class Terminals {
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "criu-lab-terminals-"));
  private readonly socket = path.join(this.dir, "tmux.sock");
  private serverPid = 0;

  private tmux(...args: string[]): string {
    const ran = run("tmux", ["-S", this.socket, "-f", "/dev/null", ...args]);
    if (ran.code !== 0) throw new Error(`tmux ${args.join(" ")}: ${ran.stderr.trim()}`);
    return ran.stdout;
  }

  /** Opens one window per command (window 0, 1, ...), 200x50 like a roomy terminal. A window
   * whose command ends stays on screen, so a dropped session's last words can be read. */
  open(commands: string[][]): void {
    const quote = (argv: string[]) => argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    this.tmux("new-session", "-d", "-s", "t", "-x", "200", "-y", "50", quote(commands[0]));
    this.serverPid = Number(this.tmux("display-message", "-p", "-t", "t", "#{pid}").trim());
    this.tmux("set-option", "-g", "remain-on-exit", "on");
    for (const argv of commands.slice(1)) this.tmux("new-window", "-t", "t:", quote(argv));
  }

  /** What window `w` shows, with its scrollback (wrapped lines joined). */
  screen(w: number): string {
    return this.tmux("capture-pane", "-p", "-J", "-S", "-5000", "-t", `t:${w}`);
  }

  /** Types `line` into window `w` and presses Enter. */
  type(w: number, line: string): void {
    this.tmux("send-keys", "-t", `t:${w}`, "-l", line);
    this.tmux("send-keys", "-t", `t:${w}`, "Enter");
  }

  /** Sends a key such as C-c to window `w`. */
  key(w: number, key: string): void {
    this.tmux("send-keys", "-t", `t:${w}`, key);
  }

  /**
   * Waits until window `w`'s screen passes `test` (a guard against hanging, not a timed
   * assertion: under software emulation the guest is slow); fails with the screen's end.
   */
  async until<T>(
    w: number,
    what: string,
    test: (screen: string) => T | undefined | false,
    timeoutMs: number,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.screen(w);
      const found = test(text);
      if (found !== undefined && found !== false) return found;
      if (Date.now() > deadline) {
        const tail = text.trimEnd().split("\n").slice(-20).join("\n");
        throw new Error(`terminal ${w + 1}: gave up waiting for ${what}; it shows:\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Ends the tmux server this object started (by its PID) and removes its socket. */
  close(): void {
    if (this.serverPid > 0) {
      try {
        process.kill(this.serverPid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
