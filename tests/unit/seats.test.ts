import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CheckOutputError } from "../../contract/checks";
import { capturedStdout } from "./support/mocks";
import type { VerifyReport } from "../../verify/verifier";
import {
  SeatTarget,
  SeatsReport,
  classifyMigration,
  seatsTable,
  targetsFromStackOutputs,
  verifySeats,
} from "../../verify/seats";
import {
  SeatOutputsError,
  migrationCheck,
  parseSeatOutputs,
  seatMigrationOutput,
} from "../../contract/seats";
import { worstExitCode } from "../../contract/checks";

/** A real ED25519 key pair: the private key as PEM, the public one as an OpenSSH line. */
function keyPair(): { privateKey: string; publicLine: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519", {
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "der" },
  });
  const sshString = (b: Buffer) => Buffer.concat([Buffer.alloc(4), b]).fill(0, 0, 4);
  const str = (b: Buffer) => {
    const out = sshString(b);
    out.writeUInt32BE(b.length, 0);
    return out;
  };
  const blob = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(publicKey.subarray(-32))]);
  return { privateKey, publicLine: `ssh-ed25519 ${blob.toString("base64")}` };
}

const host = (seat: string, role: "a" | "b", ip: string) => ({
  role,
  name: `criu-lab-seat-${seat}-${role}`,
  instanceId: `i-0${seat}${role === "a" ? "a" : "b"}0123456789abc`.slice(0, 19),
  publicIp: ip,
  sshCommand: `ssh -i seat-${seat}.pem ubuntu@${ip}`,
  knownHostsLine: `${ip} ${keyPair().publicLine}`,
});

function classOutputs() {
  const k1 = keyPair().privateKey;
  const k2 = keyPair().privateKey;
  return {
    keys: [k1, k2],
    outputs: {
      seats: [
        {
          seat: "01",
          sshUser: "ubuntu",
          privateKey: k1,
          autoStopMinutes: 120,
          hosts: [host("01", "a", "203.0.113.10")],
        },
        {
          seat: "02",
          sshUser: "ubuntu",
          privateKey: k2,
          autoStopMinutes: 0,
          hosts: [host("02", "a", "203.0.113.20"), host("02", "b", "203.0.113.21")],
        },
      ],
    },
  };
}

/** A two-host seat's `migration` as the program writes it. */
const MIGRATED = { modeAsked: "auto", mode: "page-server", downtimeMs: 919.2 };

/** Lines of key material long enough to be recognised. */
function material(key: string): string[] {
  return key.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"));
}

function expectError(fn: () => unknown, exitCode: number, message: RegExp, secrets: string[] = []) {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SeatOutputsError);
    const e = err as SeatOutputsError;
    expect(e.exitCode).toBe(exitCode);
    expect(e.message).toMatch(message);
    for (const s of secrets.flatMap(material)) expect(e.message).not.toContain(s);
    return;
  }
  throw new Error(`expected a SeatOutputsError matching ${message}`);
}

