/**
 * Shared helpers of the instance-side host tests (cloud-init/, host/, scripts/): run a command and
 * keep its exit code and output, make temp dirs, find the CRIU release tarball.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect, it } from "vitest";
import { ExitCode } from "../../../contract/checks";
import { run, type Ran } from "../../../netlab/run";

export const REPO = path.resolve(__dirname, "../../..");
export const CLOUD_INIT = path.join(REPO, "cloud-init");
/** The host command (criu-lab, its package) and the lab's programs. */
export const HOST_DIR = path.join(REPO, "host");

/** What the lab installs on a host (docs/design.md "Contracts"). */
export const HOST = {
  criu: "/usr/local/sbin/criu",
  crit: "/usr/local/bin/crit",
  criuLab: "/usr/local/bin/criu-lab",
  labDir: "/usr/local/lib/criu-lab",
} as const;

/** The host command and counter of this checkout (the launcher finds its package beside its
 * real path), so the tests exercise the code under review; setup installs these same files.
 * It still runs the installed CRIU and crit (HOST). */
export const LAB = {
  command: path.join(HOST_DIR, "criu-lab"),
  counter: path.join(HOST_DIR, "counter.py"),
  trainer: path.join(HOST_DIR, "trainer.py"),
} as const;

/** Environment for LAB.command: its own counter and, if given, its own log dir. */
export function labEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, CRIU_LAB_COUNTER: LAB.counter, ...extra };
}

export { run, type Ran, waitFor } from "../../../netlab/run";

/** `criu-lab scenario run NAME ARGS` of this checkout with ENV() (its log dir, its RAM dir ...)
 * and the caller's EXTRA variables over this process's environment. */
export function scenarioRunner(name: string, env: () => Record<string, string>) {
  return (args: string[], extra: Record<string, string> = {}): Ran =>
    run(LAB.command, ["scenario", "run", name, ...args], {
      env: { ...process.env, ...env(), ...extra },
    });
}

/** One of the lab's programs in host/ (game_client.py, trainer.py ...), run with ARGS. */
export function hostProgram(name: string, args: string[]): Ran {
  return run("/usr/bin/python3", [path.join(HOST_DIR, name), ...args]);
}

/** Writes FILE, a shell script that runs LINES ("$@" are its arguments) and then REAL with
 * them: a fault made on purpose in front of a real program. Returns FILE. */
export function wrapProgram(file: string, lines: string[], real: string): string {
  fs.writeFileSync(file, ["#!/bin/sh", ...lines, `exec ${real} "$@"`, ""].join("\n"), {
    mode: 0o755,
  });
  return file;
}

/** A fault in CRIU made on purpose, for CRIU_LAB_CRIU: DIR/criu, which runs `lines` and then
 * the real CRIU. Returns its path. */
export function faultyCriu(dir: string, lines: string[]): string {
  return wrapProgram(path.join(dir, "criu"), lines, HOST.criu);
}

/** FN given a faultyCriu made of LINES in a temp dir of its own (PREFIX), removed after FN. */
export function withFaultyCriu(
  prefix: string,
  lines: string[],
  fn: (fake: string, dir: string) => void,
): void {
  const dir = tempDir(prefix);
  try {
    fn(faultyCriu(dir, lines), dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh temp dir; the caller removes it (fs.rmSync(dir, { recursive: true })). */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `criu-lab-${prefix}-`));
}

/** The sha256 and path of CRIU's release tarball, fetched (or found in .cache/criu) by
 * scripts/fetch-criu-source.sh. */
export function criuTarball(): { path: string; sha256: string } {
  const ran = run("bash", [path.join(REPO, "scripts/fetch-criu-source.sh")]);
  if (ran.code !== 0) {
    throw new Error(`fetch-criu-source.sh exited ${ran.code}: ${ran.stderr}`);
  }
  const [sha256, file] = ran.stdout.trim().split(/\s+/);
  return { path: file, sha256 };
}

/** A local git repository at DIR made from CRIU's release tarball, committed and tagged
 * v4.2.1 as upstream tags it: the git source path without GitHub. Returns its commit. */
export function criuReleaseRepo(dir: string): string {
  fs.mkdirSync(dir);
  const untar = run("tar", ["-xf", criuTarball().path, "-C", dir, "--strip-components=1"]);
  if (untar.code !== 0) throw new Error(`tar exited ${untar.code}: ${untar.stderr}`);
  const who = {
    GIT_AUTHOR_NAME: "t",
    GIT_AUTHOR_EMAIL: "t@t",
    GIT_COMMITTER_NAME: "t",
    GIT_COMMITTER_EMAIL: "t@t",
  };
  const git = (...args: string[]) => {
    const ran = run("git", ["-C", dir, ...args], { env: { ...process.env, ...who } });
    if (ran.code !== 0) throw new Error(`git ${args.join(" ")} exited ${ran.code}: ${ran.stderr}`);
    return ran.stdout.trim();
  };
  git("init", "-q");
  git("add", "-A");
  git("commit", "-q", "-m", "release source");
  git("tag", "-a", "v4.2.1", "-m", "v4.2.1");
  return git("rev-parse", "HEAD");
}

/** True while a process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** One test per CASES row ([flags, message]): `LAB(flags --json)` exits 2 with MESSAGE (which
 * names the flag) on stderr, and starts nothing: no new run directory in LOGS(). */
export function itRefusesBadFlags(
  cases: Array<[string[], string]>,
  lab: (args: string[]) => Ran,
  logs: () => string,
): void {
  it.each(cases)("bad flags %j: exit 2 naming the flag, nothing started", (args, message) => {
    const before = fs.readdirSync(logs());
    const ran = lab([...args, "--json"]);
    expect(ran.code).toBe(ExitCode.usage);
    expect(ran.stderr).toContain(message);
    expect(fs.readdirSync(logs())).toEqual(before);
  });
}
