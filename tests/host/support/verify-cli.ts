/**
 * Runs the verifier CLI as a real subprocess (the `criu-lab-verify` bin, as CI runs it) and
 * collects its exit code and output. A safety net kills it by PID if it outlives `hangAfterMs`
 * and reports `hung`, so a CLI that hangs fails its test instead of stalling the suite. And
 * the one set-up of a test host for the verifier's tests (sshdHostForTests).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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

export interface SshdHost {
  dir: string;
  user: TestUser;
  sshd: TestSshd;
}

/**
 * One test user and its own sshd for a describe block of verifier tests, made before the
 * block (handed to `ready`), the user's wrappers removed after each test, all stopped and
 * removed after the block. When a test failed, `dir` (the sshd log, its config, the keys) is
 * kept and said where; `atEnd` runs first, told whether one failed.
 */
export function sshdHostForTests(
  options: { user: string; dirPrefix: string; what: string; atEnd?: (failed: boolean) => void },
  ready: (host: SshdHost) => void,
): void {
  let host: Partial<SshdHost> = {};
  let failed = false;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), options.dirPrefix));
    host = { dir };
    const user = createTestUser(options.user, dir);
    host.user = user;
    const sshd = await startSshd({
      dir,
      user: options.user,
      authorizedKey: user.key.publicKeyOpenssh,
    });
    host.sshd = sshd;
    ready({ dir, user, sshd });
  });
  beforeEach(({ onTestFailed }) =>
    onTestFailed(() => {
      failed = true;
    }),
  );
  afterEach(() => {
    if (host.user) removeWrappers(host.user);
  });
  afterAll(async () => {
    options.atEnd?.(failed);
    await host.sshd?.stop();
    host.user?.remove();
    if (!host.dir) return;
    if (failed) {
      console.warn(`${options.what} failed: sshd log and config kept in ${host.dir}`);
    } else {
      rmSync(host.dir, { recursive: true, force: true });
    }
  });
}