describe("parseSeatOutputs", () => {
  it("reads the seats contract", () => {
    const { outputs, keys } = classOutputs();
    const seats = parseSeatOutputs(outputs);
    expect(seats.map((s) => [s.seat, s.hosts.map((h) => h.role), s.autoStopMinutes])).toEqual([
      ["01", ["a"], 120],
      ["02", ["a", "b"], 0],
    ]);
    expect(seats[1]?.privateKey).toBe(keys[1]);
    expect(seats[1]?.hosts[1]?.name).toBe("criu-lab-seat-02-b");
  });

  it("reads a two-host seat's migration; a stack without it (older) reads as before", () => {
    const { outputs } = classOutputs();
    // classOutputs is a stack from before the migration field: no seat has one.
    expect(parseSeatOutputs(outputs).map((s) => s.migration)).toEqual([undefined, undefined]);
    const migration = { modeAsked: "auto", mode: "page-server", downtimeMs: 919.2 };
    const withIt = { seats: [outputs.seats[0], { ...outputs.seats[1], migration }] };
    expect(parseSeatOutputs(withIt)[1]?.migration).toEqual(migration);
    // verify false: nothing ran, nothing measured.
    const idle = { modeAsked: "cold", mode: null, downtimeMs: null };
    const withIdle = { seats: [{ ...outputs.seats[1], migration: idle }] };
    expect(parseSeatOutputs(withIdle)[0]?.migration).toEqual(idle);
    // null reads as absent.
    const withNull = { seats: [{ ...outputs.seats[0], migration: null }] };
    expect(parseSeatOutputs(withNull)[0]).not.toHaveProperty("migration");
  });

  it("reads today's single-seat outputs as seat 01, host a", () => {
    const { privateKey, publicLine } = keyPair();
    const seats = parseSeatOutputs({
      instanceId: "i-0123456789abcdef0",
      publicIp: "198.51.100.7",
      sshUser: "ubuntu",
      privateKey,
      knownHostsLine: `198.51.100.7 ${publicLine}`,
      sshCommand: "ssh -i criu-lab.pem ubuntu@198.51.100.7",
      criuVersion: "4.2",
    });
    expect(seats).toHaveLength(1);
    expect(seats[0]).toMatchObject({ seat: "01", sshUser: "ubuntu" });
    expect(seats[0]?.autoStopMinutes).toBeUndefined();
    expect(seats[0]?.hosts).toEqual([
      expect.objectContaining({ role: "a", publicIp: "198.51.100.7" }),
    ]);
  });

  it("refuses outputs that are not a lab's, naming the output: exit 3, no key echoed", () => {
    const cases: Array<[(o: ReturnType<typeof classOutputs>["outputs"]) => unknown, RegExp]> = [
      [() => [], /should be a JSON object, got an array/],
      [
        () => ({ instanceId: "i-0123456789abcdef0" }),
        /'publicDns' is missing \(present: instanceId\)/,
      ],
      [() => ({ seats: "3" }), /'seats' should list 1 to 50 seats, got a string/],
      [() => ({ seats: [] }), /'seats' should list 1 to 50 seats, got 0/],
      [(o) => ({ seats: Array(51).fill(o.seats[0]) }), /got 51/],
      [
        (o) => ({ seats: [{ ...o.seats[0], seat: "1" }] }),
        /'seats\[0\].seat' is '1'; allowed: two digits/,
      ],
      [(o) => ({ seats: [o.seats[0], o.seats[0]] }), /'seats\[1\].seat' is '01' after '01'/],
      [(o) => ({ seats: [o.seats[1], o.seats[0]] }), /increasing order/],
      [
        (o) => ({ seats: [{ ...o.seats[1], hosts: [] }] }),
        /'seats\[0\].hosts' should list 1 or 2 hosts, got 0/,
      ],
      [
        (o) => ({
          seats: [{ ...o.seats[1], hosts: [...o.seats[1]!.hosts, o.seats[1]!.hosts[1]] }],
        }),
        /got 3/,
      ],
      [
        (o) => ({
          seats: [{ ...o.seats[1], hosts: [o.seats[1]!.hosts[1], o.seats[1]!.hosts[0]] }],
        }),
        /'seats\[0\].hosts\[0\].role' is 'b'; hosts come in the order 'a', 'b'/,
      ],
      [
        (o) => ({
          seats: [
            { ...o.seats[0], hosts: [{ ...o.seats[0]!.hosts[0], publicIp: "1.2.3.4; rm -rf ~" }] },
          ],
        }),
        /'seats\[0\].hosts\[0\].publicIp' is '1.2.3.4; rm -rf ~'; allowed: an IP address/,
      ],
      [
        (o) => ({
          seats: [
            {
              ...o.seats[0],
              hosts: [{ ...o.seats[0]!.hosts[0], knownHostsLine: "1.2.3.4 ssh-ed25519 !!" }],
            },
          ],
        }),
        /'seats\[0\].hosts\[0\].knownHostsLine' is not usable: host key: the ssh-ed25519 key is not base64/,
      ],
      [
        (o) => ({
          seats: [{ ...o.seats[0], hosts: [{ ...o.seats[0]!.hosts[0], instanceId: undefined }] }],
        }),
        /'seats\[0\].hosts\[0\].instanceId' should be a non-empty string, got missing/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[0], autoStopMinutes: -1 }] }),
        /autoStopMinutes' should be a whole number .* got -1/,
      ],
      [(o) => ({ seats: [{ ...o.seats[0], autoStopMinutes: "120" }] }), /got a string/],
      [
        (o) => ({ seats: [{ ...o.seats[0], sshUser: "Ubuntu Admin" }] }),
        /sshUser' is 'Ubuntu Admin'/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[0], privateKey: "[secret]" }] }),
        /privateKey' is not a private key .*--show-secrets/,
      ],
      [
        (o) => ({ seats: [o.seats[0], { ...o.seats[1], privateKey: o.seats[0]!.privateKey }] }),
        /'seats\[1\].privateKey' is the same key as seats\[0\]'s; every seat must have its own key/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[0], privateKey: 42 }] }),
        /privateKey' should be the seat's private key, got a number/,
      ],
      // The migration's modeAsked becomes a flag of a command on the host: known modes only.
      [
        (o) => ({
          seats: [{ ...o.seats[1], migration: { ...MIGRATED, modeAsked: "auto; reboot" } }],
        }),
        /'seats\[0\].migration.modeAsked' is 'auto; reboot'; allowed: auto, cold, page-server, pre-copy, lazy/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[1], migration: { ...MIGRATED, modeAsked: undefined } }] }),
        /migration.modeAsked' is missing; allowed: auto,/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[1], migration: { ...MIGRATED, mode: "auto" } }] }),
        /migration.mode' is 'auto'; allowed: cold, page-server, pre-copy, lazy, or null/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[1], migration: { ...MIGRATED, downtimeMs: -1 } }] }),
        /migration.downtimeMs' should be milliseconds \(a number >= 0\) or null, got -1/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[1], migration: { ...MIGRATED, downtimeMs: "fast" } }] }),
        /migration.downtimeMs' should be .* got a string/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[1], migration: "page-server" }] }),
        /'seats\[0\].migration' should be an object, got a string/,
      ],
      [
        (o) => ({ seats: [{ ...o.seats[0], migration: MIGRATED }] }),
        /'seats\[0\].migration' is for two-host seats .* this seat has one host/,
      ],
    ];
    for (const [make, message] of cases) {
      const { outputs, keys } = classOutputs();
      expectError(() => parseSeatOutputs(make(outputs)), 3, message, keys);
    }
  });

  it("never echoes a private key given in the wrong output", () => {
    const { outputs, keys } = classOutputs();
    const seat = {
      ...outputs.seats[0],
      hosts: [{ ...outputs.seats[0]!.hosts[0], knownHostsLine: keys[0] }],
    };
    expectError(
      () => parseSeatOutputs({ seats: [seat] }),
      3,
      /a private key \(give the host's public key\)/,
      keys,
    );
  });
});

