/**
 * The checkout's `criu-lab guide` and `criu-lab progress`, for real: the guide of docs/, whole
 * and by section; a counter checkpointed and restored by hand with the installed CRIU into a
 * learner's home, which `progress` finds and records in a root-owned store; a passing `demo`
 * recorded, and not when the verifier runs it (CRIU_LAB_PROGRESS=off, as contract/checks.ts
 * sends it). The store and the home are temporary (CRIU_LAB_STATE_DIR, CRIU_LAB_HOME).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { parseProgress } from "../../verify/progress";
import { cannotRun } from "../support/requirements";
import { alive, HOST, LAB, labEnv, REPO, run, tempDir, waitFor } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

const GUIDE = fs.readFileSync(path.join(REPO, "docs", "lab-guide.md"), "utf8");

describe("criu-lab guide (the checkout's)", () => {
  const guide = (...args: string[]) => run(LAB.command, ["guide", ...args], { env: labEnv() });

  it("prints docs/lab-guide.md whole", () => {
    const ran = guide();
    expect(ran.code, ran.stderr).toBe(ExitCode.ok);
    expect(ran.stdout).toBe(GUIDE.replace(/\n+$/, "\n"));
  });

  it("prints one section, from its heading to the next of its level, by heading words", () => {
    const ran = guide("Players", "CONNECTED");
    expect(ran.code, ran.stderr).toBe(ExitCode.ok);
    const start = GUIDE.indexOf("## Players stay connected");
    const end = GUIDE.indexOf("\n## ", start + 1);
    expect(ran.stdout).toBe(`${GUIDE.slice(start, end).replace(/\n+$/, "")}\n`);
  });

  it("an unknown section exits 2 listing every section", () => {
    const ran = guide("kubernetes");
    expect(ran.code).toBe(ExitCode.usage);
    expect(ran.stdout).toContain("no section matches 'kubernetes'");
    const headings = [...GUIDE.matchAll(/^##+ (.+)$/gm)].map((m) => m[1] as string);
    expect(headings.length).toBeGreaterThan(5);
    for (const h of headings) expect(ran.stdout).toContain(h);
  });
});

const skip = cannotRun("criu-lab progress", needLabHost("criu", "crit"));
describe.skipIf(skip)("criu-lab progress (the checkout's) with real CRIU", () => {
  let work: string;
  let home: string;
  let state: string;
  let counter = 0;
  beforeAll(async () => {
    work = tempDir("progress");
    home = path.join(work, "home");
    state = path.join(work, "state");
    fs.mkdirSync(home);
    // A counter started detached, as a learner's would be, dumped into the home's
    // checkpoint_dir and restored from it, as the guide's hands-on does with --shell-job.
    const log = path.join(home, "counter.log");
    const out = fs.openSync(log, "w");
    const child = spawn("/usr/bin/python3", [LAB.counter, "--interval", "0.2"], {
      cwd: home,
      detached: true,
      stdio: ["ignore", out, out],
    });
    fs.closeSync(out);
    child.unref();
    counter = child.pid!;
    await waitFor("the counter", () =>
      fs.readFileSync(log, "utf8").includes("Counter: 1\n") ? true : undefined,
    );
    const images = path.join(home, "checkpoint_dir");
    fs.mkdirSync(images);
    const dump = run(HOST.criu, ["dump", "-t", String(counter), "-D", images, "-o", "dump.log"]);
    expect(dump.code, dump.stderr).toBe(0);
    // Gone and reaped (by this process, its parent): a restore needs its PID free.
    await waitFor("the dumped counter to be reaped", () =>
      fs.existsSync(`/proc/${counter}`) ? undefined : true,
    );
    // A dump that was never restored is no evidence.
    fs.cpSync(images, path.join(home, "ckpt-unrestored"), { recursive: true });
    const restore = run(HOST.criu, ["restore", "-d", "-D", images, "-o", "restore.log"]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(alive(counter)).toBe(true);
  });
  afterAll(() => {
    if (counter && alive(counter)) process.kill(counter, "SIGKILL"); // the restored counter
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}) =>
    labEnv({ CRIU_LAB_STATE_DIR: state, CRIU_LAB_HOME: home, ...extra });
  const progress = () => run(LAB.command, ["progress", "--json"], { env: env() });
  const store = () => path.join(state, "progress.json");

  it("finds the restore in the learner's home and keeps it in a root-owned store", () => {
    const ran = progress();
    expect(ran.code, ran.stderr).toBe(ExitCode.ok);
    const { done } = parseProgress(ran.stdout);
    expect(Object.keys(done)).toEqual(["counter"]);
    expect(done.counter?.how).toBe(
      `restore of counter.py found in ${path.join(home, "checkpoint_dir")}`,
    );
    const stat = fs.statSync(store());
    expect(stat.uid).toBe(0);
    expect((stat.mode & 0o777).toString(8)).toBe("644");
    expect(JSON.parse(fs.readFileSync(store(), "utf8")).exercises.counter.how).toBe(
      done.counter?.how,
    );
    const human = run(LAB.command, ["progress"], { env: env() }).stdout;
    expect(human).toMatch(/^ {2}✓ counter +checkpoint and restore the counter by hand: /m);
    expect(human).toMatch(/^ {2}· demo +the one-command demo: criu-lab guide /m);
  });

  it("records a passing demo, and not the verifier's (CRIU_LAB_PROGRESS=off)", () => {
    const logs = path.join(work, "logs");
    const demo = (extra: Record<string, string> = {}) =>
      run(LAB.command, ["demo", "--json"], { env: env({ CRIU_LAB_LOG_DIR: logs, ...extra }) });
    const verifiers = demo({ CRIU_LAB_PROGRESS: "off" });
    expect(verifiers.code, verifiers.stdout + verifiers.stderr).toBe(ExitCode.ok);
    expect(parseProgress(progress().stdout).done.demo).toBeUndefined();

    const learners = demo();
    expect(learners.code, learners.stdout + learners.stderr).toBe(ExitCode.ok);
    const { done } = parseProgress(progress().stdout);
    expect(done.demo?.how).toBe("sudo criu-lab demo passed");
    expect(Object.keys(done).sort()).toEqual(["counter", "demo"]);
  });
});
