/**
 * The original lab's steps, typed into real terminals (tmux, two windows) exactly as the
 * login message and the README's lab guide give them: start the counter as a shell job,
 * dump it from the other terminal, restore it there, and see it count on. Then the image
 * tour commands on that checkpoint.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import { alive, HOST, LAB, labEnv, run, tempDir, waitFor } from "./support/lab-helpers";

const LAB_USER = "ubuntu";
const SETUP = "run `sudo npm run setup:host` first";

/** CRIU needs CAP_SYS_RESOURCE to read the rlimits of another user's process. A root
 * without it (some sandboxes) can only dump its own processes, so there the terminals run
 * as root; on a lab host (EC2, VM) root has it and they run as the lab user. */
function rootHasSysResource(): boolean {
  const line = fs.readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s*([0-9a-f]+)/m);
  return line !== null && (BigInt(`0x${line[1]}`) & (1n << 24n)) !== 0n;
}

describe.skipIf(
  cannotRun("interactive lab", [
    needRoot(),
    needCommand("tmux"),
    needCommand("sudo"),
    needCommand(HOST.criu, SETUP),
  ]),
)("the lab's interactive steps in two terminals", () => {
  let work: string;
  let socket: string;
  let serverPid = 0;
  let counterPid = 0;
  let lastBeforeDump = -1;
  const tmux = (...args: string[]) => {
    const ran = run("tmux", ["-S", socket, ...args]);
    expect(ran.code, `tmux ${args.join(" ")}: ${ran.stderr}`).toBe(0);
    return ran.stdout;
  };
  const screen = (window: number) =>
    tmux("capture-pane", "-p", "-J", "-S", "-3000", "-t", `lab:${window}`);
  const type = (window: number, line: string) => {
    tmux("send-keys", "-t", `lab:${window}`, "-l", line);
    tmux("send-keys", "-t", `lab:${window}`, "Enter");
  };
  const until = async (window: number, what: string, test: (text: string) => boolean) => {
    try {
      await waitFor(`${what}`, () => (test(screen(window)) ? true : undefined), 60_000);
    } catch (e) {
      const tail = screen(window).trimEnd().split("\n").slice(-15).join("\n");
      throw new Error(`${String(e)}; window ${window} ends with:\n${tail}`);
    }
  };
  const counts = (text: string) =>
    [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

  beforeAll(() => {
    work = tempDir("interactive");
    socket = path.join(work, "tmux.sock");
    // This checkout's counter.py, which setup installs as ~ubuntu/counter.py.
    const lab = path.join(work, "lab");
    fs.mkdirSync(lab);
    fs.copyFileSync(LAB.counter, path.join(lab, "counter.py"));
    fs.chmodSync(path.join(lab, "counter.py"), 0o755);
    let shell = "bash --norc --noprofile -i";
    if (rootHasSysResource()) {
      run("chown", ["-R", `${LAB_USER}:`, lab]);
      shell = `sudo -u ${LAB_USER} ${shell}`;
    } else {
      console.warn(
        "interactive lab: root lacks CAP_SYS_RESOURCE here, so the terminals run as root",
      );
    }
    tmux("new-session", "-d", "-s", "lab", "-x", "200", "-y", "50", "-c", lab, shell);
    tmux("new-window", "-t", "lab", "-c", lab, shell);
    serverPid = Number(tmux("display-message", "-p", "-t", "lab", "#{pid}").trim());
  });

  afterAll(() => {
    if (counterPid && alive(counterPid)) process.kill(counterPid, "SIGKILL");
    if (serverPid) process.kill(serverPid, "SIGTERM");
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("1st terminal: ./counter.py & prints its PID and counts", async () => {
    type(0, "./counter.py &");
    await until(0, "Counter: 2", (text) => counts(text).includes(2));
    // The prompt may share the line: "bash-5.2# PID: 1234".
    counterPid = Number(screen(0).match(/PID: (\d+)$/m)?.[1]);
    expect(alive(counterPid)).toBe(true);
  });

  it("2nd terminal: sudo criu dump stops it and saves it in checkpoint_dir", async () => {
    type(1, "mkdir checkpoint_dir");
    type(1, `sudo criu dump -t ${counterPid} -D checkpoint_dir -v4 --shell-job`);
    // (Typing ahead while sudo runs would be swallowed: wait for CRIU's last words instead.)
    await until(1, "the end of the dump", (text) =>
      /Dumping (finished successfully|FAILED)/.test(text),
    );
    expect(screen(1)).toContain("Dumping finished successfully");
    await waitFor("the counter to be gone", () => (alive(counterPid) ? undefined : true));
    lastBeforeDump = Math.max(...counts(screen(0)));
    expect(fs.existsSync(path.join(work, "lab/checkpoint_dir/pstree.img"))).toBe(true);
  });

  it("2nd terminal: sudo criu restore brings it back with its PID, counting on", async () => {
    type(1, "clear");
    type(1, "sudo criu restore -D checkpoint_dir -v4 --shell-job");
    await until(1, `Counter: ${lastBeforeDump + 2}`, (text) =>
      counts(text).includes(lastBeforeDump + 2),
    );
    const restored = screen(1);
    expect(restored).toContain("Restore finished successfully");
    // The first number printed after the restore is the next one: nothing lost, no restart.
    expect(counts(restored)[0]).toBe(lastBeforeDump + 1);
    expect(alive(counterPid)).toBe(true);
    expect(fs.readFileSync(`/proc/${counterPid}/cmdline`, "utf8")).toContain("counter.py");
  });

  it("Ctrl-C in the 2nd terminal ends the restored counter quietly", async () => {
    tmux("send-keys", "-t", "lab:1", "C-c");
    await waitFor("the restored counter to end", () => (alive(counterPid) ? undefined : true));
    // Back at a prompt, with no Python traceback on the screen.
    type(1, "echo ended-$((40 + 2))");
    await until(1, "the prompt", (text) => text.includes("ended-42"));
    expect(screen(1)).not.toMatch(/Traceback|KeyboardInterrupt/);
  });

  it("the image tour: criu-lab analyze and crit read the checkpoint", () => {
    const dir = path.join(work, "lab/checkpoint_dir");
    const analyze = run(LAB.command, ["analyze", dir, "--json"], { env: labEnv() });
    expect(analyze.code, analyze.stderr).toBe(0);
    const names = JSON.parse(analyze.stdout).files.map((f: { name: string }) => f.name);
    // A --shell-job dump also saves the terminal it ran in.
    expect(names).toEqual(
      expect.arrayContaining(["pstree.img", `core-${counterPid}.img`, "tty-info.img"]),
    );
    const pstree = JSON.parse(run(HOST.crit, ["show", path.join(dir, "pstree.img")]).stdout);
    expect(pstree.entries[0].pid).toBe(counterPid);
    const ps = run(HOST.crit, ["x", dir, "ps"]);
    expect(ps.stdout).toMatch(new RegExp(`^\\s*${counterPid}\\s+\\d+\\s+\\d+\\s+python3`, "m"));
  });
});