describe("targetsFromStackOutputs", () => {
  it("migrates in the seat's modeAsked; without it (an older stack) passes no mode", () => {
    const { outputs } = classOutputs();
    expect(targetsFromStackOutputs(outputs).map((t) => t.migrationMode)).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    const seats = [outputs.seats[0], { ...outputs.seats[1], migration: MIGRATED }];
    expect(targetsFromStackOutputs({ seats }).map((t) => [t.role, t.migrationMode])).toEqual([
      ["a", undefined],
      ["a", "auto"],
      ["b", undefined],
    ]);
  });

  it("gives one target per host, port 22, pinned, with a's peer by b's name", () => {
    const { outputs, keys } = classOutputs();
    const targets = targetsFromStackOutputs(outputs);
    expect(targets.map((t) => [t.seat, t.role, t.host, t.port, t.user, t.peer])).toEqual([
      ["01", "a", "203.0.113.10", 22, "ubuntu", undefined],
      ["02", "a", "203.0.113.20", 22, "ubuntu", "ubuntu@criu-lab-seat-02-b"],
      ["02", "b", "203.0.113.21", 22, "ubuntu", undefined],
    ]);
    expect(targets[1]?.privateKey).toBe(keys[1]);
    expect(targets[2]?.hostKey).toBe(outputs.seats[1]?.hosts[1]?.knownHostsLine);
    // Each host's auto-stop, for the hint on a host that looks stopped; no region output.
    expect(targets.map((t) => t.autoStop)).toEqual([
      { minutes: 120, instanceId: outputs.seats[0]?.hosts[0]?.instanceId },
      { minutes: 0, instanceId: outputs.seats[1]?.hosts[0]?.instanceId },
      { minutes: 0, instanceId: outputs.seats[1]?.hosts[1]?.instanceId },
    ]);
    const inRegion = targetsFromStackOutputs({ ...outputs, region: "ap-southeast-1" });
    expect(inRegion[0]?.autoStop?.region).toBe("ap-southeast-1");
  });

  it("--seat N picks one seat; a seat the stack lacks or a bad number is exit 2", () => {
    const { outputs } = classOutputs();
    expect(targetsFromStackOutputs(outputs, { seat: "2" }).map((t) => t.role)).toEqual(["a", "b"]);
    expect(targetsFromStackOutputs(outputs, { seat: "01" })).toHaveLength(1);
    expectError(
      () => targetsFromStackOutputs(outputs, { seat: "7" }),
      2,
      /--seat 7: the stack has no seat 07 \(it has 01, 02\)/,
    );
    for (const bad of ["0", "51", "x", "1.5", "-1", ""]) {
      expectError(
        () => targetsFromStackOutputs(outputs, { seat: bad }),
        2,
        /is not a seat number from 1 to 50/,
      );
    }
  });
});

