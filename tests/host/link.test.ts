/**
 * `criu-lab link` on a real veth between two network namespaces ("hosts" a and b): a rate set
 * on a's side slows a transfer from a to b (compared with the same transfer unshaped, in this
 * test), `show` lists it, `clear` removes only it and the transfer is fast again. A delay is
 * applied where the kernel has netem, and refused with nothing changed where it has not (this
 * project's test machine): the test probes which, and says which branch ran.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import { HOST_DIR, run, tempDir, waitFor } from "./support/lab-helpers";

const LAB = path.join(HOST_DIR, "criu-lab");
const PY = "/usr/bin/python3";
const TAG = `cllink-${process.pid}`;
const NS = { a: `${TAG}-a`, b: `${TAG}-b` };
const DEV = { a: `cl${process.pid}a`, b: `cl${process.pid}b` };
const ADDR = { a: "10.78.0.1", b: "10.78.0.2" };
const PORT = 5201;
const SIZE = 2 * 1024 * 1024;

/** b's receiver: for each connection, reads to EOF and answers with the byte count. */
const RECEIVER = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4); print("listening", flush=True)
while True:
    c, _ = s.accept(); n = 0
    while True:
        b = c.recv(1 << 16)
        if not b: break
        n += len(b)
    c.sendall(str(n).encode()); c.close()
