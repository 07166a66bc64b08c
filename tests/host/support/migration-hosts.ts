/**
 * Two lab "hosts" for the migration tests (netlab/netns.ts): a work directory the
 * destination's sshd cannot see (an empty tmpfs over it there), so what a process needs
 * there arrives only if migrate carries it; the counter copied into it; counters (or
 * programs that count as it does) started detached on the source, each in its own directory, and at the end only those ended, by PID.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { createLabPair, type LabPair } from "../../../netlab/netns";
import { alive, HOST_DIR, tempDir, waitFor } from "./lab-helpers";
import { createTestUser, type TestUser } from "./sshd";

/** The destination's address on the pair's link (netlab/netns.ts). */
export const DST = "10.77.0.2";
/** The host command of this checkout, run on the source over its sshd as a learner would. */
export const LAB_COMMAND = path.join(HOST_DIR, "criu-lab");

export interface MigrationHosts {
  dir: string;
  /** Hidden on the destination: the counter and its logs live here. */
  work: string;
  pair: LabPair;
  /** A test user both hosts let in, when asked for. */
  user?: TestUser;
  /** PIDs of the counters started (here, or restored there: one kernel), for the end. */
  started: number[];
  /** The counter (or PROGRAM, a python script under work that counts as it does: "Counter: N"
   * lines), detached, in work/NAME, once it has counted to 3. */
  startCounter(name: string, program?: string): Promise<{ pid: number; log: string }>;
  /** Ends the counters started (by PID, if still a counter), the pair, the user, the dir. */
  remove(): Promise<void>;
}

/** The last "Counter: N" of a counter's log text. */
export const lastCount = (text: string) =>
  Number([...text.matchAll(/^Counter: (\d+)$/gm)].pop()?.[1]);

/** The network namespace of the pair's host `role`, as /proc/PID/ns/net names it. */
export const netnsOf = (role: "src" | "dst") =>
  `net:[${fs.statSync(`/run/netns/clmig-${process.pid}-${role}`).ino}]`;

/** The counter PID is still on the source (its namespace), not frozen, and counting on. */
export async function stillCountsHere(pid: number, log: string): Promise<void> {
  expect(alive(pid)).toBe(true);
  expect(fs.readFileSync(`/proc/${pid}/status`, "utf8")).not.toMatch(/^State:\s+[tT]/m);
  expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).toBe(netnsOf("src"));
  const before = lastCount(fs.readFileSync(log, "utf8"));
  await waitFor("another count here", () =>
    lastCount(fs.readFileSync(log, "utf8")) > before ? true : undefined,
  );
}

/** A `--json` run's one line of output, parsed (the run's stderr shown if there are more). */
export function oneJsonLine<T>(ran: { stdout: string; stderr: string }): T {
  expect(ran.stdout.trim().split("\n"), ran.stderr).toHaveLength(1);
  return JSON.parse(ran.stdout) as T;
}

export async function migrationHosts(
  prefix: string,
  options: { user?: string } = {},
): Promise<MigrationHosts> {
  const dir = tempDir(prefix);
  fs.chmodSync(dir, 0o755); // sshd reads a test user's authorized_keys as that user
  const work = path.join(dir, "work");
  fs.mkdirSync(work, { mode: 0o755 });
  fs.copyFileSync(path.join(HOST_DIR, "counter.py"), path.join(work, "counter.py"));
  const user = options.user ? createTestUser(options.user, dir) : undefined;
  const started: number[] = [];
  const pair = await createLabPair({ dir, hide: [work], users: user ? [user.name] : [] });
  return {
    dir,
    work,
    pair,
    user,
    started,
    async startCounter(name, program = "counter.py --interval 0.2") {
      const runDir = path.join(work, name);
      const ran = pair.source.ssh(
        `mkdir -p ${runDir} && cd ${runDir} && { setsid /usr/bin/python3 ${work}/${program} </dev/null >counter.log 2>&1 & echo $!; }`,
      );
      expect(ran.code, ran.stderr).toBe(0);
      const pid = Number(ran.stdout.trim());
      started.push(pid);
      const log = path.join(runDir, "counter.log");
      await waitFor("the counter to count to 3", () =>
        fs.existsSync(log) && /^Counter: 3$/m.test(fs.readFileSync(log, "utf8")) ? true : undefined,
      );
      return { pid, log };
    },
    async remove() {
      for (const pid of started) {
        if (alive(pid) && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(work)) {
          process.kill(pid, "SIGKILL");
        }
      }
      await pair.remove();
      user?.remove();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
