/**
 * A class verified at once: several real sshd on 127.0.0.1, each a seat's host, in front of
 * this machine's real lab (`criu-lab check`/`demo` with real CRIU). Seat 03's migration is
 * made to fail by a `criu-lab` wrapper first on its user's sudo PATH (as tests/host/verify.test.ts
 * does), seat 04 pins a host key its sshd does not have. The good seats must still pass and
 * report; the table, the JSON report and the exit code must say which seat failed where.
 * The handout's ssh commands are run for real against the same sshd.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main as handout } from "../../handout/cli";
import { KeyPair, generateKey } from "../../vm/keys";
import { SeatsReport, seatsTable, targetsFromStackOutputs, verifySeats } from "../../verify/seats";
import { cannotRun } from "../support/requirements";
import { HOST } from "./support/lab-helpers";
import { TestSshd, TestUser, installWrapper, needSshdHost } from "./support/sshd";
import { keyMaterial, seatHost, sshdWorkspaceForTests } from "./support/verify-cli";

const GOOD = "criulab-seats-ok";
const BAD = "criulab-seats-bad";

const missing = cannotRun(
  "multi-seat verifier against real sshd and the real lab",
  needSshdHost({ lab: true }),
);

describe.skipIf(missing)("verifySeats: a class of real sshd, one seat failing", () => {
  /** "01a" -> its sshd. */
  const sshds = new Map<string, TestSshd>();
  const seatKeys = new Map<string, KeyPair>();
  let outputs: { seats: Array<Record<string, unknown>> };

  const block = sshdWorkspaceForTests(
    { dirPrefix: "criulab-seats-", what: "verify-seats host tests" },
    async (workspace) => {
      const good = workspace.user(GOOD);
      const bad = workspace.user(BAD);
      // Seat 03's host a answers the migration scenario with a failure, as a lab whose
      // migration is broken would, keeping the arguments it got; everything else goes to the
      // real criu-lab.
      installWrapper(
        bad,
        "criu-lab",
        [
          "#!/bin/sh",
          'if [ "$1" = scenario ]; then',
          `  echo "$*" >>${join(workspace.dir, "seat-03-migration-args")}`,
          `  echo '{"ok": false, "error": "restore on the peer failed: File exists (made to fail by the test)"}'`,
          "  exit 1",
          "fi",
          `exec ${HOST.criuLab} "$@"`,
          "",
        ].join("\n"),
      );
      const layout: Array<[string, TestUser]> = [
        ["01a", good],
        ["02a", good],
        ["02b", good],
        ["03a", bad],
        ["03b", bad],
        ["04a", good],
      ];
      // Every seat has a key of its own (the contract; the handout refuses a shared one).
      for (const n of ["01", "02", "03", "04"]) {
        seatKeys.set(n, generateKey(join(workspace.dir, `seat-${n}_key`), `seat-${n}`));
      }
      for (const [id, user] of layout) {
        const key = seatKeys.get(id.slice(0, 2))?.publicKeyOpenssh ?? "";
        sshds.set(id, await workspace.sshd(user.name, key));
      }
      const stranger = generateKey(join(workspace.dir, "stranger_host_key"), "stranger_host_key");
      const host = (id: string, hostKey?: string) =>
        seatHost(id.slice(0, 2), id.slice(2), hostKey ?? sshds.get(id)?.hostPublicKey ?? "");
      const seat = (n: string, user: TestUser, hosts: unknown[], migration?: unknown) => ({
        seat: n,
        sshUser: user.name,
        privateKey: seatKeys.get(n)?.privateKeyOpenssh,
        autoStopMinutes: 120,
        hosts,
        ...(migration ? { migration } : {}),
      });
      // The `seats` stack output contract, as the stack will print it: seat 02 as today's
      // program writes it (its migration's mode), seat 03 as a stack from before that.
      outputs = {
        seats: [
          seat("01", good, [host("01a")]),
          seat("02", good, [host("02a"), host("02b")], {
            modeAsked: "auto",
            mode: "page-server",
            downtimeMs: 919.2,
          }),
          seat("03", bad, [host("03a"), host("03b")]),
          seat("04", good, [host("04a", stranger.publicKeyOpenssh)]),
        ],
      };
    },
  );

  /** The stack's targets, with each host's loopback port (the contract's hosts use 22). */
  const targets = (seat?: string) =>
    targetsFromStackOutputs(outputs, { seat }).map((t) => ({
      ...t,
      port: sshds.get(`${t.seat}${t.role}`)?.port ?? 0,
    }));

  const expectNoKeys = (text: string) => {
    for (const key of seatKeys.values()) {
      for (const line of keyMaterial(key.privateKeyOpenssh)) expect(text).not.toContain(line);
    }
  };

  it("all seats concurrently within --parallel: the table, the report and the worst exit code", async () => {
    const lines: string[] = [];
    const report: SeatsReport = await verifySeats(targets(), {
      timeoutSeconds: 600,
      parallel: 3,
      onProgress: (l) => lines.push(l),
    });
    const table = seatsTable(report);
    const json = JSON.stringify(report, null, 2);
    console.log(table);

    // The broken lab (1) outranks the unreachable seat (3).
    expect(report.exitCode, table).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.parallel).toBe(3);
    expect(report.seats.map((s) => [s.seat, s.exitCode])).toEqual([
      ["01", 0],
      // Seat 02's migration runs the real scenario, whose peer name does not resolve on
      // loopback hosts: the peer is unreachable (3), not a broken lab.
      ["02", 3],
      ["03", 1],
      ["04", 3],
    ]);

    // The good seats passed for real: CRIU's checkpoint/restore on every one of their hosts.
    for (const s of report.seats.slice(0, 3)) {
      for (const h of s.hosts) {
        expect(h.report.ok, `${s.seat} ${h.role}: ${h.report.error}`).toBe(true);
        expect(h.report.demo?.restoredPid).toBe(h.report.demo?.pid);
        expect(h.report.target.port).toBe(sshds.get(`${s.seat}${h.role}`)?.port);
      }
    }
    expect(report.seats[0]?.migration).toBeNull();
    // Asked in the stack's mode: the real criu-lab took --mode auto and failed before it
    // could pick one (the peer is unreachable), so no mode ran.
    expect(report.seats[1]?.migration).toMatchObject({
      status: "fail",
      exitCode: 3,
      to: expect.stringMatching(/@criu-lab-seat-02-b$/),
      modeAsked: "auto",
      result: { ok: false, modeAsked: "auto", mode: null },
    });
    expect(report.seats[1]?.migration?.mode).toBeUndefined();
    expect(report.seats[2]?.migration).toMatchObject({
      status: "fail",
      exitCode: 1,
      to: `${BAD}@criu-lab-seat-03-b`,
      error: "migration failed: restore on the peer failed: File exists (made to fail by the test)",
      result: { ok: false },
    });
    // A stack from before migrationMode: no --mode, the scenario's default, which any host has.
    expect(report.seats[2]?.migration?.modeAsked).toBeUndefined();
    expect(readFileSync(join(block.dir, "seat-03-migration-args"), "utf8")).toBe(
      `scenario run migration --to ${BAD}@criu-lab-seat-03-b --json\n`,
    );
    const seat4 = report.seats[3]?.hosts[0]?.report;
    expect(seat4?.error).toMatch(/host key mismatch/);
    expect(seat4?.steps).toHaveLength(1);

    // The table: a row per host, "-" for migration in one-host seats, the failures named.
    const rows = table.split("\n").map((l) => l.split(/\s{2,}/));
    const port = (id: string) => sshds.get(id)?.port;
    const row = (i: number) => rows[i]?.slice(0, 6).join(" | ");
    expect(rows[0]?.join(" | ")).toBe(
      "seat | host | cloud-init | check | demo | migration | time | exit",
    );
    expect(row(1)).toBe(`01 | a 127.0.0.1:${port("01a")} | ok | ok | ok | -`);
    expect(rows[2]?.[5]).toBe("FAIL");
    expect(row(4)).toBe(`03 | a 127.0.0.1:${port("03a")} | ok | ok | ok | FAIL`);
    expect(rows[6]).toEqual([
      "04",
      `a 127.0.0.1:${port("04a")}`,
      "no ssh",
      "-",
      "-",
      "-",
      expect.stringMatching(/ s$/),
      "3",
    ]);
    expect(table).toContain(
      `seat 03 migration ${BAD}@127.0.0.1:${port("03a")} -> ${BAD}@criu-lab-seat-03-b: fail (exit 1)`,
    );
    expect(table).toMatch(
      new RegExp(
        `seat 04 host a 127.0.0.1:${port("04a")}: connect .* failed \\(exit 3\\): host key mismatch`,
      ),
    );
    expect(table.split("\n").at(-1)).toBe("1 of 4 seat(s) pass; exit 1");

    // One JSON report that round-trips; nothing secret in it or in the progress.
    expect(JSON.parse(json)).toEqual(report);
    expectNoKeys(json + table + lines.join("\n"));

    // Bounded parallelism, and real concurrency: hosts overlapped, never more than 3 at once.
    let active = 0;
    let most = 0;
    for (const l of lines) {
      if (/^\[seat \d\d [ab]\] \.\.\. connect /.test(l) || /^\[seat \d\d a->b\] \.\.\. /.test(l)) {
        most = Math.max(most, ++active);
      }
      if (/^\[seat \d\d [ab]\] (ok {2}checkpoint\/restore demo|FAIL )/.test(l)) active--;
      if (/^\[seat \d\d a->b\] (ok|FAIL|n\/a) /.test(l)) active--;
    }
    expect(most).toBe(3);
  });

  it("--seat N verifies that seat only", async () => {
    const report = await verifySeats(targets("4"), { timeoutSeconds: 60 });
    expect(report.seats.map((s) => s.seat)).toEqual(["04"]);
    expect(report.exitCode).toBe(3);
  });

  it("the handout's ssh commands work as printed from inside a seat's folder", async () => {
    const out = join(block.dir, "handout");
    const printed: string[] = [];
    const code = await handout(["--stack", "class", "--out", out], {
      readStack: async () => JSON.stringify(outputs),
      out: (t) => printed.push(t),
      err: (t) => printed.push(t),
    });
    expect(code, printed.join("\n")).toBe(0);
    expectNoKeys(printed.join("\n"));
    // The card's command, with the loopback port added (the stack's hosts listen on 22).
    const ssh = (seat: string, alias: string, id: string) =>
      spawnSync(
        "ssh",
        ["-F", "config", "-p", String(sshds.get(id)?.port), "-o", "BatchMode=yes", alias, "id -un"],
        { cwd: join(out, `seat-${seat}`), encoding: "utf8", timeout: 60_000 },
      );
    for (const [seat, alias, id, user] of [
      ["01", "seat-01-a", "01a", GOOD],
      ["02", "seat-02-b", "02b", GOOD],
      ["03", "seat-03-a", "03a", BAD],
    ] as const) {
      const r = ssh(seat, alias, id);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(user);
    }
    // The pinned key is enforced: seat 04's known_hosts has a key its sshd does not hold.
    const refused = ssh("04", "seat-04-a", "04a");
    expect(refused.status).toBe(255);
    expect(refused.stderr).toMatch(
      /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/,
    );
    // ssh itself accepts the key file as written (it refuses keys others can read).
    expect(
      execFileSync("stat", ["-c", "%a", join(out, "seat-01", "seat-01.pem")], {
        encoding: "utf8",
      }).trim(),
    ).toBe("600");
  });
});