describe("worstExitCode", () => {
  it("is 0 only when all pass; a broken lab outranks bad input, which outranks not ready", () => {
    expect(worstExitCode([])).toBe(0);
    expect(worstExitCode([0, 0])).toBe(0);
    expect(worstExitCode([0, 3])).toBe(3);
    expect(worstExitCode([3, 2, 0])).toBe(2);
    expect(worstExitCode([3, 1, 2])).toBe(1);
  });
});

describe("classifyMigration", () => {
  /** What `criu-lab scenario run migration` gives when argparse refuses it: exit 2, STDERR. */
  const refused = (stderr: string) => ({ stdout: "", stderr, code: 2 });

  it("a criu-lab without the scenario is 'not available', not a failure (unless required)", () => {
    const r = refused(
      "criu-lab scenario run: error: argument scenario: invalid choice: 'migration' (choose from )\n",
    );
    expect(classifyMigration(r, false)).toMatchObject({ status: "not available", exitCode: 0 });
    expect(classifyMigration(r, true)).toMatchObject({ status: "not available", exitCode: 3 });
  });

  it("a criu-lab without the --mode asked for fails, saying so (it is not 'not available')", () => {
    const r = refused(
      "criu-lab scenario run migration: error: argument --mode: invalid choice: 'auto' (choose from 'cold', 'page-server', 'pre-copy', 'lazy')\n",
    );
    expect(classifyMigration(r, false)).toMatchObject({
      status: "fail",
      exitCode: 1,
      error: expect.stringContaining("argument --mode: invalid choice: 'auto'"),
    });
    const noScenarios = {
      ...r,
      stderr: "criu-lab: error: argument command: invalid choice: 'scenario'",
    };
    expect(classifyMigration(noScenarios, false)).toMatchObject({ status: "not available" });
  });

  it("passes only on exit 0 with ok: true; keeps the scenario's JSON", () => {
    const ok = { stdout: 'migrating...\n{"ok": true, "mode": "cold"}\n', stderr: "", code: 0 };
    expect(classifyMigration(ok, false)).toEqual({
      status: "pass",
      exitCode: 0,
      result: { ok: true, mode: "cold" },
    });
    expect(classifyMigration({ ...ok, stdout: "done\n" }, false)).toMatchObject({
      status: "fail",
      exitCode: 1,
      error: "migration failed: it printed no JSON object with ok: true",
    });
    expect(classifyMigration({ ...ok, code: 1 }, false)).toMatchObject({
      status: "fail",
      exitCode: 1,
    });
  });

  it("reports the scenario's error; its exit 3 stays 3", () => {
    const failed = {
      stdout: '{"ok": false, "error": "restore on b: File exists"}',
      stderr: "",
      code: 1,
    };
    expect(classifyMigration(failed, false)).toMatchObject({
      status: "fail",
      exitCode: 1,
      error: "migration failed: restore on b: File exists",
      result: { ok: false },
    });
    expect(
      classifyMigration({ stdout: "", stderr: "cannot reach ubuntu@b\n", code: 3 }, false),
    ).toMatchObject({ exitCode: 3, error: "migration failed: it exited 3: cannot reach ubuntu@b" });
    expect(
      classifyMigration({ stdout: "", stderr: "", code: null, signal: "KILL" }, false),
    ).toMatchObject({
      exitCode: 1,
      error: "migration failed: it exited on signal KILL",
    });
  });

  it("the check runs the scenario on a with the peer quoted, in the mode asked (if any)", () => {
    expect(migrationCheck("ubuntu@criu-lab-seat-02-b").command).toBe(
      "sudo CRIU_LAB_PROGRESS=off criu-lab scenario run migration --to 'ubuntu@criu-lab-seat-02-b' --json",
    );
    expect(migrationCheck("ubuntu@criu-lab-seat-02-b", "auto").command).toBe(
      "sudo CRIU_LAB_PROGRESS=off criu-lab scenario run migration --to 'ubuntu@criu-lab-seat-02-b' --mode 'auto' --json",
    );
  });
});

