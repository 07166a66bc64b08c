/**
 * `criu-lab migrate --fault`: faults caused on purpose during a migration between two
 * network-namespace hosts (netlab/netns.ts), for real: the page server killed, the link cut,
 * the destination's disk full. Each ends with the counter running (here or there), nothing
 * frozen, the fault undone, and the JSON naming the fault, CRIU's part, the lab's, the evidence.
 * `--fault lazy-kill` needs a second kernel: the VM pair causes it (tests/vm/lab-debian13.test.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun, needCommand } from "../support/requirements";
import { needMigrationHosts } from "./support/needs";
import { type LabPair } from "../../netlab/netns";
import {
  DST,
  LAB_COMMAND as LAB,
  migrationHosts,
  netnsOf,
  oneJsonLine,
  stillCountsHere,
  type MigrationHosts,
} from "./support/migration-hosts";

interface Faulted {
  ok: boolean;
  pid: number;
  restoredPid?: number;
  lastBeforeDump?: number;
  firstAfterRestore?: number;
  downtimeMs?: number;
  imagesDir: string;
  error?: string;
  fault: {
    name: string;
    seconds?: number;
    late?: boolean;
    causedAt: string | null;
    criu: string;
    lab: string;
    outcome: string;
    processHere: string | null;
    evidence: Record<string, string>;
    cutForMs?: number;
    linkRestored?: boolean;
    tmpfsRemoved?: boolean;
  };
}

const missing = cannotRun("criu-lab migrate --fault", [
  ...needMigrationHosts(),
  needCommand("tc", "apt-get install iproute2"),
]);
describe.skipIf(missing)("criu-lab migrate --fault between two network-namespace hosts", () => {
  let hosts: MigrationHosts;
  let work: string;
  let pair: LabPair;

  beforeAll(async () => {
    hosts = await migrationHosts("faults");
    ({ work, pair } = hosts);
  });
  afterAll(() => hosts?.remove());

  const migrate = (args: string[]) =>
    pair.source.ssh(
      `CRIU_LAB_LOG_DIR=${work}/logs ${LAB} migrate --to root@${DST} --identity ${pair.key.path} ` +
        `--known-hosts ${pair.knownHosts} ${args.join(" ")} --json`,
    );

  const startCounter = (name: string) => hosts.startCounter(name);

  const parse = (ran: { stdout: string; stderr: string }) => oneJsonLine<Faulted>(ran);

  /** No qdisc of the lab's left on the source's link: the cut is gone. */
  const noCutLeft = () => expect(pair.source.ssh("tc qdisc show").stdout).not.toMatch(/c1ab:/);
  /** No tmpfs of the fault's left on the destination. */
  const noTmpfsLeft = () =>
    expect(pair.destination.ssh("findmnt -n -o SOURCE").stdout).not.toMatch(/criu-lab-fault/);

  it("page-server-kill: the dump fails, CRIU lets the process run on here, the logs named", async () => {
    const { pid, log } = await startCounter("page-server-kill");
    const ran = migrate([
      "--pid",
      String(pid),
      "--mode",
      "page-server",
      "--fault",
      "page-server-kill",
    ]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.labBroken);
    const r = parse(ran);
    expect(r.error).toMatch(/criu dump .*exited/);
    expect(r.fault).toMatchObject({
      name: "page-server-kill",
      outcome: "failed, never dumped",
      processHere: "running",
    });
    expect(r.fault.causedAt).toMatch(
      /^page server PID \d+ on 10\.77\.0\.2 killed after it started/,
    );
    expect(r.fault.lab).toContain("CRIU let it run on after the failed dump");
    // The evidence is where the JSON says: CRIU's dump log here names the failure, the page
    // server's log there its start.
    const dumpLog = fs.readFileSync(r.fault.evidence.dumpLog, "utf8");
    expect(dumpLog).toMatch(/Error/);
    const [, there] = r.fault.evidence.pageServerLogThere.split(":");
    expect(pair.destination.ssh(`test -s ${there}`).code).toBe(0);
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });

  it("link-cut:10 survives: the copy resumes once the link is back, the counter goes on there", async () => {
    const { pid, log } = await startCounter("link-cut-10");
    const ran = migrate(["--pid", String(pid), "--fault", "link-cut:10"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = parse(ran);
    expect(r).toMatchObject({ ok: true, restoredPid: pid });
    expect(r.firstAfterRestore).toBe((r.lastBeforeDump ?? -1) + 1);
    expect(r.fault).toMatchObject({
      name: "link-cut",
      seconds: 10,
      outcome: "survived",
      linkRestored: true,
    });
    // The cut lasted its 10 s and the process was down at least as long.
    expect(r.fault.cutForMs).toBeGreaterThanOrEqual(10_000);
    expect(r.downtimeMs).toBeGreaterThanOrEqual(10_000);
    expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).toBe(netnsOf("dst"));
    expect(pair.destination.ssh(`cat ${log}`).stdout).toContain(
      `Counter: ${r.lastBeforeDump}\nCounter: ${r.firstAfterRestore}\n`,
    );
    noCutLeft();
    console.log(`link-cut:10 survived: downtime ${r.downtimeMs} ms, cut ${r.fault.cutForMs} ms`);
    process.kill(pid, "SIGKILL");
  });

  it("link-cut:40 fails: SSH cannot reach the destination, the lab restores the process here", async () => {
    const { pid, log } = await startCounter("link-cut-40");
    const ran = migrate(["--pid", String(pid), "--fault", "link-cut:40"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
    const r = parse(ran);
    expect(r.fault).toMatchObject({
      name: "link-cut",
      outcome: "failed, restored here",
      processHere: "running",
      linkRestored: true,
    });
    // Given up before the cut's end (SSH's keepalive, about 20 s), the cut then removed.
    expect(r.fault.cutForMs).toBeLessThan(40_000);
    console.log(
      `link-cut:40 given up: cut removed after ${r.fault.cutForMs} ms; ${r.error?.split("\n")[0]}`,
    );
    expect(r.error).toContain(`The process was dumped; it runs again here as PID ${pid}.`);
    expect(fs.existsSync(path.join(r.imagesDir, "pstree.img"))).toBe(true);
    noCutLeft();
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });

  it("disk-full: the room check sees it, refused before the freeze (exit 3)", async () => {
    const { pid, log } = await startCounter("disk-full");
    const ran = migrate(["--pid", String(pid), "--fault", "disk-full"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
    const r = parse(ran);
    expect(r.error).toMatch(
      /no room for the images of PID \d+ in 10\.77\.0\.2:.*nothing was frozen/,
    );
    expect(r.fault).toMatchObject({
      name: "disk-full",
      late: false,
      outcome: "failed, never dumped",
      processHere: "running",
      tmpfsRemoved: true,
    });
    expect(r.fault.lab).toContain("the refusal came before any freeze");
    noTmpfsLeft();
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });

  it("disk-full:late: filled after the dump, the copy fails, restored here from the kept images", async () => {
    const { pid, log } = await startCounter("disk-full-late");
    const ran = migrate(["--pid", String(pid), "--fault", "disk-full:late"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.labBroken);
    const r = parse(ran);
    expect(r.error).toMatch(/copying to 10\.77\.0\.2 failed: .*No space left on device/);
    expect(r.error).toContain(`The process was dumped; it runs again here as PID ${pid}.`);
    expect(r.fault).toMatchObject({
      name: "disk-full",
      late: true,
      outcome: "failed, restored here",
      processHere: "running",
      tmpfsRemoved: true,
    });
    expect(r.fault.evidence.imagesHere).toBe(r.imagesDir);
    expect(fs.existsSync(path.join(r.imagesDir, "MANIFEST.json"))).toBe(true);
    noTmpfsLeft();
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });

  it("a fault the mode has no part for, or no such fault: exit 2 naming it, nothing frozen", async () => {
    const { pid, log } = await startCounter("bad-fault");
    const wrong = migrate(["--pid", String(pid), "--mode", "cold", "--fault", "page-server-kill"]);
    expect(wrong.code, wrong.stdout + wrong.stderr).toBe(ExitCode.usage);
    expect(parse(wrong).error).toContain("--fault page-server-kill needs --mode page-server");
    const unknown = pair.source.ssh(`${LAB} migrate --to root@${DST} --pid ${pid} --fault warp`);
    expect(unknown.code).toBe(ExitCode.usage);
    expect(unknown.stderr).toContain("argument --fault: 'warp' is not a fault: page-server-kill,");
    const long = pair.source.ssh(
      `${LAB} migrate --to root@${DST} --pid ${pid} --fault link-cut:9999`,
    );
    expect(long.code).toBe(ExitCode.usage);
    expect(long.stderr).toContain("'link-cut:9999' is not a fault");
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });
});
