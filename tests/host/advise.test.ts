/**
 * The mode advisor for real between two network-namespace hosts (netlab/netns.ts, as
 * migrate.test.ts sets them up): `criu-lab advise` measures a counter holding memory and the
 * link and freezes nothing; `migrate --mode auto` picks by its predictions and reports them
 * beside what it measured. The command is the checkout's (host/criu-lab), run on the source
 * over its sshd.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun } from "../support/requirements";
import { alive, HOST, run, waitFor } from "./support/lab-helpers";
import { needLabHost, needSshd } from "./support/needs";
import type { LabPair } from "../../netlab/netns";
import {
  DST,
  LAB_COMMAND as LAB,
  migrationHosts,
  type MigrationHosts,
} from "./support/migration-hosts";

const MIB = 2 ** 20;
const HOLD_MIB = 64;
/** A port of this file's range (2230-2239) where nothing listens on the destination. */
const NOBODY = 2230;
/** A counter that first fills HOLD_MIB of memory with random bytes (pages CRIU must move). */
const HOLD = `import os, sys, time
held = bytearray(os.urandom(int(sys.argv[1]) * 2**20))
n = 0
while True:
    print(f"Counter: {n}", flush=True)
    n += 1
    time.sleep(0.2)
`;

interface Stages {
  freezeMs: number;
  transferMs: number;
  restoreMs: number;
  otherMs: number;
}
interface Prediction {
  ok: boolean;
  why?: string;
  downtimeMs?: number;
  stages?: Stages;
  pagesFollowMs?: number;
}
interface Advice {
  measurements: {
    memory: { rssBytes: number; pagesBytes: number };
    dirty: { ok: boolean; why?: string; bytesPerSec?: number };
    link: { rttMs: number; bytesPerSec: number; probeBytes: number; probeMs: number };
  };
  predictions: Record<"cold" | "page-server" | "pre-copy" | "lazy", Prediction>;
  pick: string;
  passedOver: Array<{ mode: string; why: string }>;
  model: Record<string, number>;
}

