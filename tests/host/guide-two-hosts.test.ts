/**
 * The lab guide's two-host lessons by hand, their blocks read from docs/lab-guide.md and typed
 * into an interactive bash on "host a", as a learner types them on a seat: a cold migration
 * (dump, scp, restore over ssh) and a migration through CRIU's page server (tunnelled
 * through ssh), each of a detached counter that must go on there from the next number.
 *
 * The two hosts are network namespaces on a veth link (netlab/), `b` with its own sshd whose
 * mount namespace hides the work directory, so what b sees is what scp sent. The terminal of
 * `a` runs in a's network namespace and a mount namespace of its own where the peer set-up
 * of a seat is made as components/peerSetup.ts makes it: the peer's name in /etc/hosts, its
 * host key known under that name, a key that logs in to it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLabPair, REAPER, type LabPair } from "../../netlab/netns";
import { cannotRun } from "../support/requirements";
import { guideBlock } from "../support/guide-blocks";
import { alive, LAB, tempDir, waitFor } from "./support/lab-helpers";
import { needLabHost, needPanes, needSshd } from "./support/needs";
import { Terminals } from "./support/terminals";

const A = 0;
const counts = (text: string) => [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

/** The peer's name as the guide sets it (`PEER=...`). */
function peerName(): string {
  const line = guideBlock("peer-name").find((l) => l.startsWith("PEER="));
  if (!line) throw new Error("docs/lab-guide.md: the peer-name block sets no PEER=");
  return line.slice("PEER=".length).trim();
}

/** Both hosts share this kernel, so the PID a restore on b needs is the one the dump on a
 * freed: free once reaped (this machine's init takes its time; between two machines the
 * question never arises). */
const pidFree = (pid: number) =>
  waitFor(`PID ${pid} free`, () => (fs.existsSync(`/proc/${pid}`) ? undefined : true), 60_000);