describe("seatMigrationOutput", () => {
  it("reads the mode that ran and its downtime from the scenario's real JSON", () => {
    const stdout = capturedStdout("migration");
    const ran = JSON.parse(stdout) as { modeAsked: string; downtimeMs: number };
    expect(ran.modeAsked).toBe("auto");
    expect(seatMigrationOutput(stdout, "auto")).toEqual({
      modeAsked: "auto",
      mode: "page-server",
      downtimeMs: ran.downtimeMs,
    });
    // After progress lines, as the judge on the host passes them on.
    expect(seatMigrationOutput(`counter.py runs as PID 1\n${stdout}`, "auto").mode).toBe(
      "page-server",
    );
  });

  it("says null for what the result does not say, and throws without any JSON", () => {
    expect(seatMigrationOutput('{"ok": true, "mode": "warp"}', "cold")).toEqual({
      modeAsked: "cold",
      mode: null,
      downtimeMs: null,
    });
    expect(() => seatMigrationOutput("migrated\n", "auto")).toThrow(CheckOutputError);
  });
});

function hostReport(
  port: number,
  steps: Array<[string, boolean]>,
  exitCode: number,
  error?: string,
): VerifyReport {
  return {
    ok: exitCode === 0,
    exitCode: exitCode as VerifyReport["exitCode"],
    target: { host: "127.0.0.1", port, user: "ubuntu" },
    steps: steps.map(([name, ok]) => ({ name, ok, ms: 5, ...(ok ? {} : { error }) })),
    ...(error ? { error } : {}),
    durationMs: 12_345,
  };
}

const ALL_OK: Array<[string, boolean]> = [
  ["connect ubuntu@127.0.0.1:1", true],
  ["cloud-init", true],
  ["criu check", true],
  ["checkpoint/restore demo", true],
];

type SeatMigration = NonNullable<SeatsReport["seats"][number]["migration"]>;

/**
 * A seat of two hosts that both passed (on ports portA and portA + 1), and its migration
 * a -> b: the seat passes when the migration does.
 */
function passingPair(
  seat: string,
  portA: number,
  migration: Omit<SeatMigration, "from" | "to">,
): SeatsReport["seats"][number] {
  return {
    seat,
    ok: migration.exitCode === 0,
    exitCode: migration.exitCode,
    hosts: [
      { role: "a", report: hostReport(portA, ALL_OK, 0) },
      { role: "b", report: hostReport(portA + 1, ALL_OK, 0) },
    ],
    migration: { ...migration, from: `ubuntu@127.0.0.1:${portA}`, to: "ubuntu@b" } as SeatMigration,
  };
}

