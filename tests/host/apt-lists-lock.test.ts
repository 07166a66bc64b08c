/**
 * install-criu.sh's apt step on a first boot, with the real apt-get on a
 * scratch apt state (APT_CONFIG: its own Dir::State::Lists, cache and an empty source list,
 * so nothing is downloaded and the machine's own lock is never touched): `apt-get update`
 * fails at once while another process holds the package lists lock, so the step waits for
 * it (bounded, saying who holds it); and apt runs with needrestart suspended.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import { alive, CLOUD_INIT, run, tempDir, waitFor } from "./support/lab-helpers";

const INSTALLER = path.join(CLOUD_INIT, "install-criu.sh");

describe.skipIf(
  cannotRun("apt lists lock", [needCommand("apt-get"), needCommand("/usr/bin/python3")]),
)("install-criu.sh and apt's package lists lock", () => {
  let work: string;
  let lists: string;
  let env: NodeJS.ProcessEnv;
  let holder: ChildProcess | undefined;
  beforeAll(() => {
    work = tempDir("apt-lock");
    lists = path.join(work, "lists");
    fs.mkdirSync(path.join(lists, "partial"), { recursive: true });
    fs.mkdirSync(path.join(work, "cache"));
    fs.writeFileSync(path.join(work, "sources.list"), "");
    const conf = path.join(work, "apt.conf");
    fs.writeFileSync(
      conf,
      [
        `Dir::State::Lists "${lists}/";`,
        `Dir::Cache "${work}/cache/";`,
        `Dir::Etc::SourceList "${work}/sources.list";`,
        'Dir::Etc::SourceParts "/dev/null";',
        // What apt-get's own environment is, as needrestart's apt hook would see it.
        `APT::Update::Pre-Invoke { "env > ${work}/apt-env"; };`,
        "",
      ].join("\n"),
    );
    env = { ...process.env, APT_CONFIG: conf };
  });
  afterEach(() => {
    if (holder?.pid && alive(holder.pid)) holder.kill("SIGKILL");
    holder = undefined;
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  /** A process that holds the lists lock as apt does (fcntl), for SECONDS. */
  const hold = async (seconds: number) => {
    const code = [
      "import fcntl, sys, time",
      `f = open("${lists}/lock", "w")`,
      "fcntl.lockf(f, fcntl.LOCK_EX)",
      'print("held", flush=True)',
      `time.sleep(${seconds})`,
    ].join("\n");
    holder = spawn("/usr/bin/python3", ["-c", code], { stdio: ["ignore", "pipe", "inherit"] });
    let said = "";
    holder.stdout!.on("data", (d: Buffer) => (said += d.toString()));
    await waitFor("the lock to be held", () => (said.includes("held") ? true : undefined));
    return holder.pid!;
  };
  /** Runs one step of install-criu.sh (sourced), logging to the scratch dir. */
  const step = (call: string) =>
    run("bash", ["-c", `source "${INSTALLER}"; LOG="${work}/install.log"; ${call}`], { env });

  it("apt-get update itself fails at once on the held lock (why the wait is needed)", async () => {
    const pid = await hold(60);
    const ran = run("apt-get", ["update"], { env });
    expect(ran.code).not.toBe(0);
    expect(ran.stderr).toContain(`Could not get lock ${lists}/lock. It is held by process ${pid}`);
  });

  it("waits for the lock, saying who holds it, and gives up after its bound", async () => {
    const pid = await hold(60);
    const ran = step("wait_for_apt_lists 2");
    expect(ran.code).toBe(1);
    expect(ran.stdout).toContain(
      `waiting up to 2 s for PID ${pid} (python3) to release apt's package lists lock ${lists}/lock`,
    );
    expect(ran.stdout).toContain(`still held by PID ${pid} after 2 s`);
    expect(alive(pid)).toBe(true); // it never took the lock from its holder
  });

  it("apt-get update runs once the holder lets go, with needrestart suspended", async () => {
    const pid = await hold(2);
    const ran = step("apt_retry update");
    expect(ran.code, ran.stdout + ran.stderr).toBe(0);
    expect(ran.stdout).toContain(`waiting up to 600 s for PID ${pid}`);
    expect(ran.stdout).not.toContain("failed");
    const aptEnv = fs.readFileSync(path.join(work, "apt-env"), "utf8");
    expect(aptEnv).toMatch(/^NEEDRESTART_SUSPEND=1$/m);
    expect(aptEnv).toMatch(/^NEEDRESTART_MODE=l$/m);
    expect(aptEnv).toMatch(/^DEBIAN_FRONTEND=noninteractive$/m);
  });

  it("does not wait, nor say anything, when nobody holds the lock", () => {
    const ran = step("wait_for_apt_lists 2");
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe("");
  });
});