describe.skipIf(
  cannotRun("the guide's two-host lessons by hand", [
    ...needLabHost("criu"),
    ...needPanes(),
    ...needSshd("netns", "scp"),
  ]),
)("migration by hand between two hosts, typed on a", () => {
  let dir: string;
  let work: string;
  let pair: LabPair;
  let t: Terminals;
  const started: number[] = [];
  const there = (file: string) => pair.destination.ssh(`cat ${work}/${file}`).stdout;

  beforeAll(async () => {
    dir = tempDir("guide-two-hosts");
    work = path.join(dir, "home");
    fs.mkdirSync(work);
    fs.copyFileSync(LAB.counter, path.join(work, "counter.py"));
    fs.chmodSync(path.join(work, "counter.py"), 0o755);
    pair = await createLabPair({ dir, hide: [work] });
    const peer = peerName();
    // A seat's peer set-up (components/peerSetup.ts), in a's own mount namespace.
    const hosts = path.join(dir, "a-hosts");
    fs.writeFileSync(hosts, `${fs.readFileSync("/etc/hosts", "utf8")}\n10.77.0.2 ${peer}\n`);
    const knownHosts = path.join(dir, "a-known_hosts");
    fs.writeFileSync(knownHosts, `${peer},${pair.destination.knownHostsLine}\n`);
    const sshConfig = path.join(dir, "a-ssh_config");
    fs.writeFileSync(
      sshConfig,
      [
        `Host ${peer} 10.77.0.2`,
        `  IdentityFile ${pair.key.path}`,
        "  IdentitiesOnly yes",
        `  UserKnownHostsFile ${knownHosts}`,
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "",
        fs.readFileSync("/etc/ssh/ssh_config", "utf8"),
      ].join("\n"),
    );
    // The shell runs under a subreaper, as a lab host's shell runs under systemd: a detached
    // counter dumped there is reaped at once and its PID is free for b's restore (this
    // machine's init reaps orphans late).
    const reaper = path.join(dir, "reaper.py");
    fs.writeFileSync(reaper, REAPER);
    const enter = path.join(dir, "enter-a.sh");
    fs.writeFileSync(
      enter,
      [
        "#!/bin/sh",
        `exec nsenter --net=/run/netns/${pair.source.netns} unshare --mount --propagation private \\`,
        `  sh -c 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/ssh/ssh_config && shift 2 && exec "$@"' \\`,
        `  sh ${hosts} ${sshConfig} /usr/bin/python3 ${reaper} "$@"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    t = new Terminals(work, 1, (shell) => `${enter} ${shell}`);
  });

  afterAll(async () => {
    for (const pid of started) {
      if (alive(pid) && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("counter.py"))
        process.kill(pid, "SIGKILL");
    }
    t?.close();
    await pair?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Waits for b's counter to write the number after LAST; a failure shows a's screen. */
  async function countingOnThere(last: number) {
    try {
      await waitFor("b's counter counting on", () =>
        counts(there("counter.log")).includes(last + 1) ? true : undefined,
      );
    } catch (e) {
      const tail = t.screen(A).trimEnd().split("\n").slice(-20).join("\n");
      throw new Error(`${String(e)} (after ${last}); a's terminal ends with:\n${tail}`);
    }
  }

  /** The guide's detached start on a; returns the counter's PID. */
  async function startCounter(): Promise<number> {
    const start = guideBlock("detached-start");
    await t.clear(A);
    await t.typeAll(A, start.slice(0, -1));
    t.type(A, start.at(-1)!); // tail -f, until Ctrl-C
    await t.until(A, "the counter counting", (s) => counts(s).length >= 2);
    t.keys(A, "C-c");
    await t.idle(A, "tail -f ended");
    const pid = Number(fs.readFileSync(path.join(work, "counter.pid"), "utf8"));
    started.push(pid);
    return pid;
  }

  /** Types BLOCK on a, waiting after the dump for the PID to be free for b's restore. */
  async function migrate(block: string[], pid: number): Promise<number> {
    let last = -1;
    await t.clear(A);
    await t.typeAll(A, block, async (line) => {
      if (!/sudo criu dump/.test(line)) return;
      expect(t.screen(A)).not.toContain("Dumping FAILED");
      last = Math.max(...counts(fs.readFileSync(path.join(work, "counter.log"), "utf8")));
      await pidFree(pid);
    });
    return last;
  }

  it("names the peer: ssh reaches it by name, its host key known", async () => {
    await t.typeAll(A, guideBlock("peer-name"));
    expect(t.screen(A)).toMatch(/^\d+\.\d+\S*$/m); // uname -r, from b
  });

  it("cold by hand: dump, scp, restore there; it counts on there from the next number", async () => {
    const pid = await startCounter();
    const last = await migrate(guideBlock("cold-by-hand"), pid);
    // tail -n 3, over ssh, of the log b's counter writes.
    await countingOnThere(last);
    // tail -n 3 there: numbers after the last one written here.
    expect(Math.max(...counts(t.screen(A)))).toBeGreaterThan(last);
    expect(alive(pid), "restored with its PID").toBe(true);
    expect(there("cold/pstree.img").length).toBeGreaterThan(0);
    await t.typeAll(A, guideBlock("cold-end"));
    await waitFor("b's counter ended", () => (alive(pid) ? undefined : true));
  });

  it("page server by hand: the pages go to b only; it counts on there", async () => {
    const pid = await startCounter();
    await pidFree(started[0]!); // the cold lesson's counter, ended on b
    const last = await migrate(guideBlock("page-server-by-hand"), pid);
    await countingOnThere(last);
    expect(alive(pid), "restored with its PID").toBe(true);
    // The pages reached b through the tunnel and never touched a's disk.
    expect(fs.readdirSync(path.join(work, "ps")).filter((f) => f.startsWith("pages-"))).toEqual([]);
    expect(pair.destination.ssh(`ls ${work}/ps`).stdout).toMatch(/^pages-\d+\.img$/m);
    await t.typeAll(A, guideBlock("page-server-end"));
    await waitFor("b's counter ended", () => (alive(pid) ? undefined : true));
  });
});
