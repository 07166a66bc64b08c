/**
 * The auto-stop decision (`criu-lab autostop`, which a systemd timer runs every minute on the
 * host) with its clock, SSH session count, boot time and state file injected: it must decide
 * right, remember sessions, and never power this machine off (every run here is --dry-run).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import { run, tempDir, HOST_DIR } from "./support/lab-helpers";

const CRIU_LAB = path.join(HOST_DIR, "criu-lab");
const BOOT = 1_700_000_000;
const MIN = 60;
const autostop = (...args: string[]) =>
  run("/usr/bin/python3", [CRIU_LAB, "autostop", "--dry-run", ...args]);

describe.skipIf(
  cannotRun("auto-stop", [
    needCommand("ss", "apt-get install iproute2"),
    needCommand("/usr/bin/python3"),
  ]),
)("criu-lab autostop", () => {
  let dir: string;
  let state: string;
  beforeEach(() => {
    dir = tempDir("autostop");
    state = path.join(dir, "state", "last-session");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const decide = (minutes: number, now: number, sessions: number) => {
    const ran = autostop(
      ...["--minutes", String(minutes), "--now", String(now), "--sessions", String(sessions)],
      ...["--boot-time", String(BOOT), "--state", state],
    );
    expect(ran.code, ran.stderr).toBe(0);
    return ran.stdout.trim();
  };

  it("stays up until the idle limit since boot, then decides to power off", () => {
    expect(decide(30, BOOT + 29 * MIN, 0)).toBe("stay: no SSH session for 29 minute(s) of 30");
    expect(decide(30, BOOT + 30 * MIN, 0)).toBe(
      "poweroff: no SSH session for 30 minute(s) (limit 30)",
    );
  });

  it("an open session keeps it up and restarts the idle clock", () => {
    expect(decide(30, BOOT + 100 * MIN, 2)).toBe("stay: 2 SSH session(s) open");
    expect(fs.readFileSync(state, "utf8").trim()).toBe(String(BOOT + 100 * MIN));
    expect(decide(30, BOOT + 129 * MIN, 0)).toBe("stay: no SSH session for 29 minute(s) of 30");
    expect(decide(30, BOOT + 130 * MIN, 0)).toMatch(/^poweroff: /);
  });

  it("counts from this boot when the last session was before it (a restarted host)", () => {
    fs.mkdirSync(path.dirname(state), { recursive: true });
    fs.writeFileSync(state, `${BOOT - 10 * 24 * 60 * MIN}\n`);
    expect(decide(30, BOOT + 5 * MIN, 0)).toBe("stay: no SSH session for 5 minute(s) of 30");
  });

  it("never powers off with 0 minutes", () => {
    expect(decide(0, BOOT + 1000 * MIN, 0)).toBe("stay: auto-stop is disabled (0 minutes)");
  });

  it("counts this machine's real SSH connections when no count is injected", () => {
    // Only the session source and boot time are real here; with 10^6 minutes it must stay.
    const ran = autostop("--minutes", "1000000", "--state", state, "--json");
    expect(ran.code, ran.stderr).toBe(0);
    const result = JSON.parse(ran.stdout);
    expect(result.sessions).toBeGreaterThanOrEqual(0);
    expect(result.decision).toMatch(
      /^stay: (\d+ SSH session\(s\) open|no SSH session for \d+ minute)/,
    );
  });

  it.each([
    [["--now", "1"], "the following arguments are required: --minutes"],
    [["--minutes", "ten"], "argument --minutes: 'ten' is not a whole number"],
    [["--minutes", "5", "--sessions", "-1"], "argument --sessions: '-1' is not a whole number"],
    [["--minutes", "5", "--reboot"], "unrecognized arguments: --reboot"],
  ])("rejects %j with exit 2", (args, message) => {
    const ran = autostop(...args);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain(message);
  });
});
