/**
 * `criu-lab-verify --progress` against real sshd on 127.0.0.1: each host's `sudo criu-lab
 * progress --json` is this checkout's command (a wrapper first on the test user's sudo PATH
 * gives it its own store and home), whose store holds what the learner did. The real CLI
 * (`--stack` of one host, its outputs from a stand-in `pulumi`, as in verify-stopped.test.ts)
 * prints the table and exits 0 however little is done; a class (collectProgress over the
 * stack's targets, each at its sshd's port, as verify-seats.test.ts does) with a host whose
 * criu-lab is older than `progress` and one whose port nothing listens on exits 3 with "?".
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KeyPair, generateKey } from "../../vm/keys";
import { freePort } from "../../vm/qemu";
import { collectProgress, progressTable } from "../../verify/progress";
import { targetsFromStackOutputs } from "../../verify/seats";
import { cannotRun } from "../support/requirements";
import { LAB, REPO, run } from "./support/lab-helpers";
import { TestSshd, installWrapper, needSshdHost } from "./support/sshd";
import {
  fakePulumi,
  keyMaterial,
  runVerifyCli,
  seatHost,
  sshdWorkspaceForTests,
  writeStack,
} from "./support/verify-cli";

const LEARNER = "criulab-progress";
const OLD = "criulab-progress-old";

const missing = cannotRun("criu-lab-verify --progress against real sshd", needSshdHost());

describe.skipIf(missing)("criu-lab-verify --progress: real sshd, this checkout's criu-lab", () => {
  let seatKey: KeyPair;
  let otherKey: KeyPair;
  let learnerSshd: TestSshd;
  let oldSshd: TestSshd;
  let env: NodeJS.ProcessEnv;

  const block = sshdWorkspaceForTests(
    { dirPrefix: "criulab-verify-progress-", what: "verify-progress host tests" },
    async (workspace) => {
      const learner = workspace.user(LEARNER);
      const old = workspace.user(OLD);
      const state = workspace.sub("state");
      const home = workspace.sub("home");
      // This checkout's criu-lab, with its own store and learner's home.
      installWrapper(
        learner,
        "criu-lab",
        [
          "#!/bin/sh",
          `export CRIU_LAB_STATE_DIR=${state} CRIU_LAB_HOME=${home}`,
          `exec /usr/bin/python3 ${LAB.command} "$@"`,
          "",
        ].join("\n"),
      );
      // A host set up before `progress` existed: argparse refuses the command.
      installWrapper(
        old,
        "criu-lab",
        [
          "#!/bin/sh",
          'echo "usage: criu-lab [-h] {check,demo} ..." >&2',
          `echo "criu-lab: error: argument command: invalid choice: '$1' (choose from check, demo)" >&2`,
          "exit 2",
          "",
        ].join("\n"),
      );
      // What the learner did: two exercises, recorded by the store's own code as root.
      const seeded = run(
        "/usr/bin/python3",
        [
          "-c",
          "import sys; sys.path.insert(0, sys.argv[1]); from criu_lab import progress; " +
            "progress.record([('demo', 'sudo criu-lab demo passed', 0), " +
            "('images', 'sudo criu-lab analyze passed', 60)], path=sys.argv[2])",
          join(REPO, "host"),
          join(state, "progress.json"),
        ],
        { env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } },
      );
      expect(seeded.code, seeded.stderr).toBe(0);
      seatKey = generateKey(join(workspace.dir, "seat-01_key"), "seat-01");
      otherKey = generateKey(join(workspace.dir, "seat-02_key"), "seat-02");
      learnerSshd = await workspace.sshd(LEARNER, seatKey.publicKeyOpenssh);
      oldSshd = await workspace.sshd(OLD, otherKey.publicKeyOpenssh);
      env = fakePulumi(workspace.dir);
    },
  );

  const host = (seat: string, role: string, sshd?: TestSshd) =>
    seatHost(seat, role, (sshd ?? learnerSshd).hostPublicKey);

  it("the CLI on a one-host stack: the learner's table, exit 0 though most is not done", async () => {
    const outputs = {
      instanceId: "i-0123456789abcdef0",
      publicIp: "127.0.0.1",
      sshUser: LEARNER,
      privateKey: seatKey.privateKeyOpenssh,
      knownHostsLine: `127.0.0.1 ${learnerSshd.hostPublicKey}`,
      seats: [
        {
          seat: "01",
          sshUser: LEARNER,
          privateKey: seatKey.privateKeyOpenssh,
          autoStopMinutes: 120,
          hosts: [host("01", "a")],
        },
      ],
    };
    writeStack(block.dir, "one", outputs);
    const args = ["--stack", "one", "--port", String(learnerSshd.port), "--progress"];
    const r = await runVerifyCli(args, 120_000, env);
    expect(r.hung).toBe(false);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(
      /^seat\s+counter\s+demo\s+images\s+checkpoint\s+doctor\s+training\s+game\s+migration\s+link\s+faults\s+done$/,
    );
    expect(lines[1]).toMatch(/^01\s+·\s+✓\s+✓\s+·\s+·\s+·\s+·\s+-\s+-\s+-\s+2\/7$/);
    expect(r.stdout).toContain("1 of 1 host(s) answered; done by every seat: demo, images; exit 0");

    const j = await runVerifyCli([...args, "--json"], 120_000, env);
    expect(j.code, j.stderr).toBe(0);
    const report = JSON.parse(j.stdout);
    expect(report.hosts[0]).toMatchObject({
      seat: "01",
      role: "a",
      status: "ok",
      done: { demo: { at: "1970-01-01T00:00:00Z", how: "sudo criu-lab demo passed" } },
    });
    for (const line of keyMaterial(seatKey.privateKeyOpenssh)) {
      expect(r.stdout + r.stderr + j.stdout + j.stderr).not.toContain(line);
    }
  });

  it("a class: an older host and a host not reached are '?', exit 3; the others answer", async () => {
    const silent = await freePort();
    const outputs = {
      seats: [
        {
          seat: "01",
          sshUser: LEARNER,
          privateKey: seatKey.privateKeyOpenssh,
          autoStopMinutes: 0,
          hosts: [host("01", "a")],
        },
        {
          seat: "02",
          sshUser: OLD,
          privateKey: otherKey.privateKeyOpenssh,
          autoStopMinutes: 120,
          hosts: [host("02", "a", oldSshd), host("02", "b", oldSshd)],
        },
      ],
    };
    const ports: Record<string, number> = {
      "01a": learnerSshd.port,
      "02a": oldSshd.port,
      "02b": silent,
    };
    const targets = targetsFromStackOutputs(outputs).map((t) => ({
      ...t,
      port: ports[`${t.seat}${t.role}`] ?? 0,
    }));
    const lines: string[] = [];
    const report = await collectProgress(targets, {
      timeoutSeconds: 6,
      parallel: 2,
      onProgress: (l) => lines.push(l),
    });
    const table = progressTable(report);
    console.log(table);
    expect(report.exitCode, table).toBe(3);
    expect(report.hosts.map((h) => [h.seat, h.role, h.status, h.exitCode])).toEqual([
      ["01", "a", "ok", 0],
      ["02", "a", "not available", 3],
      ["02", "b", "unreachable", 3],
    ]);
    expect(table).toMatch(/^01\s+·\s+✓\s+✓\s+·\s+·\s+·\s+·\s+-\s+-\s+-\s+2\/7$/m);
    expect(table).toMatch(/^02(\s+\?){10}\s+0\/10$/m);
    expect(table).toContain(
      `seat 02 host a 127.0.0.1:${oldSshd.port}: not available (exit 3): this host's criu-lab has no 'progress'`,
    );
    // Silent for half the deadline, with the auto-stop on: it looks stopped, and how to start it.
    expect(table).toMatch(
      new RegExp(
        `seat 02 host b 127\\.0\\.0\\.1:${silent}: unreachable \\(exit 3\\): cannot reach .*` +
          "no answer on its port for 3 s .*the host looks stopped by the auto-stop .*" +
          "start it: run `pulumi up`",
      ),
    );
    expect(lines).toHaveLength(3);
  });
});