describe.skipIf(
  cannotRun("criu-lab advise", [...needLabHost("criu", "crit"), ...needSshd("netns")]),
)("criu-lab advise and migrate --mode auto between two network-namespace hosts", () => {
  let hosts: MigrationHosts;
  let work: string;
  let pair: LabPair;
  const tracks = () => run(HOST.criu, ["check", "--feature", "mem_dirty_track"]).code === 0;

  beforeAll(async () => {
    hosts = await migrationHosts("advise");
    ({ work, pair } = hosts);
    fs.writeFileSync(path.join(work, "hold.py"), HOLD);
  });
  afterAll(() => hosts?.remove());

  const lab = (args: string[]) =>
    pair.source.ssh(
      `CRIU_LAB_LOG_DIR=${work}/logs CRIU_LAB_COUNTER=${work}/counter.py ${LAB} ${args.join(" ")}`,
    );
  const to = () => [
    "--to",
    `root@${DST}`,
    "--identity",
    pair.key.path,
    "--known-hosts",
    pair.knownHosts,
  ];

  const lastCount = (log: string) =>
    Number([...fs.readFileSync(log, "utf8").matchAll(/^Counter: (\d+)$/gm)].pop()?.[1]);

  const startHolder = (name: string) => hosts.startCounter(name, `hold.py ${HOLD_MIB}`);

  /** PIDs in the destination's network namespace (one kernel: all of /proc). */
  const inDestination = () => {
    const ns = `net:[${fs.statSync(`/run/netns/clmig-${process.pid}-dst`).ino}]`;
    return fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readlinkSync(`/proc/${p}/ns/net`) === ns && alive(Number(p));
        } catch {
          return false;
        }
      })
      .sort();
  };

  function checkAdvice(a: Advice) {
    const { memory, dirty, link } = a.measurements;
    expect(memory.pagesBytes).toBeGreaterThanOrEqual(HOLD_MIB * MIB);
    expect(memory.rssBytes).toBeGreaterThanOrEqual(memory.pagesBytes);
    expect(link.rttMs).toBeGreaterThan(0);
    expect(link.bytesPerSec).toBeGreaterThan(0);
    expect(link.probeBytes).toBe(8 * MIB);
    for (const mode of ["cold", "page-server"] as const) {
      const p = a.predictions[mode];
      expect(p.ok).toBe(true);
      const s = p.stages!;
      expect(p.downtimeMs).toBeCloseTo(s.freezeMs + s.transferMs + s.restoreMs + s.otherMs, 0);
    }
    expect(a.predictions["page-server"].downtimeMs).toBeLessThanOrEqual(
      a.predictions.cold.downtimeMs!,
    );
    // One kernel: lazy cannot run, and auto never picks it anyway.
    expect(a.predictions.lazy).toMatchObject({
      ok: false,
      why: expect.stringMatching(/^lazy needs a second kernel/),
    });
    if (tracks()) {
      expect(dirty.ok).toBe(true);
      expect(a.predictions["pre-copy"].ok).toBe(true);
    } else {
      // This project's test host: no soft-dirty tracking (docs/design.md "Facts"), said plainly.
      expect(dirty).toEqual({
        ok: false,
        why: expect.stringMatching(/^cannot measure the dirty rate: this kernel has no soft-dirty/),
      });
      expect(a.predictions["pre-copy"]).toMatchObject({ ok: false });
      expect(a.pick).toBe("page-server");
      expect(a.passedOver).toEqual([
        { mode: "pre-copy", why: expect.stringMatching(/^pre-copy needs memory dirty tracking/) },
      ]);
    }
  }

  it("advise: measures, predicts each mode, picks; nothing frozen, nothing left there", async () => {
    const { pid, log } = await startHolder("advise");
    const before = inDestination();
    const ran = lab(["advise", ...to(), "--pid", String(pid), "--json"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const a = JSON.parse(ran.stdout) as Advice & { ok: boolean; pid: number };
    expect(a).toMatchObject({ ok: true, pid });
    console.log(
      `advise (${HOLD_MIB} MiB): ${JSON.stringify(a.measurements)}; predicted ms: ` +
        Object.entries(a.predictions)
          .map(([m, p]) => `${m} ${p.downtimeMs ?? "-"}`)
          .join(", ") +
        `; load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`,
    );
    checkAdvice(a);
    // Still here, not frozen, counting on; no run directory made; nothing running there.
    expect(fs.readFileSync(`/proc/${pid}/status`, "utf8")).not.toMatch(/^State:\s+[tT]/m);
    const count = lastCount(log);
    await waitFor("another count here", () => (lastCount(log) > count ? true : undefined));
    expect(fs.existsSync(`${work}/logs`) ? fs.readdirSync(`${work}/logs`) : []).toEqual([]);
    await waitFor("the advisor's SSH sessions there to end", () =>
      JSON.stringify(inDestination()) === JSON.stringify(before) ? true : undefined,
    );
    // The terminal: each mode on a line, the pick.
    const said = lab(["advise", ...to(), "--pid", String(pid)]);
    expect(said.code, said.stderr).toBe(ExitCode.ok);
    expect(said.stdout).toMatch(/^ {2}page-server {2}\d+ ms$/m);
    expect(said.stdout).toMatch(
      /^ {2}lazy {9}\d+ ms \(until it runs there; .*cannot: lazy needs a second kernel/m,
    );
    expect(said.stdout).toContain(`\`criu-lab migrate --mode auto\` would pick ${a.pick}`);
    process.kill(pid, "SIGKILL");
  });

  it("advise: bad flags exit 2 naming the flag; a destination it cannot reach exits 3", () => {
    for (const [args, message] of [
      [["--probe-mib", "0", "--pid", "1"], /--probe-mib 0: expected 1-256/],
      [["--window", "60", "--pid", "1"], /--window 60: expected 0.1-10 seconds/],
      [["--pid", "999999999"], /--pid 999999999: no such running process/],
    ] as Array<[string[], RegExp]>) {
      const ran = lab(["advise", ...to(), ...args, "--json"]);
      expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.usage);
      expect(JSON.parse(ran.stdout).error).toMatch(message);
    }
    // A live process (this test's), a port where nothing listens there.
    const ran = lab([
      "advise",
      ...to(),
      "--port",
      String(NOBODY),
      "--pid",
      String(process.pid),
      "--json",
    ]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
    expect(JSON.parse(ran.stdout).error).toMatch(/cannot reach root@10\.77\.0\.2 over SSH/);
  });

  it("migrate --mode auto: the advisor's pick, its prediction beside the downtime measured", async () => {
    const { pid, log } = await startHolder("auto");
    const ran = lab(["migrate", ...to(), "--pid", String(pid), "--mode", "auto", "--json"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = JSON.parse(ran.stdout) as {
      ok: boolean;
      mode: string;
      restoredPid: number;
      advice: Advice;
      predictedMs: number;
      downtimeMs: number;
      modesPassedOver: Array<{ mode: string; why: string }>;
      lastBeforeDump: number;
      firstAfterRestore: number;
    };
    expect(r).toMatchObject({ ok: true, restoredPid: pid, mode: r.advice.pick });
    checkAdvice(r.advice);
    expect(r.modesPassedOver).toEqual(r.advice.passedOver);
    expect(r.predictedMs).toBe(r.advice.predictions[r.mode as "cold"].downtimeMs);
    expect(r.downtimeMs).toBeGreaterThan(0);
    expect(r.firstAfterRestore).toBe(r.lastBeforeDump + 1);
    expect(pair.destination.ssh(`cat ${log}`).stdout).toContain(
      `Counter: ${r.lastBeforeDump}\nCounter: ${r.firstAfterRestore}\n`,
    );
    console.log(
      `advise ${r.mode} (${HOLD_MIB} MiB): predicted ${r.predictedMs} ms, measured ${r.downtimeMs} ms; ` +
        `link ${(r.advice.measurements.link.bytesPerSec / MIB).toFixed(0)} MiB/s, ` +
        `rtt ${r.advice.measurements.link.rttMs} ms; load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`,
    );
    process.kill(pid, "SIGKILL");
  });

  it("scenario run migration --mode auto: the terminal prints predicted against measured", () => {
    const ran = lab(["scenario", "run", "migration", ...to(), "--mode", "auto"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    hosts.started.push(Number(/^counter\.py runs as PID (\d+),/m.exec(ran.stdout)?.[1]));
    expect(ran.stdout).toMatch(/^dirty rate: /m);
    const line =
      /^ {2}the advisor predicted \d+ ms, measured \d+ ms \(\d+\.\d\dx\); predicted\/measured ms: freeze \d+\/\d+, transfer \d+\/\d+, restore \d+\/\d+$/m;
    expect(ran.stdout).toMatch(line);
    console.log(
      `scenario (the counter):${line.exec(ran.stdout)?.[0]}; load ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`,
    );
  });
});
