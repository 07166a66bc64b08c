/**
 * A real OpenSSH server for the verifier's host tests: our own sshd on 127.0.0.1 at a free
 * port with a generated host key, and a test user with passwordless sudo and a generated key.
 * The system's sshd and users are never touched; everything started here is stopped by PID,
 * and the user, its home and its sudoers drop-in are removed afterwards.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { generateKey, type KeyPair } from "../../../vm/keys";
import { HOST } from "./lab-helpers";
import { needLabHost, needSshd } from "./needs";
import { freePort } from "../../../vm/qemu";

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SshdOptions {
  /** Where the config, host key, authorized keys and log live (a fresh temp dir). */
  dir: string;
  /** The only user allowed in, and the public key it logs in with. */
  user: string;
  authorizedKey: string;
  /** Start listening only after this many seconds (a host whose sshd comes up late). */
  listenAfterSeconds?: number;
}

export interface TestSshd {
  port: number;
  /** The host's public key line, `ssh-ed25519 AAAA... comment`. */
  hostPublicKey: string;
  logFile: string;
  /** Resolves once the port accepts connections (bounded). */
  listening(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `/usr/sbin/sshd -D -e` (foreground, log to stderr -> the log file). `StrictModes no`
 * and an AuthorizedKeysFile in the temp dir keep the test user's home out of it; `UsePAM no`
 * lets a user with no password (`*`, not locked) log in with its key alone.
 */
export async function startSshd(options: SshdOptions): Promise<TestSshd> {
  const { dir, user } = options;
  const port = await freePort();
  const hostKey = generateKey(join(dir, "ssh_host_ed25519_key"), "ssh_host_ed25519_key");
  // sshd reads authorized_keys as the user: the directory and file must be readable by it.
  const keysDir = join(dir, "authorized_keys");
  mkdirSync(keysDir, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(keysDir, 0o755);
  writeFileSync(join(keysDir, user), `${options.authorizedKey}\n`, { mode: 0o644 });
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey.path}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${keysDir}/%u`,
      "StrictModes no",
      "UsePAM no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin no",
      `AllowUsers ${user}`,
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  // The privilege separation directory sshd insists on; it is created by the system's sshd
  // service too, so it is left in place.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  execFileSync("/usr/sbin/sshd", ["-t", "-f", config]);

  const logFile = join(dir, "sshd.log");
  const log = openSync(logFile, "a");
  const delay = options.listenAfterSeconds ?? 0;
  // sh execs sshd after the delay, so the PID we hold is sshd's own.
  const child: ChildProcess = spawn(
    "sh",
    ["-c", `sleep "$1"; exec /usr/sbin/sshd -D -e -f "$2"`, "sh", String(delay), config],
    { stdio: ["ignore", log, log] },
  );
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const sshd: TestSshd = {
    port,
    hostPublicKey: hostKey.publicKeyOpenssh,
    logFile,
    async listening() {
      // Bounded: the delay plus up to 30 s of start-up.
      for (let i = 0; i < (delay + 30) * 10; i++) {
        if (child.exitCode !== null) {
          throw new Error(
            `sshd exited ${child.exitCode}; log ${logFile}:\n${readFileSync(logFile, "utf8")}`,
          );
        }
        if (await canConnect(port)) return;
        await sleep(100);
      }
      throw new Error(`sshd is not listening on 127.0.0.1:${port}; log ${logFile}`);
    },
    async stop() {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
  if (delay === 0) await sshd.listening();
  return sshd;
}

export interface TestUser {
  name: string;
  key: KeyPair;
  /**
   * A directory first on the user's sudo PATH (secure_path), empty unless a test puts a
   * wrapper there: the way tests make `sudo criu-lab ...` fail or hang on purpose without
   * touching the lab's installed files.
   */
  faultDir: string;
  remove(): void;
}

const SUDOERS_DIR = "/etc/sudoers.d";

/**
 * Creates `name` with a home, no password (`*`: not locked, so key login works without PAM),
 * passwordless sudo, and a generated key. A leftover user of the same name from an
 * interrupted run is removed first.
 */
export function createTestUser(name: string, dir: string): TestUser {
  if (!/^criulab-[a-z0-9-]+$/.test(name)) throw new Error(`refusing to manage user '${name}'`);
  const sudoers = join(SUDOERS_DIR, name);
  const removeUser = () => {
    rmSync(sudoers, { force: true });
    if (userExists(name)) {
      // Leftover sessions of this test-only user (all started by these tests), by PID.
      for (const pid of pidsOf(name)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      execFileSync("userdel", ["-r", name], { stdio: "ignore" });
    }
  };
  removeUser();
  execFileSync("useradd", ["-m", "-s", "/bin/bash", "-p", "*", name]);
  const key = generateKey(join(dir, `${name}_ed25519`), `${name}_ed25519`);
  const faultDir = join(dir, "sudo-path");
  mkdirSync(faultDir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const drop = [
    `${name} ALL=(ALL) NOPASSWD:ALL`,
    `Defaults:${name} secure_path="${faultDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"`,
    "",
  ].join("\n");
  const staged = join(dir, "sudoers");
  writeFileSync(staged, drop, { mode: 0o440 });
  execFileSync("visudo", ["-c", "-q", "-f", staged]);
  writeFileSync(sudoers, drop, { mode: 0o440 });
  return { name, key, faultDir, remove: removeUser };
}

function pidsOf(user: string): number[] {
  try {
    const out = execFileSync("ps", ["-o", "pid=", "-u", user], { encoding: "utf8" });
    return out.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return []; // ps exits 1 when the user has no processes
  }
}

function userExists(name: string): boolean {
  try {
    execFileSync("id", [name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Writes an executable wrapper into the user's fault dir (first on its sudo PATH). */
export function installWrapper(user: TestUser, command: string, script: string): string {
  const path = join(user.faultDir, command);
  writeFileSync(path, script, { mode: 0o755 });
  return path;
}

/**
 * A fault in CRIU for the lab's commands: a wrapper `name` on the user's sudo PATH that runs
 * `lines` (shell) and then the real CRIU, and a `criu-lab` that runs the real one with it
 * (CRIU_LAB_CRIU). Returns the wrapper's path.
 */
export function installCriuWrapper(user: TestUser, name: string, lines: string[]): string {
  const criu = installWrapper(
    user,
    name,
    ["#!/bin/sh", ...lines, `exec ${HOST.criu} "$@"`, ""].join("\n"),
  );
  installWrapper(user, "criu-lab", `#!/bin/sh\nCRIU_LAB_CRIU=${criu} exec ${HOST.criuLab} "$@"\n`);
  return criu;
}

export function removeWrappers(user: TestUser): void {
  rmSync(user.faultDir, { recursive: true, force: true });
  mkdirSync(user.faultDir, { mode: 0o755 });
}

/** What a test of the verifier against our own sshd needs here, for `cannotRun`: our sshd, a
 * test user and the ssh client; with `lab`, the lab installed on this host too (its CRIU and
 * host command). */
export function needSshdHost({ lab = false } = {}): Array<string | undefined> {
  return [...needSshd("loopback", "user", "ssh"), ...(lab ? needLabHost("criu", "criuLab") : [])];
}
