/**
 * Runs the verifier CLI as a real subprocess (the `criu-lab-verify` bin, as CI runs it) and
 * collects its exit code and output. A safety net kills it by PID if it outlives `hangAfterMs`
 * and reports `hung`, so a CLI that hangs fails its test instead of stalling the suite. And
 * the one set-up of the verifier's test hosts (sshdWorkspaceForTests, sshdHostForTests) and a
 * stack's outputs as the CLI reads them (fakePulumi, writeStack, seatHost).
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { TestSshd, TestUser, createTestUser, removeWrappers, startSshd } from "./sshd";

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  hung: boolean;
}

const BIN = resolve(__dirname, "../../../bin/criu-lab-verify.js");

/** `env` adds to (or overrides) this process's environment, e.g. a PATH with a `pulumi` first. */
export function runVerifyCli(
  args: string[],
  hangAfterMs: number,
  env: NodeJS.ProcessEnv = {},
): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    let stdout = "";
    let stderr = "";
    let hung = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, hangAfterMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, hung });
    });
  });
}

/** Lines of a private key long enough to be key material; none may appear in any output. */
export function keyMaterial(privateKey: string): string[] {
  return privateKey
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length >= 16 && !l.startsWith("-----"));
}

/** The CLI flags naming one test host: its sshd on 127.0.0.1 (host key pinned) and its user. */
export function cliTargetArgs(sshd: TestSshd, user: TestUser): string[] {
  return [
    "--host",
    "127.0.0.1",
    "--port",
    String(sshd.port),
    "--user",
    user.name,
    "--key-file",
    user.key.path,
    "--host-key",
    sshd.hostPublicKey,
  ];
}

export interface SshdWorkspace {
  /** The block's directory (mode 755: sshd reads the authorized_keys below it as the user). */
  dir: string;
  /** A new directory `name` below dir. */
  sub(name: string): string;
  /** A test user (its files below dir), removed after the block. */
  user(name: string): TestUser;
  /** An sshd on 127.0.0.1 letting `user` in with `authorizedKey`, stopped after the block. */
  sshd(user: string, authorizedKey: string): Promise<TestSshd>;
}

/**
 * The one set-up of the verifier's test hosts: a directory for a describe block, in which
 * `ready` makes its users and sshds (before the block); after it, every sshd made is stopped
 * and every user removed. When a test failed, `dir` (the sshd logs, their configs, the keys)
 * is kept and said where; `atEnd` runs first, told whether one failed. Returns the block's
 * view of `dir`, for its tests.
 */
export function sshdWorkspaceForTests(
  options: { dirPrefix: string; what: string; atEnd?: (failed: boolean) => void },
  ready: (workspace: SshdWorkspace) => void | Promise<void>,
): { readonly dir: string } {
  let dir: string | undefined;
  const users: TestUser[] = [];
  const sshds: TestSshd[] = [];
  let failed = false;
  beforeAll(async () => {
    const root = mkdtempSync(join(tmpdir(), options.dirPrefix));
    dir = root;
    chmodSync(root, 0o755);
    const sub = (name: string) => {
      const d = join(root, name);
      mkdirSync(d);
      return d;
    };
    await ready({
      dir: root,
      sub,
      user(name) {
        const user = createTestUser(name, sub(`user-${name}`));
        users.push(user);
        return user;
      },
      async sshd(user, authorizedKey) {
        const sshd = await startSshd({ dir: sub(`sshd-${sshds.length + 1}`), user, authorizedKey });
        sshds.push(sshd);
        return sshd;
      },
    });
  });
  beforeEach(({ onTestFailed }) =>
    onTestFailed(() => {
      failed = true;
    }),
  );
  afterAll(async () => {
    options.atEnd?.(failed);
    for (const sshd of sshds) await sshd.stop();
    for (const user of users) user.remove();
    if (!dir) return;
    if (failed) {
      console.warn(`${options.what} failed: sshd logs, configs and keys kept in ${dir}`);
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return {
    get dir() {
      if (dir === undefined) throw new Error(`${options.what}: no directory before the block`);
      return dir;
    },
  };
}

export interface SshdHost {
  dir: string;
  user: TestUser;
  sshd: TestSshd;
}

/**
 * One test user and its own sshd for a describe block of verifier tests (a workspace of one),
 * handed to `ready` before the block; the user's wrappers are removed after each test.
 */
export function sshdHostForTests(
  options: { user: string; dirPrefix: string; what: string; atEnd?: (failed: boolean) => void },
  ready: (host: SshdHost) => void,
): void {
  let user: TestUser | undefined;
  sshdWorkspaceForTests(options, async (workspace) => {
    user = workspace.user(options.user);
    const sshd = await workspace.sshd(options.user, user.key.publicKeyOpenssh);
    ready({ dir: workspace.dir, user, sshd });
  });
  afterEach(() => {
    if (user) removeWrappers(user);
  });
}

/** A `pulumi` for the CLI's `--stack NAME`, first on the PATH of the env returned: it insists
 * on the exact arguments (the pulumi CLI is not on this machine) and prints `DIR/NAME.json`,
 * which `writeStack` writes. */
export function fakePulumi(dir: string): NodeJS.ProcessEnv {
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, "pulumi"),
    [
      "#!/bin/sh",
      '[ "$1 $2 $3 $4 $5" = "stack output --json --show-secrets --stack" ] && [ $# -eq 6 ] ||',
      '  { echo "unexpected: $*" >&2; exit 9; }',
      `exec cat "${dir}/$6.json"`,
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return { PATH: `${bin}:${process.env.PATH ?? ""}` };
}

/** The stack `name`'s outputs, as `pulumi stack output --json --show-secrets` prints them. */
export function writeStack(dir: string, name: string, outputs: unknown): void {
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(outputs), { mode: 0o600 });
}

/** A lab host of a seat in the `seats` stack output, at 127.0.0.1 with `hostKey`. */
export function seatHost(seat: string, role: string, hostKey: string) {
  return {
    role,
    name: `criu-lab-seat-${seat}-${role}`,
    instanceId: "i-0123456789abcdef0",
    publicIp: "127.0.0.1",
    sshCommand: `ssh -i seat-${seat}.pem ubuntu@127.0.0.1`,
    knownHostsLine: `127.0.0.1 ${hostKey}`,
  };
}