describe("seatsTable", () => {
  it("one row per host, migration on a's row ('-' for one host), failures named, the verdict", () => {
    const report: SeatsReport = {
      ok: false,
      exitCode: 1,
      parallel: 8,
      durationMs: 20_000,
      seats: [
        {
          seat: "01",
          ok: true,
          exitCode: 0,
          migration: null,
          hosts: [{ role: "a", report: hostReport(2201, ALL_OK, 0) }],
        },
        passingPair("02", 2202, { status: "not available", exitCode: 0, ms: 40 }),
        {
          seat: "03",
          ok: false,
          exitCode: 1,
          hosts: [
            {
              role: "a",
              report: hostReport(
                2204,
                [...ALL_OK.slice(0, 3), ["checkpoint/restore demo", false]],
                1,
                "checkpoint/restore demo failed: File exists\nmore",
              ),
            },
            {
              role: "b",
              report: hostReport(
                2205,
                [["connect ubuntu@127.0.0.1:2205", false]],
                3,
                "host key mismatch",
              ),
            },
          ],
          migration: {
            status: "not run",
            exitCode: 0,
            from: "x",
            to: "y",
            ms: 0,
            error: "not run",
          },
        },
        passingPair("04", 2206, {
          status: "fail",
          exitCode: 1,
          mode: "cold",
          ms: 40,
          error: "migration failed: no",
        }),
        passingPair("05", 2208, {
          status: "pass",
          exitCode: 0,
          modeAsked: "auto",
          mode: "page-server",
          downtimeMs: 919.2,
          ms: 40,
        }),
      ],
    };
    const lines = seatsTable(report).split("\n");
    const cells = (i: number) => lines[i]?.split(/\s{2,}/);
    expect(cells(0)).toEqual([
      "seat",
      "host",
      "cloud-init",
      "check",
      "demo",
      "migration",
      "time",
      "exit",
    ]);
    expect(cells(1)).toEqual(["01", "a 127.0.0.1:2201", "ok", "ok", "ok", "-", "12.3 s", "0"]);
    expect(cells(2)).toEqual(["02", "a 127.0.0.1:2202", "ok", "ok", "ok", "n/a", "12.3 s", "0"]);
    expect(cells(3)?.[5]).toBe("12.3 s"); // b's row has no migration cell
    expect(cells(4)).toEqual([
      "03",
      "a 127.0.0.1:2204",
      "ok",
      "ok",
      "FAIL",
      "not run",
      "12.3 s",
      "1",
    ]);
    expect(cells(5)).toEqual(["03", "b 127.0.0.1:2205", "no ssh", "-", "-", "12.3 s", "3"]);
    // The mode that ran (or failed), as the scenario said.
    expect(cells(6)).toEqual([
      "04",
      "a 127.0.0.1:2206",
      "ok",
      "ok",
      "ok",
      "FAIL cold",
      "12.3 s",
      "0",
    ]);
    expect(cells(8)?.slice(0, 6)).toEqual([
      "05",
      "a 127.0.0.1:2208",
      "ok",
      "ok",
      "ok",
      "ok page-server",
    ]);
    const text = lines.join("\n");
    expect(text).toContain(
      "seat 03 host a 127.0.0.1:2204: checkpoint/restore demo failed (exit 1): checkpoint/restore demo failed: File exists\n",
    );
    expect(text).toContain(
      "seat 03 host b 127.0.0.1:2205: connect ubuntu@127.0.0.1:2205 failed (exit 3): host key mismatch",
    );
    expect(text).toContain(
      "seat 04 migration ubuntu@127.0.0.1:2206 -> ubuntu@b: fail (exit 1): migration failed: no",
    );
    expect(text).not.toContain("seat 02 migration");
    expect(lines.at(-1)).toBe("3 of 5 seat(s) pass; exit 1");
  });
});

describe("verifySeats input", () => {
  const t = (seat: string, role: "a" | "b"): SeatTarget => ({
    seat,
    role,
    host: "127.0.0.1",
    port: 1,
    user: "ubuntu",
    privateKey: "unused",
  });
  it("refuses what cannot be a class before connecting anywhere: exit 2", async () => {
    const opts = { timeoutSeconds: 5 };
    await expect(verifySeats([], opts)).rejects.toThrow("no seats to verify");
    await expect(verifySeats([t("01", "a"), t("01", "a")], opts)).rejects.toThrow(
      "seat 01 has two hosts 'a'",
    );
    await expect(verifySeats([t("01", "b")], opts)).rejects.toThrow(
      "seat 01 has a host 'b' but no host 'a'",
    );
    for (const parallel of [0, 65, 1.5]) {
      await expect(verifySeats([t("01", "a")], { ...opts, parallel })).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringMatching(/--parallel: .* from 1 to 64/),
      });
    }
  });
});
