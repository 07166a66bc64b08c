/**
 * The verifier against a real sshd on 127.0.0.1 and, where this machine is a lab host
 * (`npm run setup:host`), the real `criu-lab check`/`demo` with real CRIU. Faults are made for
 * real: a late sshd, foreign keys, and `sudo criu-lab` wrappers placed first on the test user's
 * sudo PATH (tests/host/support/sshd.ts), never by editing the lab's installed files.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../verify/cli";
import { REMOTE_CHECKS } from "../../contract/checks";
import { VerifyReport, verifyLab } from "../../verify/verifier";
import { cannotRun, needCommand } from "../support/requirements";
import {
  TestSshd,
  TestUser,
  installCriuWrapper,
  installWrapper,
  needSshdHost,
  startSshd,
} from "./support/sshd";
import { keyMaterial, runVerifyCli, cliTargetArgs, sshdHostForTests } from "./support/verify-cli";
import { HOST, REPO, tempDir } from "./support/lab-helpers";
import { generateKey } from "../../vm/keys";

const USER = "criulab-verify-test";

const sshdMissing = cannotRun("verifier against a real sshd", needSshdHost());

/** `ssh-keygen -lf`'s fingerprint of a public key line: the reference the verifier must match. */
function sshKeygenFingerprint(dir: string, publicKey: string): string {
  const file = join(dir, `fp-${Date.now()}.pub`);
  writeFileSync(file, `${publicKey}\n`);
  return execFileSync("ssh-keygen", ["-lf", file], { encoding: "utf8" }).split(/\s+/)[1] ?? "";
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) for a PID to go away; it is killed afterwards if it has not. */
async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  const gone = !isAlive(pid);
  if (!gone) process.kill(pid, "SIGKILL");
  return gone;
}

function readPid(file: string): number | undefined {
  return existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : undefined;
}

/**
 * The commit that added the doctor (cloud-init/criu_lab/doctor.py, where the host command was
 * before it moved to host/): its parent's lab files are a host's set up before the doctor
 * existed. Undefined in a checkout without that history.
 */
const doctorAdded = ((): string | undefined => {
  const added = spawnSync(
    "git",
    ["-C", REPO, "log", "--diff-filter=A", "--format=%H", "--", "cloud-init/criu_lab/doctor.py"],
    { encoding: "utf8" },
  );
  return added.status === 0 ? added.stdout.trim().split("\n").pop() || undefined : undefined;
})();

/** That older lab's command extracted into DIR; returns its launcher's path. */
function olderLab(dir: string, commit: string): string {
  const into = join(dir, "older-lab");
  mkdirSync(into, { recursive: true });
  execFileSync("sh", [
    "-c",
    'git -C "$1" archive "$2^" cloud-init/criu-lab cloud-init/criu_lab | tar -x -C "$3"',
    "sh",
    REPO,
    commit,
    into,
  ]);
  return join(into, "cloud-init", "criu-lab");
}

function expectNoKeyMaterial(text: string, privateKey: string) {
  for (const line of keyMaterial(privateKey)) expect(text).not.toContain(line);
}

