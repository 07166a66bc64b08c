/**
 * `criu-lab-verify --stack NAME` on a class: --seat, --parallel, --json, the table
 * and the exit code, against an injected stack output whose hosts cannot be reached (the
 * verifier against real sshd is tests/host/verify-seats.test.ts). No key is ever printed.
 */
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { USAGE, main, parseFlags } from "../../verify/cli";
import { SeatsReport } from "../../verify/seats";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs+lsyjLhF6WNSYyc1XOWc/ZX0o1P2XsU/Rvvymo70+";

/** A real key per seat (ssh2 must accept it for the hosts to be dialled), never printed. */
const keys = new Map<string, string>();
const keyOf = (seat: string): string => {
  const known = keys.get(seat);
  if (known) return known;
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "pkcs1", format: "pem" },
  });
  keys.set(seat, privateKey);
  return privateKey;
};

/**
 * A class's outputs. Its addresses are TEST-NET-1 (RFC 5737), which nothing answers: every
 * host ends "not reachable" (3) within --timeout.
 */
function classOutputs(seats: number, hosts: 1 | 2): string {
  const list = Array.from({ length: seats }, (_, i) => {
    const seat = String(i + 1).padStart(2, "0");
    return {
      seat,
      sshUser: "ubuntu",
      privateKey: keyOf(seat),
      autoStopMinutes: 120,
      hosts: (hosts === 2 ? ["a", "b"] : ["a"]).map((role, j) => {
        const ip = `192.0.2.${i * 2 + j + 1}`;
        return {
          role,
          name: `criu-lab-seat-${seat}-${role}`,
          instanceId: `i-0123456789abcde${i}${j}`,
          publicIp: ip,
          privateIp: `10.0.1.${i * 2 + j + 10}`,
          sshCommand: `ssh -i seat-${seat}.pem ubuntu@${ip}`,
          knownHostsLine: `${ip} ${HOST_KEY}`,
        };
      }),
    };
  });
  return JSON.stringify({ publicIp: "192.0.2.1", privateKey: keyOf("01"), seats: list });
}

function capture(outputs: string) {
  const out: string[] = [];
  const err: string[] = [];
  let reads = 0;
  return {
    out,
    err,
    reads: () => reads,
    deps: {
      out: (t: string) => out.push(t),
      err: (t: string) => err.push(t),
      readStack: async () => {
        reads++;
        return outputs;
      },
    },
  };
}

describe("criu-lab-verify --stack on a class", () => {
  it("parses --seat and --parallel, refusing a bad --parallel", () => {
    expect(parseFlags(["--stack", "s", "--seat", "3", "--parallel", "4"])).toMatchObject({
      seat: "3",
      parallel: 4,
    });
    for (const bad of ["0", "65", "x", "-1"]) {
      expect(() => parseFlags(["--stack", "s", "--parallel", bad])).toThrow(
        `--parallel: '${bad}' is not a whole number from 1 to 64`,
      );
    }
    expect(USAGE).toContain("--seat N");
    expect(USAGE).toContain("--parallel N");
  });

  it("refuses --seat without --stack, and with a flag that names one host (exit 2)", async () => {
    const c = capture(classOutputs(2, 2));
    expect(await main(["--seat", "1"], c.deps)).toBe(2);
    expect(c.err[0]).toContain("--seat and --parallel need --stack NAME");
    const d = capture(classOutputs(2, 2));
    expect(await main(["--stack", "class", "--seat", "1", "--host", "h"], d.deps)).toBe(2);
    expect(d.err[0]).toContain("--host takes one host and does not go with --seat");
  });

  it("refuses a seat the stack does not have (exit 2), naming the seats it has", async () => {
    const c = capture(classOutputs(2, 1));
    expect(await main(["--stack", "class", "--seat", "9"], c.deps)).toBe(2);
    expect(c.err[0]).toContain("--seat 9: the stack has no seat 09 (it has 01, 02)");
  });

  it("verifies every host of every seat and prints the table; exit 3 when none answers", async () => {
    const c = capture(classOutputs(2, 2));
    const code = await main(["--stack", "class", "--parallel", "4", "--timeout", "2"], c.deps);
    expect(code).toBe(3);
    expect(c.reads()).toBe(1);
    const table = c.out.join("\n");
    expect(table.split("\n")[0]).toMatch(
      /^seat\s+host\s+cloud-init\s+check\s+demo\s+migration\s+time\s+exit$/,
    );
    for (const host of ["a 192.0.2.1:22", "b 192.0.2.2:22", "a 192.0.2.3:22", "b 192.0.2.4:22"]) {
      expect(table).toContain(host);
    }
    // Both hosts failed, so the migration did not run; every failure names seat and host.
    expect(table).toMatch(/seat 01 host a 192\.0\.2\.1:22: connect .* failed \(exit 3\)/);
    expect(table).toContain("not run");
    expect(table.split("\n").at(-1)).toBe("0 of 2 seat(s) pass; exit 3");
    for (const seat of ["01", "02"]) {
      expect(c.out.join("") + c.err.join("")).not.toContain(keyOf(seat).split("\n")[1]);
    }
  });

  it("--seat N --json: one JSON report of that seat only", async () => {
    const c = capture(classOutputs(3, 1));
    const code = await main(
      ["--stack", "class", "--seat", "02", "--json", "--timeout", "2"],
      c.deps,
    );
    expect(code).toBe(3);
    expect(c.out).toHaveLength(1);
    const report = JSON.parse(c.out[0]!) as SeatsReport;
    expect(report.seats.map((s) => s.seat)).toEqual(["02"]);
    expect(report).toMatchObject({ ok: false, exitCode: 3, parallel: 8 });
    expect(c.out[0]).not.toContain(keyOf("02").split("\n")[1]);
  });

  it("reads a one-host stack the way it always did: one report, no table", async () => {
    const c = capture(classOutputs(1, 1));
    const code = await main(["--stack", "solo", "--json", "--timeout", "2"], c.deps);
    expect(code).toBe(3);
    const report = JSON.parse(c.out[0]!) as { target: { host: string }; seats?: unknown };
    expect(report.target.host).toBe("192.0.2.1");
    expect(report.seats).toBeUndefined();
    expect(c.reads()).toBe(1);
  });

  it("outputs that break the contract: exit 3, naming the output", async () => {
    const broken = JSON.parse(classOutputs(2, 2)) as { seats: Array<{ privateKey: string }> };
    broken.seats[1]!.privateKey = broken.seats[0]!.privateKey;
    const c = capture(JSON.stringify(broken));
    expect(await main(["--stack", "class"], c.deps)).toBe(3);
    expect(c.err[0]).toContain("seats[1].privateKey' is the same key as seats[0]'s");
  });
});
