/**
 * The two-VM lab's private link (vm/pair.ts, `lab:vm --hosts 2`), its shell script run for
 * real: two network namespaces stand for the two guests, a veth link whose ends carry the
 * MACs QEMU gives the guests' second NICs. Each side finds its NIC by MAC and takes its
 * address, as in the guests; then a TCP connection crosses the link. Named `clpair-<pid>-*` and removed afterwards.
 */
import { spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { linkScript, PAIR } from "../../vm/pair";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import { run } from "./support/lab-helpers";

const skip = cannotRun("the two-VM link script", [
  needRoot(),
  needCommand("ip", "apt-get install iproute2"),
]);

const tag = `clpair-${process.pid}`;
const ns = { a: `${tag}-a`, b: `${tag}-b`, lonely: `${tag}-c` };

/** Runs `script` with sh in namespace `netns` (nsenter, docs/design.md "Facts"), asynchronously. */
function inNetns(netns: string, script: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "sh", "-c", script]);
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

describe.skipIf(skip)("the two-VM lab's private link script", () => {
  afterAll(() => {
    for (const name of Object.values(ns)) run("ip", ["netns", "del", name]);
    run("ip", ["link", "del", `${tag.slice(0, 10)}a`]);
  });

  it("gives each side its address on the NIC with its MAC, and each then reaches the other", async () => {
    for (const name of Object.values(ns)) expect(run("ip", ["netns", "add", name]).code).toBe(0);
    const link = `${tag.slice(0, 10)}`;
    expect(
      run("ip", ["link", "add", `${link}a`, "type", "veth", "peer", "name", `${link}b`]).code,
    ).toBe(0);
    for (const role of ["a", "b"] as const) {
      const dev = `${link}${role}`;
      expect(run("ip", ["link", "set", dev, "address", PAIR[role].mac]).code).toBe(0);
      expect(run("ip", ["link", "set", dev, "netns", ns[role]]).code).toBe(0);
    }
    const [a, b] = await Promise.all([
      inNetns(ns.a, linkScript("a")),
      inNetns(ns.b, linkScript("b")),
    ]);
    expect(a, a.out).toMatchObject({ code: 0 });
    expect(b, b.out).toMatchObject({ code: 0 });
    const addr = run("nsenter", [`--net=/run/netns/${ns.b}`, "ip", "-o", "-4", "addr"]).stdout;
    expect(addr).toContain(`${PAIR.b.ip}/24`);
    // a listens, b connects to a's address: the link carries traffic both ways.
    const py = (code: string) => `/usr/bin/python3 -c '${code}'`;
    const listener = inNetns(
      ns.a,
      py(
        `import socket; s = socket.create_server(("${PAIR.a.ip}", 2222)); c, peer = s.accept(); print("from", peer[0])`,
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    const client = await inNetns(
      ns.b,
      py(`import socket; socket.create_connection(("${PAIR.a.ip}", 2222), 5).close()`),
    );
    expect(client, client.out).toMatchObject({ code: 0 });
    expect((await listener).out).toContain(`from ${PAIR.b.ip}`);
  });

  it("fails, naming the MAC, where no NIC has it", async () => {
    const r = await inNetns(ns.lonely, linkScript("a"));
    expect(r.code).toBe(1);
    expect(r.out).toContain(`no NIC with MAC ${PAIR.a.mac}`);
  });
});