`;

/** a's sender: SIZE bytes to b; prints the seconds from connect to b's count, the count, and
 * the connect time (one round trip: SYN, SYN-ACK). */
const SENDER = `
import socket, sys, time
t0 = time.monotonic(); c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); t1 = time.monotonic()
c.sendall(b"x" * int(sys.argv[3])); c.shutdown(socket.SHUT_WR)
n = int(c.recv(64)); print(time.monotonic() - t0, n, t1 - t0)
`;

function inNs(ns: string, argv: string[], env?: NodeJS.ProcessEnv) {
  return run("nsenter", [`--net=/run/netns/${ns}`, ...argv], env ? { env } : {});
}

describe.skipIf(
  cannotRun("criu-lab link", [
    needRoot(),
    needCommand("tc", "apt-get install iproute2"),
    needCommand("nsenter"),
    needCommand("unshare"),
  ]),
)("criu-lab link on a veth between two namespaces", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let receiver: ChildProcess | undefined;

  /** criu-lab link ARGS on host a, as root there. */
  const lab = (args: string[]) => inNs(NS.a, [LAB, "link", ...args], env);
  const labJson = (args: string[]) => {
    const ran = lab([...args, "--json"]);
    return { code: ran.code, r: JSON.parse(ran.stdout) as Record<string, unknown>, ran };
  };
  /** One transfer a -> b: its seconds, and the connect's. */
  const transfer = () => {
    const ran = inNs(NS.a, [PY, "-c", SENDER, ADDR.b, String(PORT), String(SIZE)]);
    expect(ran.code, ran.stderr).toBe(0);
    const [seconds, received, connect] = ran.stdout.trim().split(" ").map(Number);
    expect(received).toBe(SIZE);
    return { seconds: seconds!, connect: connect! };
  };
  const rootQdisc = () => inNs(NS.a, ["tc", "qdisc", "show", "dev", DEV.a]).stdout.trim();

  beforeAll(async () => {
    dir = tempDir("link");
    // The seat's peer as the peer set-up names it, so that no flag is needed (the default).
    fs.writeFileSync(
      path.join(dir, "hosts"),
      `127.0.0.1 localhost\n${ADDR.b} criu-lab-seat-99-b # criu-lab peer\n`,
    );
    env = {
      ...process.env,
      CRIU_LAB_RUN_DIR: path.join(dir, "run"),
      CRIU_LAB_HOSTS_FILE: path.join(dir, "hosts"),
    };
    for (const ns of Object.values(NS)) expect(run("ip", ["netns", "add", ns]).code).toBe(0);
    expect(run("ip", ["link", "add", DEV.a, "type", "veth", "peer", "name", DEV.b]).code).toBe(0);
    for (const h of ["a", "b"] as const) {
      expect(run("ip", ["link", "set", DEV[h], "netns", NS[h]]).code).toBe(0);
      expect(inNs(NS[h], ["ip", "addr", "add", `${ADDR[h]}/24`, "dev", DEV[h]]).code).toBe(0);
      expect(inNs(NS[h], ["ip", "link", "set", DEV[h], "up"]).code).toBe(0);
      expect(inNs(NS[h], ["ip", "link", "set", "lo", "up"]).code).toBe(0);
    }
    receiver = spawn(
      "nsenter",
      [`--net=/run/netns/${NS.b}`, PY, "-c", RECEIVER, ADDR.b, String(PORT)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let said = "";
    receiver.stdout!.on("data", (d: Buffer) => (said += d.toString()));
    await waitFor("b's receiver to listen", () => (said.includes("listening") ? true : undefined));
  });

  afterAll(async () => {
    if (receiver?.pid && receiver.exitCode === null) {
      const exited = new Promise((resolve) => receiver!.once("exit", resolve));
      receiver.kill("SIGTERM");
      await exited;
    }
    for (const ns of Object.values(NS)) run("ip", ["netns", "del", ns]);
    run("ip", ["link", "del", DEV.a]); // only left in the root namespace by a failed set-up
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses loopback and this host's own address, touching nothing", () => {
    for (const args of [
      ["--dev", "lo"],
      ["--to", ADDR.a],
      ["--to", "127.0.0.1"],
    ]) {
      const { code, r } = labJson(["set", "--rate", "8mbit", ...args]);
      expect(code, JSON.stringify(r)).toBe(ExitCode.usage);
      expect(String(r.error)).toMatch(/loopback/);
    }
    expect(rootQdisc()).toMatch(/^qdisc noqueue 0: /);
    expect(inNs(NS.a, ["tc", "qdisc", "show", "dev", "lo"]).stdout).toMatch(/^qdisc noqueue 0: /);
  });

  it("slows a transfer to the rate, shows it, and clear makes it fast again", () => {
    const before = transfer();
    const set = labJson(["set", "--rate", "8mbit"]); // the peer from the hosts file
    expect(set.code, set.ran.stdout + set.ran.stderr).toBe(ExitCode.ok);
    expect(set.r).toMatchObject({ dev: DEV.a, to: "criu-lab-seat-99-b", address: ADDR.b });
    expect(rootQdisc()).toMatch(/^qdisc tbf c1ab: root .*rate 8Mbit/);

    const shaped = transfer();
    const shown = labJson(["show", "--to", ADDR.b]);
    expect(shown.code).toBe(ExitCode.ok);
    const links = shown.r.links as Array<Record<string, unknown>>;
    expect(links).toHaveLength(1);
    expect(links[0]).toMatchObject({
      dev: DEV.a,
      shaped: true,
      asked: { rate: "8mbit", rateBitsPerSecond: 8_000_000 },
      root: { kind: "tbf", handle: "c1ab:" },
    });
    expect(lab(["show"]).stdout).toContain(`${DEV.a}: shaped by the lab: rate 8mbit (egress)`);

    const cleared = labJson(["clear"]);
    expect(cleared.code).toBe(ExitCode.ok);
    expect(cleared.r.cleared).toEqual([DEV.a]);
    expect(rootQdisc()).toMatch(/^qdisc noqueue 0: /);
    const after = transfer();

    const mbit = (t: { seconds: number }) => ((SIZE * 8) / t.seconds / 1e6).toFixed(1);
    console.log(
      `2 MiB a->b: unshaped ${before.seconds.toFixed(3)} s (${mbit(before)} Mbit/s), at 8mbit ` +
        `${shaped.seconds.toFixed(3)} s (${mbit(shaped)} Mbit/s), cleared ${after.seconds.toFixed(3)} s ` +
        `(${mbit(after)} Mbit/s); load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`,
    );
    // Ratios measured in this test, not timings: tbf lets no more than the rate through
    // (plus its 32 KiB bucket), so load can only make the shaped transfer slower still.
    expect(shaped.seconds).toBeGreaterThan(3 * before.seconds);
    expect(shaped.seconds).toBeGreaterThan(3 * after.seconds);
    expect((SIZE * 8) / shaped.seconds).toBeLessThan(1.25 * 8_000_000);
  });

  it("applies a delay where the kernel has netem, and refuses it with nothing changed where not", () => {
    const netem = run("unshare", ["--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem"]);
    expect(labJson(["set", "--rate", "8mbit", "--to", ADDR.b]).code).toBe(ExitCode.ok);
    const before = rootQdisc();
    const set = labJson(["set", "--rate", "100mbit", "--delay", "20ms", "--to", ADDR.b]);
    if (netem.code !== 0) {
      console.log(`no netem on this kernel (${netem.stderr.trim()}): the refusal branch ran`);
      expect(set.code, JSON.stringify(set.r)).toBe(ExitCode.unreachable);
      expect(set.r.error).toBe(
        `this kernel has no netem (sch_netem module): rate only; nothing was changed on ${DEV.a}`,
      );
      expect(rootQdisc()).toBe(before); // still the 8mbit tbf
    } else {
      console.log("netem on this kernel: the delay branch ran");
      expect(set.code, JSON.stringify(set.r)).toBe(ExitCode.ok);
      expect(rootQdisc()).toMatch(/^qdisc netem c1ab: root .*delay 20ms/);
      expect(inNs(NS.a, ["tc", "qdisc", "show", "dev", DEV.a]).stdout).toMatch(
        /qdisc tbf c1ac: parent c1ab:1 .*rate 100Mbit/,
      );
      // The SYN leaves a through netem: one connect takes at least the delay.
      expect(transfer().connect).toBeGreaterThan(0.018);
    }
    expect(labJson(["clear", "--dev", DEV.a]).code).toBe(ExitCode.ok);
    expect(rootQdisc()).toMatch(/^qdisc noqueue 0: /);
  });

  it("leaves a root qdisc it did not set alone", () => {
    const add = ["tc", "qdisc", "add", "dev", DEV.a, "root", "handle", "1:", "tbf"];
    expect(inNs(NS.a, [...add, "rate", "1gbit", "burst", "64k", "latency", "50ms"]).code).toBe(0);
    const set = labJson(["set", "--rate", "8mbit"]);
    expect(set.code).toBe(ExitCode.unreachable);
    expect(String(set.r.error)).toContain("root qdisc is tbf 1:, which the lab did not set");
    const cleared = labJson(["clear"]);
    expect(cleared.code).toBe(ExitCode.ok);
    expect(cleared.r.cleared).toEqual([]);
    expect(rootQdisc()).toMatch(/^qdisc tbf 1: root/);
    expect(inNs(NS.a, ["tc", "qdisc", "del", "dev", DEV.a, "root"]).code).toBe(0);
  });
});