describe.skipIf(sshdMissing)("criu-lab-verify against a real sshd", () => {
  let dir: string;
  let user: TestUser;
  let sshd: TestSshd;
  const target = () => ({
    host: "127.0.0.1",
    port: sshd.port,
    user: USER,
    privateKey: user.key.privateKeyOpenssh,
    hostKey: sshd.hostPublicKey,
  });
  const cliTarget = () => cliTargetArgs(sshd, user);

  // Evidence on failure: the sshd log (sshd.log), its config and the test keys.
  sshdHostForTests(
    { user: USER, dirPrefix: "criulab-verify-", what: "verify host tests" },
    (host) => ({ dir, user, sshd } = host),
  );

  it("refuses a host key that does not match at once: exit 3, both fingerprints named", async () => {
    const other = generateKey(join(dir, "other_host_key"), "other_host_key");
    const args = [...cliTarget().slice(0, -1), other.publicKeyOpenssh, "--timeout", "60", "--json"];
    const run = await runVerifyCli(args, 90_000);
    expect(run.hung).toBe(false);
    expect(run.code).toBe(3);
    const report = JSON.parse(run.stdout) as VerifyReport;
    expect(report.ok).toBe(false);
    expect(report.exitCode).toBe(3);
    expect(report.error).toContain("host key mismatch");
    expect(report.error).toContain(sshKeygenFingerprint(dir, other.publicKeyOpenssh));
    expect(report.error).toContain(sshKeygenFingerprint(dir, sshd.hostPublicKey));
    // Refused on the first attempt, not retried until the deadline.
    expect(run.stderr).not.toMatch(/attempt \d+ failed/);
    expect(report.steps).toHaveLength(1);
    expect(report.steps[0]?.ok).toBe(false);
    expectNoKeyMaterial(run.stdout + run.stderr, user.key.privateKeyOpenssh);
  });

  it("a known_hosts line pins the key too; its host field is ignored", async () => {
    const report = await verifyLab(
      { ...target(), hostKey: `[somewhere]:2222 ${sshd.hostPublicKey}` },
      // Only the connection matters here: the next step is made to stop the run at once.
      {
        timeoutSeconds: 60,
        checks: { cloudInit: { name: "cloud-init", command: "exit 3", timeoutSeconds: 10 } },
      },
    );
    expect(report.steps[0]?.ok).toBe(true);
    expect(report.hostKeyFingerprint).toBe(sshKeygenFingerprint(dir, sshd.hostPublicKey));
  });

  it("a key the server does not accept: exit 3, authentication failed, no retries", async () => {
    const stranger = generateKey(join(dir, "stranger_key"), "stranger_key");
    const args = cliTarget();
    args[args.indexOf("--key-file") + 1] = stranger.path;
    const run = await runVerifyCli([...args, "--timeout", "60"], 90_000);
    expect(run.hung).toBe(false);
    expect(run.code).toBe(3);
    expect(run.stdout).toContain("authentication failed");
    expect(run.stderr).not.toMatch(/attempt \d+ failed/);
    expectNoKeyMaterial(run.stdout + run.stderr, stranger.privateKeyOpenssh);
  });

  it("bad flags and bad input: exit 2 with the usage, before any connection", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--hots", "x"], /Unknown option '--hots'/],
      [["--host", "127.0.0.1", "--port", "http", "--key-file", "/dev/null"], /--port: 'http'/],
      [
        ["--host", "127.0.0.1", "--timeout", "-5", "--key-file", "/dev/null"],
        /--timeout: '-5' is not a whole number of seconds from 1 to 86400/,
      ],
      [
        ["--host", "127.0.0.1", "--key-file", `${user.key.path}.pub`],
        /--key-file .*\.pub: this is a public key \(ssh-ed25519\); --key-file takes the private key/,
      ],
      [["--key-file", user.key.path], /--host is required/],
      [["--host", "127.0.0.1"], /--key-file is required/],
      [["--host", "127.0.0.1", "--key-file", join(dir, "missing")], /--key-file .*missing.*ENOENT/],
      [["stray"], /Unexpected argument 'stray'/],
    ];
    for (const [args, message] of cases) {
      const run = await runVerifyCli(args, 60_000);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toContain("usage: npx criu-lab-verify");
      expect(run.stdout).toBe("");
    }
    // A malformed host key is bad input too, found before connecting.
    const run = await runVerifyCli(
      [...cliTarget().slice(0, -1), "ssh-ed25519 not-base64!"],
      60_000,
    );
    expect(run.code).toBe(2);
    expect(run.stdout).toContain("host key: the ssh-ed25519 key is not base64");
    expect(run.stderr).not.toContain("... connect");
  });

  it("a remote command that hangs is stopped: exit 1, the CLI returns, the command is killed", async () => {
    const pidFile = join(user.faultDir, "hang.pid");
    installWrapper(
      user,
      "criu-lab",
      `#!/bin/sh\n# hangs where criu-lab check would answer\necho $$ > ${pidFile}\nexec sleep 600\n`,
    );
    try {
      const run = await runVerifyCli([...cliTarget(), "--timeout", "15", "--json"], 120_000);
      expect(run.hung).toBe(false);
      expect(run.code).toBe(1);
      const report = JSON.parse(run.stdout) as VerifyReport;
      const check = report.steps.find((s) => s.name === REMOTE_CHECKS.check.name);
      expect(check?.ok).toBe(false);
      expect(check?.error).toMatch(/timed out.*overall deadline \(--timeout 15 s\).*stopped/);
      expect(report.demo).toBeUndefined();
      // The verifier signalled the command over SSH: it does not outlive the verification.
      const pid = readPid(pidFile);
      expect(pid).toBeGreaterThan(0);
      expect(await waitGone(pid as number)).toBe(true);
    } finally {
      const pid = readPid(pidFile);
      if (pid && isAlive(pid)) process.kill(pid, "SIGKILL");
    }
  });

  it("cloud-init still running at the deadline means not ready: exit 3", async () => {
    // Written by the test user's own command, so in its home.
    const pidFile = `/home/${USER}/cloud-init.pid`;
    const lines: string[] = [];
    try {
      const report = await verifyLab(target(), {
        timeoutSeconds: 60,
        onProgress: (l) => lines.push(l),
        checks: {
          cloudInit: {
            name: "cloud-init",
            command: `echo $$ > ${pidFile}; exec sleep 600`,
            timeoutSeconds: 3,
          },
        },
      });
      expect(report.exitCode).toBe(3);
      expect(report.steps.map((s) => [s.name.split(" ")[0], s.ok])).toEqual([
        ["connect", true],
        ["cloud-init", false],
      ]);
      expect(report.error).toMatch(/timed out: it ran 3 s, its timeout \(3 s\)/);
      expect(lines.some((l) => l.startsWith("FAIL cloud-init"))).toBe(true);
      expect(await waitGone(readPid(pidFile) as number)).toBe(true);
    } finally {
      const pid = readPid(pidFile);
      if (pid && isAlive(pid)) process.kill(pid, "SIGKILL");
    }
  });

  it("a host without cloud-init (set up by hand) has nothing to wait for: the checks go on", async () => {
    // The real wait, in a session whose PATH has no cloud-init, as on a host where it is not
    // installed; the next check is made to stop the run once it is reached.
    const report = await verifyLab(target(), {
      timeoutSeconds: 60,
      checks: {
        cloudInit: {
          ...REMOTE_CHECKS.cloudInit,
          command: `PATH=${join(dir, "no-such-dir")}\n${REMOTE_CHECKS.cloudInit.command}`,
        },
        check: { name: "criu check", command: "echo reached; exit 3", timeoutSeconds: 10 },
      },
    });
    expect(report.steps.map((s) => [s.name.split(" ")[0], s.ok])).toEqual([
      ["connect", true],
      ["cloud-init", true],
      ["criu", false],
    ]);
  });

  it("a check without its JSON is a broken lab (1); a missing criu-lab is not installed (3)", async () => {
    const garbage = await verifyLab(target(), {
      timeoutSeconds: 60,
      checks: { check: { name: "criu check", command: "echo hello", timeoutSeconds: 10 } },
    });
    expect(garbage.exitCode).toBe(1);
    expect(garbage.error).toBe("criu-lab check: no JSON object in its output; it printed: hello");
    const absent = await verifyLab(target(), {
      timeoutSeconds: 60,
      checks: {
        check: {
          name: "criu check",
          command: "sudo -n criu-lab-absent check --json",
          timeoutSeconds: 10,
        },
      },
    });
    expect(absent.exitCode).toBe(3);
    expect(absent.error).toMatch(
      /exited 1; stderr ends with:\nsudo: criu-lab-absent: command not found/,
    );
    // The logs were fetched after the failure (the lab's log directory exists on a lab host).
    expect(absent.logs).toBeDefined();
  });

  const labMissing = cannotRun("verifier on a lab host", [
    needCommand(HOST.criu, "npm run setup:host"),
    needCommand(HOST.criuLab, "npm run setup:host"),
  ]);

  describe.skipIf(labMissing)("on a lab host (real CRIU)", () => {
    it("a clean pass: exit 0 and a complete report", async () => {
      const run = await runVerifyCli([...cliTarget(), "--timeout", "600", "--json"], 660_000);
      expect(run.hung).toBe(false);
      expect(run.code, run.stderr).toBe(0);
      // Exactly one JSON object on stdout; progress on stderr.
      const report = JSON.parse(run.stdout) as VerifyReport;
      expect(report.ok).toBe(true);
      expect(report.exitCode).toBe(0);
      expect(report.error).toBeUndefined();
      expect(report.logs).toBeUndefined();
      expect(report.target).toEqual({ host: "127.0.0.1", port: sshd.port, user: USER });
      expect(report.hostKeyFingerprint).toBe(sshKeygenFingerprint(dir, sshd.hostPublicKey));
      expect(report.steps.map((s) => s.name)).toEqual([
        `connect ${USER}@127.0.0.1:${sshd.port}`,
        REMOTE_CHECKS.cloudInit.name,
        REMOTE_CHECKS.check.name,
        REMOTE_CHECKS.doctor.name,
        REMOTE_CHECKS.demo.name,
      ]);
      // The doctor's result is in the report; no scenario unless asked for.
      expect(report.doctor?.exercises["training-full"]?.ok).toBe(true);
      expect(report.scenarios).toBeUndefined();
      expect(report.steps.every((s) => s.ok && s.ms >= 0)).toBe(true);

      const version = execFileSync(HOST.criu, ["--version"], { encoding: "utf8" });
      expect(report.check?.ok).toBe(true);
      expect(version).toContain(report.check?.criuVersion);
      expect(report.check?.kernel).toBe(execFileSync("uname", ["-r"], { encoding: "utf8" }).trim());

      const demo = report.demo;
      expect(demo?.ok).toBe(true);
      expect(demo?.restoredPid).toBe(demo?.pid);
      expect(demo?.firstAfterRestore).toBe((demo?.lastBeforeDump ?? NaN) + 1);
      expect(demo?.dumpMs).toBeGreaterThan(0);
      expect(demo?.restoreMs).toBeGreaterThan(0);
      expect(demo?.frozenUs).toBeGreaterThan(0);
      expect(demo?.imageBytes).toBeGreaterThan(0);
      // The demo ran on this machine: its images are really there.
      expect(readdirSync(demo?.imagesDir ?? "/nonexistent")).toContain("pstree.img");

      for (const step of [
        "connect",
        "cloud-init",
        "criu check",
        "doctor",
        "checkpoint/restore demo",
      ]) {
        expect(run.stderr).toContain(`ok  ${step}`);
      }
      expectNoKeyMaterial(run.stdout + run.stderr, user.key.privateKeyOpenssh);
    });

    it("an sshd that starts listening late: the connection retries and wins", async () => {
      const lateDir = tempDir("verify-late");
      const late = await startSshd({
        dir: lateDir,
        user: USER,
        authorizedKey: user.key.publicKeyOpenssh,
        listenAfterSeconds: 4,
      });
      try {
        const lines: string[] = [];
        const report = await verifyLab(
          { ...target(), port: late.port, hostKey: late.hostPublicKey },
          { timeoutSeconds: 600, onProgress: (l) => lines.push(l) },
        );
        expect(report.exitCode, report.error).toBe(0);
        expect(report.ok).toBe(true);
        expect(lines.some((l) => /attempt 1 failed \(.*ECONNREFUSED/.test(l))).toBe(true);
        expect(report.steps[0]?.ok).toBe(true);
      } finally {
        await late.stop();
        rmSync(lateDir, { recursive: true, force: true });
      }
    });

    it("a failing demo: exit 1, the CRIU log tail in the report, the images kept", async () => {
      // criu-lab honours CRIU_LAB_CRIU. This wrapper runs the real CRIU, but just before the
      // restore another process takes the checkpointed PID (PID reuse, via ns_last_pid as
      // CRIU itself does it): the restore fails for real: "File exists" (docs/design.md "Facts").
      const occupierFile = join(user.faultDir, "occupier.pid");
      installCriuWrapper(user, "criu-pid-taken", [
        'if [ "$1" = restore ]; then',
        "  prev=; images=",
        '  for a in "$@"; do [ "$prev" = -D ] && images=$a; prev=$a; done',
        `  pid=$(ls "$images" | sed -n 's/^core-\\([0-9]*\\)\\.img$/\\1/p' | head -n 1)`,
        "  echo $((pid - 1)) > /proc/sys/kernel/ns_last_pid",
        `  sh -c 'echo $$ > ${occupierFile}; exec sleep 600' </dev/null >/dev/null 2>&1 &`,
        `  for _ in $(seq 50); do [ -s ${occupierFile} ] && break; sleep 0.1; done`,
        "fi",
      ]);
      let runDir: string | undefined;
      try {
        const run = await runVerifyCli([...cliTarget(), "--timeout", "600", "--json"], 660_000);
        expect(run.hung).toBe(false);
        expect(run.code, run.stderr).toBe(1);
        const report = JSON.parse(run.stdout) as VerifyReport;
        expect(report.exitCode).toBe(1);
        expect(report.check?.ok).toBe(true);
        expect(report.demo?.ok).toBe(false);
        // The fault took effect as planned: the PID was taken by our occupier.
        expect(readPid(occupierFile)).toBe(report.demo?.pid);
        expect(report.demo?.error).toMatch(/restore.*File exists/s);
        expect(report.error).toMatch(/checkpoint\/restore demo failed: .*File exists/s);
        runDir = dirname(report.demo?.imagesDir ?? "/nonexistent/x");
        // The images stay as evidence, and the report says where.
        expect(readdirSync(report.demo?.imagesDir ?? "/nonexistent")).toContain("pstree.img");
        expect(run.stderr).toContain(
          `checkpoint images are kept on the host in ${report.demo?.imagesDir}`,
        );
        // CRIU's own logs were fetched over SSH into the report, byte for byte.
        const restoreLog = report.logs?.[join(runDir, "restore.log")] ?? "";
        expect(restoreLog).toContain("File exists");
        expect(readFileSync(join(runDir, "restore.log"), "utf8").endsWith(restoreLog)).toBe(true);
        expect(report.logs?.[join(runDir, "dump.log")]).toBeDefined();
        expectNoKeyMaterial(run.stdout + run.stderr, user.key.privateKeyOpenssh);
      } finally {
        const occupier = readPid(occupierFile);
        if (occupier && isAlive(occupier)) process.kill(occupier, "SIGKILL");
        if (runDir?.startsWith("/var/log/criu-lab/demo-")) {
          rmSync(runDir, { recursive: true, force: true });
        }
      }
    });

    it.skipIf(
      cannotRun("a host with older lab files", [
        doctorAdded ? undefined : "no history of cloud-init/criu_lab/doctor.py (a shallow clone?)",
      ]),
    )(
      "a host whose lab files predate the doctor: not ready (3), naming the older lab files",
      async () => {
        const older = olderLab(dir, doctorAdded as string);
        // What `sudo criu-lab` runs on such a host: that version's command, with this host's CRIU.
        installWrapper(user, "criu-lab", `#!/bin/sh\nexec /usr/bin/python3 ${older} "$@"\n`);
        const run = await runVerifyCli([...cliTarget(), "--timeout", "300", "--json"], 360_000);
        expect(run.hung).toBe(false);
        const report = JSON.parse(run.stdout) as VerifyReport;
        expect(report.check?.ok, run.stderr).toBe(true);
        expect(run.code, run.stderr).toBe(3);
        expect(report.exitCode).toBe(3);
        expect(report.error).toBe(
          "doctor: this host's criu-lab has no 'doctor'; its lab files are older than this " +
            "verifier (set the host up again: a new instance, or `sudo npm run setup:host` there)",
        );
      },
    );

    it("--stack reads the target from stack outputs through the injected runner", async () => {
      const asked: string[] = [];
      const out: string[] = [];
      const err: string[] = [];
      const outputs = {
        instanceId: "i-0123456789abcdef0",
        publicIp: "127.0.0.1",
        sshUser: USER,
        privateKey: user.key.privateKeyOpenssh,
        knownHostsLine: `203.0.113.9 ${sshd.hostPublicKey}`,
        criuVersion: "v4.2",
      };
      const code = await main(
        ["--stack", "dev", "--port", String(sshd.port), "--timeout", "600", "--json"],
        {
          readStack: async (stack) => {
            asked.push(stack);
            return JSON.stringify(outputs);
          },
          out: (t) => out.push(t),
          err: (t) => err.push(t),
        },
      );
      expect(asked).toEqual(["dev"]);
      expect(code, err.join("\n")).toBe(0);
      expect(out).toHaveLength(1);
      const report = JSON.parse(out[0] ?? "") as VerifyReport;
      expect(report.target).toEqual({ host: "127.0.0.1", port: sshd.port, user: USER });
      expect(report.hostKeyFingerprint).toBe(sshKeygenFingerprint(dir, sshd.hostPublicKey));
      expectNoKeyMaterial(out.join("\n") + err.join("\n"), user.key.privateKeyOpenssh);
    });
  });
});
