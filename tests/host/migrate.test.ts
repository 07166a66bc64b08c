/**
 * `criu-lab migrate` and the migration/backup scenarios between two lab "hosts" made of network
 * namespaces (netlab/netns.ts), for real: real CRIU, real sshd, host keys checked.
 * The destination's sshd runs in a mount namespace where the source's work directory is an
 * empty tmpfs, so what the process needs there arrives only if migrate carries it.
 * The command is the repository's (host/criu-lab), run on the source over its sshd as
 * a learner would.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun } from "../support/requirements";
import { alive, HOST, run, waitFor, wrapProgram } from "./support/lab-helpers";
import { needMigrationHosts } from "./support/needs";
import { sshOptions, type LabPair } from "../../netlab/netns";
import { ownTmpfs } from "../../netlab/tmpfs";
import {
  DST,
  LAB_COMMAND as LAB,
  migrationHosts,
  netnsOf,
  oneJsonLine,
  stillCountsHere,
  type MigrationHosts,
} from "./support/migration-hosts";
import { type TestUser } from "./support/sshd";

interface Migrated {
  ok: boolean;
  modeAsked: string;
  mode: string;
  modesPassedOver: Array<{ mode: string; why: string }>;
  pid: number;
  restoredPid: number;
  lastBeforeDump: number;
  firstAfterRestore: number;
  downtimeMs: number;
  resumeMs: number;
  completeMs: number;
  sshCiphers: string[];
  clientGapMs?: number;
  counterIntervalMs?: number;
  freezeMs: number;
  manifestMs: number;
  reapMs: number;
  checkMs: number;
  transferMs: number;
  restoreMs: number;
  bytesTransferred: number;
  destination: string;
  imagesDir: string;
  carried: string[];
  criu: { dump: Record<string, number>; restore: Record<string, number> };
  pairChecks: Array<{ name: string; ok: boolean; detail: string }>;
  error?: string;
}

/** The pair check's checks, in the order it makes them. */
const PAIR_CHECKS = ["cpu", "criu", "kernel", "mode", "files", "room", "pid"];

const missing = cannotRun("criu-lab migrate", needMigrationHosts({ user: true }));
describe.skipIf(missing)("criu-lab migrate between two network-namespace hosts", () => {
  let hosts: MigrationHosts;
  let dir: string;
  let work: string;
  let pair: LabPair;
  let user: TestUser;
  let started: number[];

  beforeAll(async () => {
    hosts = await migrationHosts("migrate", { user: `criulab-mig-${process.pid}` });
    ({ dir, work, pair, started } = hosts);
    user = hosts.user!;
  });
  afterAll(() => hosts?.remove());

  /** criu-lab on the source host, as root over its sshd (ENV: more variables, "K=V "). */
  const lab = (args: string[], env = "") =>
    pair.source.ssh(
      `${env}CRIU_LAB_LOG_DIR=${work}/logs CRIU_LAB_COUNTER=${work}/counter.py ${LAB} ${args.join(" ")}`,
    );
  const migrate = (args: string[]) => lab(["migrate", ...args]);
  const flags = (to = `root@${DST}`) => [
    "--to",
    to,
    "--identity",
    pair.key.path,
    "--known-hosts",
    pair.knownHosts,
  ];
  /** migrate's arguments for PID to the destination (TO), MORE (--mode, --port ...), --json. */
  const movePid = (pid: number, more: string[] = [], to?: string) => [
    ...flags(to),
    "--pid",
    String(pid),
    ...more,
    "--json",
  ];
  /** The migration scenario in page-server mode, --json (RUN: lab, or lab with its RAM). */
  const migrationScenario = (runLab: (args: string[]) => ReturnType<typeof lab> = lab) =>
    runLab(["scenario", "run", "migration", ...flags(), "--mode", "page-server", "--json"]);

  /**
   * A destination sshd on PORT that sees NAME (a wrapper in the test's dir) at TARGET: the shell
   * LINES run first, then the real program (kept at DIR/NAME-real). A fault made on purpose there.
   */
  async function sshdWrapping(port: number, target: string, name: string, lines: string[]) {
    const real = path.join(dir, `${name}-real`);
    const wrapper = wrapProgram(path.join(dir, name), lines, real);
    await pair.destination.addSshd({
      port,
      hide: [work],
      replace: [{ file: wrapper, target, keepOriginalAt: real }],
    });
  }
  const failRestore = 'if [ "$1" = restore ]; then echo "injected: restore fails" >&2; exit 1; fi';

  const startCounter = (name: string) => hosts.startCounter(name);

  /** CRIU's own account (stats-dump here, stats-restore there) fits the lab's: frozen within
   * the dump's wall time (freezeMs, rounded to 0.1 ms), the restore's stats read there. */
  function criuStatsFit(r: Migrated) {
    expect(r.criu.dump.frozenTimeUs).toBeGreaterThan(0);
    expect(r.criu.dump.frozenTimeUs).toBeLessThanOrEqual(r.freezeMs * 1000 + 100);
    expect(r.criu.restore.restoreTimeUs).toBeGreaterThan(0);
    expect(r.criu.restore.restoreTimeUs).toBeLessThanOrEqual(r.restoreMs * 1000 + 100);
    expect(r.criu.restore.pagesRestored).toBeGreaterThan(0);
  }

  /** PIDs of processes (here or there: one kernel) whose command line names DIR's run. */
  const followers = (dir: string) => {
    const runDir = dir.split("/migrate/")[0];
    return fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
          return cmd.startsWith("tail\0") && cmd.includes(runDir);
        } catch {
          return false;
        }
      });
  };

  const parse = (ran: { stdout: string; stderr: string }) => oneJsonLine<Migrated>(ran);

  it("the destination does not see the source's files: a restore there without them fails", async () => {
    const { pid, log } = await startCounter("control");
    expect(pair.destination.ssh(`test -e ${log}`).code).toBe(1);
    const images = path.join(work, "control", "images");
    fs.mkdirSync(images);
    // On the source over its sshd: the same mount namespace as the counter, as migrate runs.
    const dump = pair.source.ssh(`${HOST.criu} dump -t ${pid} -D ${images} -o dump.log`);
    expect(dump.code, fs.readFileSync(path.join(images, "dump.log"), "utf8").slice(-3000)).toBe(0);
    await waitFor("the dumped counter to be reaped", () => (alive(pid) ? undefined : true));
    // The images alone, as a copy that forgets the carry would leave them.
    const shipped = pair.source.ssh(
      `tar -C ${images} -cf - . | ssh ${sshOptions(pair.key.path, pair.knownHosts).join(" ")} ` +
        `root@${DST} 'mkdir -p ${images} && tar -C ${images} -xf -'`,
    );
    expect(shipped.code, shipped.stderr).toBe(0);
    const restore = pair.destination.ssh(
      `${HOST.criu} restore -d -D ${images} -o restore.log; grep Error ${images}/restore.log`,
    );
    expect(restore.stdout).toMatch(/Can't open cwd|No such file/);
    // CRIU names paths relative to the root: tmp/criu-lab-migrate-.../work/control
    expect(restore.stdout).toContain(path.join(work, "control").slice(1));
    expect(alive(pid)).toBe(false);
  });

  let coldRun = "";

  it("cold, as a sudo user: the counter goes on there from the next number, same PID", async () => {
    const { pid, log } = await startCounter("cold");
    const ran = migrate(movePid(pid, ["--mode", "cold"], `${user.name}@${DST}`));
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = parse(ran);
    expect(r).toMatchObject({ ok: true, mode: "cold", pid, restoredPid: pid });
    expect(r.destination).toBe(`${user.name}@${DST}`);
    expect(r.firstAfterRestore).toBe(r.lastBeforeDump + 1);
    // The pair check passed, every check listed; one kernel: the dump frees the PID.
    expect(r.pairChecks.map((c) => c.name)).toEqual(PAIR_CHECKS);
    expect(r.pairChecks.filter((c) => !c.ok)).toEqual([]);
    const detail = (name: string) => r.pairChecks.find((c) => c.name === name)?.detail;
    expect(detail("pid")).toBe(`one kernel: the dump frees PID ${pid} for the restore`);
    expect(detail("criu")).toMatch(/^CRIU \S+ on both$/);
    expect(detail("room")).toMatch(/^about [\d.]+ MiB of images, [\d.]+ [MGT]iB free in /);
    expect(r.carried).toEqual(expect.arrayContaining([path.dirname(log), log]));
    expect(r.bytesTransferred).toBeGreaterThan(1_000_000); // python's pages at least
    expect(r.downtimeMs).toBeGreaterThanOrEqual(
      r.freezeMs + r.manifestMs + r.reapMs + r.checkMs + r.transferMs + r.restoreMs - 1,
    );
    // Restored whole: it ran there and nothing was left to move at the same moment.
    expect(r.resumeMs).toBe(r.downtimeMs);
    expect(r.completeMs).toBe(r.downtimeMs);
    // SSH was offered the fastest ciphers this CPU has first.
    const aes = /^(flags|Features)\s*:.*\baes\b/m.test(fs.readFileSync("/proc/cpuinfo", "utf8"));
    expect(r.sshCiphers[0]).toBe(aes ? "aes128-gcm@openssh.com" : "chacha20-poly1305@openssh.com");
    criuStatsFit(r);
    expect(r.criu.dump.pagesWritten).toBeGreaterThan(0);
    // It runs in the destination's namespace now, and its output there goes on.
    expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).toBe(netnsOf("dst"));
    const there = pair.destination.ssh(`cat ${log}`).stdout;
    expect(there).toContain(`Counter: ${r.lastBeforeDump}\nCounter: ${r.firstAfterRestore}\n`);
    expect(fs.readFileSync(log, "utf8")).not.toContain(`Counter: ${r.firstAfterRestore}\n`);
    // A passing run, on both ends: the next passing migration removes its images there too.
    coldRun = path.dirname(r.imagesDir);
    expect(fs.existsSync(path.join(coldRun, "passed"))).toBe(true);
    expect(pair.destination.ssh(`test -f ${coldRun}/passed`).code).toBe(0);
    // The images' manifest, written here once their hashes were done (computed beside the
    // copy), went there in the restore's command: the same bytes, root's only.
    const manifest = fs.readFileSync(path.join(r.imagesDir, "MANIFEST.json"), "utf8");
    expect(JSON.parse(manifest).files["pages-1.img"].size).toBeGreaterThan(1_000_000);
    const m = `${r.imagesDir}/MANIFEST.json`;
    expect(pair.destination.ssh(`stat -c %a ${m} && cat ${m}`).stdout).toBe(`600\n${manifest}`);
    process.kill(pid, "SIGKILL");
  });

  it("page-server: pages stream to the destination during the dump; same PID, next number", async () => {
    const { pid, log } = await startCounter("page-server");
    const ran = migrate(movePid(pid, ["--mode", "page-server"]));
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = parse(ran);
    expect(r).toMatchObject({ ok: true, mode: "page-server", pid, restoredPid: pid });
    expect(r.firstAfterRestore).toBe(r.lastBeforeDump + 1);
    criuStatsFit(r);
    expect(fs.readdirSync(r.imagesDir).some((n) => n.startsWith("pages-"))).toBe(false);
    expect(pair.destination.ssh(`ls ${r.imagesDir}`).stdout).toMatch(/^pages-\d+\.img$/m);
    expect(pair.destination.ssh(`tail -n 3 ${log}`).stdout).toMatch(/Counter: \d+\n$/);
    // The process's memory is root's alone at both ends: the log dir, the run, its images.
    const runDir = path.dirname(r.imagesDir);
    const open = `find ${path.dirname(runDir)} -maxdepth 0 -perm /077; find ${runDir} ! -user root -o -perm /077`;
    expect(run("sh", ["-c", open]).stdout).toBe("");
    expect(pair.destination.ssh(open).stdout).toBe("");
    // Only the latest passing migration keeps its images, here and there (1.1 GB each for a
    // 1 GiB process).
    expect(coldRun).not.toBe("");
    expect(fs.existsSync(coldRun)).toBe(false);
    expect(pair.destination.ssh(`test -e ${coldRun}`).code).toBe(1);
    expect(pair.destination.ssh(`test -f ${path.dirname(r.imagesDir)}/passed`).code).toBe(0);
    process.kill(pid, "SIGKILL");
  });

  describe("images that would not fit: refused before the freeze (exit 3), the process counts on here", () => {
    /** A small tmpfs over the log dir in one host's own mount namespace, for FN only. */
    async function smallLogs(host: "source" | "destination", fn: () => Promise<void>) {
      const h = host === "source" ? pair.source : pair.destination;
      const mounted = h.ssh(
        `mkdir -p ${work}/logs && mount -t tmpfs -o size=4m clmig-small ${work}/logs`,
      );
      expect(mounted.code, mounted.stderr).toBe(0);
      try {
        await fn();
      } finally {
        h.ssh(`umount ${work}/logs`);
      }
    }

    it("no room on the destination: named there, with the numbers", async () => {
      const { pid, log } = await startCounter("no-room-there");
      await smallLogs("destination", async () => {
        const ran = migrate(movePid(pid, ["--mode", "page-server"]));
        expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
        const r = parse(ran);
        expect(r.error).toMatch(
          new RegExp(
            `room: no room for the images of PID ${pid} in ${DST.replace(/\./g, "\\.")}:${work}/logs/migrate-\\S+/images: about [\\d.]+ MiB needed .*, [\\d.]+ MiB free there; nothing was frozen`,
          ),
        );
        // Refused by the pair check, the only check that failed.
        expect(r.pairChecks.filter((c) => !c.ok).map((c) => c.name)).toEqual(["room"]);
      });
      await stillCountsHere(pid, log);
      process.kill(pid, "SIGKILL");
    });

    it("no room here", async () => {
      const { pid, log } = await startCounter("no-room-here");
      await smallLogs("source", async () => {
        const ran = migrate(movePid(pid));
        expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
        expect(parse(ran).error).toMatch(
          new RegExp(
            `no room for the images of PID ${pid} in ${work}/logs/migrate-\\S+/images: about`,
          ),
        );
      });
      await stillCountsHere(pid, log);
      process.kill(pid, "SIGKILL");
    });
  });

  it("pre-copy needs dirty tracking: refused here with the reason (or works where it exists)", async () => {
    const { pid, log } = await startCounter("pre-copy");
    const tracks = run(HOST.criu, ["check", "--feature", "mem_dirty_track"]).code === 0;
    const ran = migrate(movePid(pid, ["--mode", "pre-copy"]));
    if (tracks) {
      expect(ran.code, ran.stdout).toBe(ExitCode.ok);
      expect(parse(ran).restoredPid).toBe(pid);
      return;
    }
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.usage);
    expect(parse(ran).error).toMatch(/pre-copy needs memory dirty tracking.*Dirty tracking is OFF/);
    await stillCountsHere(pid, log);
  });

  it("auto: the best mode these hosts can run (page-server here), the better ones passed over with why", async () => {
    const { pid, log } = await startCounter("auto");
    const tracks = run(HOST.criu, ["check", "--feature", "mem_dirty_track"]).code === 0;
    const ran = migrate(movePid(pid, ["--mode", "auto"]));
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = parse(ran);
    expect(r).toMatchObject({ ok: true, modeAsked: "auto", pid, restoredPid: pid });
    if (tracks) {
      expect(r.mode).toBe("pre-copy");
      expect(r.modesPassedOver).toEqual([]);
    } else {
      // This project's test host: no soft-dirty tracking (docs/design.md "Facts").
      expect(r.mode).toBe("page-server");
      expect(r.modesPassedOver).toEqual([
        {
          mode: "pre-copy",
          why: expect.stringMatching(
            /^pre-copy needs memory dirty tracking.*Dirty tracking is OFF/,
          ),
        },
      ]);
      // The pages went to the page server there, not into the images here.
      expect(fs.readdirSync(r.imagesDir).some((n) => n.startsWith("pages-"))).toBe(false);
    }
    // The counter went on there with the same PID, from the next number.
    expect(r.firstAfterRestore).toBe(r.lastBeforeDump + 1);
    expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).toBe(netnsOf("dst"));
    expect(pair.destination.ssh(`cat ${log}`).stdout).toContain(
      `Counter: ${r.lastBeforeDump}\nCounter: ${r.firstAfterRestore}\n`,
    );
    process.kill(pid, "SIGKILL");
  });

  it("lazy between two namespaces of one kernel: refused, naming the shared kernel", async () => {
    const { pid, log } = await startCounter("lazy");
    const ran = migrate(movePid(pid, ["--mode", "lazy"]));
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.usage);
    expect(parse(ran).error).toMatch(/lazy needs a second kernel.*share this kernel/);
    await stillCountsHere(pid, log);
  });

  it("bad flags and a PID that is not running: exit 2, naming the flag, before connecting", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--to", DST, "--pid", "1"], /--to '10\.77\.0\.2': expected USER@HOST/],
      [["--to", `root@${DST}`, "--port", "70000", "--pid", "1"], /--port 70000: expected 1-65535/],
      [
        ["--to", `root@${DST}`, "--identity", "/nonexistent", "--pid", "1"],
        /--identity \/nonexistent: no such file/,
      ],
      [[...flags(), "--pid", "999999999"], /--pid 999999999: no such running process/],
    ];
    for (const [args, message] of cases) {
      const ran = migrate([...args, "--json"]);
      expect(ran.code, args.join(" ")).toBe(ExitCode.usage);
      expect(parse(ran).error).toMatch(message);
    }
    const mode = migrate([...flags(), "--pid", "1", "--mode", "warp"]);
    expect(mode.code).toBe(ExitCode.usage);
    expect(mode.stderr).toContain("argument --mode: invalid choice: 'warp'");
  });

  describe("a destination it cannot use: exit 3, the process untouched", () => {
    let pid: number;
    let log: string;
    beforeAll(async () => {
      ({ pid, log } = await startCounter("refusals"));
      // The same host with sshds that see CRIU missing, or a different python3.11.
      await pair.destination.addSshd({ port: 2200, hide: [work, "/usr/local/sbin"] });
      const other = path.join(dir, "python3.11-other");
      fs.copyFileSync("/usr/bin/python3.11", other);
      fs.appendFileSync(other, "a different build");
      await pair.destination.addSshd({
        port: 2201,
        hide: [work],
        replace: [{ file: other, target: "/usr/bin/python3.11" }],
      });
      // Pair-check differences, each seen by one sshd: a CPU lacking a flag this one has
      // (its /proc/cpuinfo), an older CRIU, another boot (a second kernel as far as a
      // boot id tells: the counter's PID is taken there, by the counter itself).
      const flags = /^(?:flags|Features)\s*:(.*)$/m.exec(
        fs.readFileSync("/proc/cpuinfo", "utf8"),
      )?.[1];
      lacking = ["avx512f", "avx2", "avx", "sse4_2", "sse2", "asimd", "fp"].find((f) =>
        flags?.split(/\s+/).includes(f),
      );
      const cpuinfo = path.join(dir, "cpuinfo-lacking");
      fs.writeFileSync(
        cpuinfo,
        `flags\t\t:${(flags ?? "").replace(new RegExp(`\\b${lacking}\\b`, "g"), "")}\n`,
      );
      const bootId = path.join(dir, "boot_id-other");
      fs.writeFileSync(bootId, "00000000-1111-2222-3333-444444444444\n");
      await pair.destination.addSshd({
        port: 2203,
        hide: [work],
        replace: [{ file: cpuinfo, target: "/proc/cpuinfo" }],
      });
      await sshdWrapping(2204, HOST.criu, "criu-older", [
        'if [ "$1" = --version ]; then echo "Version: 3.17"; exit 0; fi',
      ]);
      await pair.destination.addSshd({
        port: 2205,
        hide: [work],
        replace: [{ file: bootId, target: "/proc/sys/kernel/random/boot_id" }],
      });
    });
    let lacking: string | undefined;

    it.each([
      [
        "unreachable (nothing listens)",
        ["--port", "2222"],
        /cannot reach root@10\.77\.0\.2 over SSH: .*Connection refused/,
      ],
      [
        "CRIU missing there",
        ["--port", "2200"],
        /CRIU is not installed at \/usr\/local\/sbin\/criu on 10\.77\.0\.2/,
      ],
      [
        "a different interpreter there",
        ["--port", "2201"],
        /does not have the same files.*\/usr\/bin\/python3\.11 differs there \(sha256 /,
      ],
    ])("%s", async (_what, extra, message) => {
      const ran = migrate(movePid(pid, extra));
      expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
      expect(parse(ran).error).toMatch(message);
      await stillCountsHere(pid, log);
    });

    it.each([
      [
        "cpu",
        "a CPU lacking a flag this one has",
        "2203",
        () => `the destination lacks ${lacking}, which this host's process may use`,
      ],
      ["criu", "an older CRIU", "2204", () => "the destination runs CRIU 3.17, older than "],
      [
        "pid",
        "another boot, the PID taken there",
        "2205",
        () => `PID ${pid} is taken on the destination (by python3)`,
      ],
    ])("the pair check: %s (%s)", async (name, _what, port, detail) => {
      expect(lacking, "no CPU flag the check compares in /proc/cpuinfo").toBeDefined();
      const ran = migrate(movePid(pid, ["--port", port]));
      expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
      const r = parse(ran);
      expect(r.error).toContain(
        `the pair check with ${DST} refused, nothing was frozen: ${name}: ${detail()}`,
      );
      // Every check listed, passed or not; only this one failed.
      expect(r.pairChecks.map((c) => c.name)).toEqual(PAIR_CHECKS);
      expect(r.pairChecks.filter((c) => !c.ok).map((c) => c.name)).toEqual([name]);
      if (name === "pid") {
        expect(r.pairChecks.find((c) => c.name === "kernel")?.detail).toMatch(
          / on both \(another boot there\)$/,
        );
      }
      await stillCountsHere(pid, log);
    });

    it("the pair check in the terminal: one line a check", async () => {
      const ran = migrate([...flags(), "--port", "2204", "--pid", String(pid)]);
      expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
      expect(ran.stdout).toContain(`pair check with root@${DST}:\n  ok   cpu: `);
      expect(ran.stdout).toMatch(
        /^ {2}FAIL criu: the destination runs CRIU 3\.17, older than \S+ here: /m,
      );
      expect(ran.stdout).toMatch(
        /^ {2}ok {3}pid: one kernel: the dump frees PID \d+ for the restore$/m,
      );
      await stillCountsHere(pid, log);
    });

    it("a wrong host key", async () => {
      const wrong = path.join(dir, "wrong_known_hosts");
      fs.writeFileSync(
        wrong,
        `${DST} ${pair.source.knownHostsLine.split(" ").slice(1).join(" ")}\n`,
      );
      const ran = migrate([
        "--to",
        `root@${DST}`,
        "--identity",
        pair.key.path,
        "--known-hosts",
        wrong,
        "--pid",
        String(pid),
        "--json",
      ]);
      expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
      expect(parse(ran).error).toMatch(
        /10\.77\.0\.2's host key is not the one in .*wrong_known_hosts \(Host key verification failed\)/,
      );
      await stillCountsHere(pid, log);
    });
  });

  it("a restore that fails there: the process comes back here, images kept on both hosts", async () => {
    const { pid, log } = await startCounter("restore-fails");
    await sshdWrapping(2202, HOST.criu, "criu-fails-restore", [failRestore]);
    const ran = migrate(movePid(pid, ["--port", "2202"]));
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.labBroken);
    const r = parse(ran);
    expect(r.error).toContain(`criu restore on ${DST} exited 1`);
    expect(r.error).toContain(`The process was dumped; it runs again here as PID ${pid}.`);
    expect(r.error).toMatch(
      new RegExp(`Images kept here in \\S+ and on ${DST.replace(/\./g, "\\.")} in ${r.imagesDir}`),
    );
    expect(fs.existsSync(path.join(r.imagesDir, "pstree.img"))).toBe(true);
    expect(pair.destination.ssh(`ls ${r.imagesDir}`, "root", 2202).stdout).toContain("pstree.img");
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });

  it("an image that changed on its way: refused there naming it (exit 3), the process back here", async () => {
    const { pid, log } = await startCounter("changed-there");
    // The destination's tar, once it has written the images it received, flips a byte of
    // their pages: what a bad disk or a hand there would do between the copy and the restore.
    const realTar = path.join(dir, "tar-then-a-change-real");
    await sshdWrapping(2206, "/usr/bin/tar", "tar-then-a-change", [
      'if [ "$1" = -C ] && [ "$2" = / ]; then',
      `  names=$(${realTar} -v "$@") || exit $?`,
      '  for f in $(printf "%s\\n" "$names" | grep "/images/pages-1.img$"); do',
      '    printf X | dd of="/$f" bs=1 seek=100 conv=notrunc 2>/dev/null',
      "  done",
      "  exit 0",
      "fi",
    ]);
    const ran = migrate(movePid(pid, ["--port", "2206"]));
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.unreachable);
    const r = parse(ran);
    expect(r.error).toContain(
      `checkpoint ${r.imagesDir} refused on ${DST}: pages-1.img changed (sha256)`,
    );
    expect(r.error).toContain(`The process was dumped; it runs again here as PID ${pid}.`);
    await stillCountsHere(pid, log);
    process.kill(pid, "SIGKILL");
  });

  it("scenario run migration: the lab's counter moved, checked and reported", () => {
    const ran = migrationScenario();
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = parse(ran);
    started.push(r.pid);
    expect(r).toMatchObject({ ok: true, mode: "page-server", restoredPid: r.pid });
    expect(r.firstAfterRestore).toBe(r.lastBeforeDump + 1);
    criuStatsFit(r); // migrate's JSON, CRIU's own account in it
    // The pair check ran before the counter froze, every check passed.
    expect(r.pairChecks.map((c) => [c.name, c.ok])).toEqual(PAIR_CHECKS.map((n) => [n, true]));
    // What a client reading the counter's output saw: from its last line here to its first
    // there, a gap that spans the freeze at least (the counter prints every 0.5 s).
    expect(r.counterIntervalMs).toBe(500);
    expect(r.clientGapMs).toBeGreaterThanOrEqual(r.criu.dump.frozenTimeUs / 1000);
    console.log(
      `migration (page-server): client gap ${r.clientGapMs} ms, downtime ${r.downtimeMs} ms, ` +
        `frozen ${r.criu.dump.frozenTimeUs / 1000} ms`,
    );
    expect(alive(r.pid)).toBe(false); // the scenario stops its counter there
    expect(followers(r.imagesDir)).toEqual([]); // nor a tail of its log, here or there
  });

  it("scenario run migration --mode auto: the terminal says which mode auto picked and why not the better ones", () => {
    const ran = lab(["scenario", "run", "migration", ...flags(), "--mode", "auto"]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const pid = Number(/^counter\.py runs as PID (\d+),/m.exec(ran.stdout)?.[1]);
    started.push(pid);
    const mode =
      run(HOST.criu, ["check", "--feature", "mem_dirty_track"]).code === 0
        ? "pre-copy"
        : "page-server";
    expect(ran.stdout).toContain(`, mode ${mode}, picked by --mode auto; carrying `);
    expect(ran.stdout).toContain(
      `PID ${pid} now runs on root@${DST} as PID ${pid} (${mode}, picked by --mode auto).`,
    );
    if (mode === "page-server") {
      expect(ran.stdout).toMatch(
        /^ {2}--mode auto passed over pre-copy: pre-copy needs memory dirty tracking .*Dirty tracking is OFF\)$/m,
      );
    } else {
      expect(ran.stdout).not.toContain("passed over");
    }
    expect(ran.stdout).toMatch(
      /^ {2}the client saw Counter: (\d+) here and Counter: \d+ there \d+ ms later \(one every 0\.5 s; downtime \d+ ms\)$/m,
    );
    expect(ran.stdout).toContain("the counter went on with the same PID there (stopped now)");
    expect(alive(pid)).toBe(false);
  });

  it("scenario run backup: checkpoints shipped, kill -9 here, the latest restored there", () => {
    // An earlier passing backup on each host: a passing one removes it on both, as migrate does.
    const earlier = `${work}/logs/backup-20000101T000000Z-1`;
    const plant = `mkdir -p ${earlier} && touch ${earlier}/passed ${earlier}/checkpoint.img`;
    expect(run("sh", ["-c", plant]).code).toBe(0);
    expect(pair.destination.ssh(plant).code).toBe(0);
    const ran = lab([
      "scenario",
      "run",
      "backup",
      ...flags(),
      "--checkpoints",
      "2",
      "--every",
      "1",
      "--json",
    ]);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const r = JSON.parse(ran.stdout);
    started.push(r.pid);
    expect(r).toMatchObject({ ok: true, checkpoints: 2, restoredPid: r.pid });
    expect(r.frozenUs).toHaveLength(2);
    expect(r.firstAfterRestore).toBe(r.lastCheckpointCount + 1);
    expect(r.lostCounts).toBe(r.lastBeforeCrash - r.lastCheckpointCount);
    expect(r.lostCounts).toBeGreaterThan(0);
    expect(alive(r.pid)).toBe(false);
    // Each checkpoint went as its archive (zstd: both hosts have it), unpacked and checked
    // there against the manifest written here; the archive is not kept here.
    expect(r.archiveCodec).toBe("zstd");
    expect(pair.destination.ssh(`test -f ${r.imagesDir}/MANIFEST.json`).code).toBe(0);
    expect(fs.existsSync(`${r.imagesDir}.tar.zst`)).toBe(false);
    // Marked passed on both hosts; the earlier passing backup is gone from both.
    const runDir = path.dirname(r.imagesDir);
    expect(path.basename(runDir)).toMatch(/^backup-/);
    expect(fs.existsSync(path.join(runDir, "passed"))).toBe(true);
    expect(pair.destination.ssh(`test -f ${runDir}/passed`).code).toBe(0);
    expect(fs.existsSync(earlier)).toBe(false);
    expect(pair.destination.ssh(`test -e ${earlier}`).code).toBe(1);
  });

  describe("images in RAM on both ends while the process is down, on disk after", () => {
    /** CRIU_LAB_RAM_DIR: a tmpfs the test mounts there on each host, in that host's own mount
     * namespace (the sshd's), so each end has its own RAM, as two machines do (netlab/tmpfs.ts). */
    const ramDir = () => `${work}/ram`;
    interface InRam extends Migrated {
      imagesIn: { here: string; there: string; why: string; ramDir?: string };
      toDiskMs?: number;
    }

    const parseRam = (ran: { code: number; stdout: string; stderr: string }) => parse(ran) as InRam;

    /** A tmpfs of SIZE at ramDir() on the source and on the destination (its sshd on PORT). */
    async function ramOnBoth(size: string, port: number, fn: () => Promise<void>) {
      const ends = [
        (s: string) => pair.source.ssh(s),
        (s: string) => pair.destination.ssh(s, "root", port),
      ];
      const unmount = ownTmpfs(ends, ramDir(), size);
      try {
        await fn();
        // Nothing of the process's memory stays in RAM, at either end.
        for (const ssh of ends) expect(ssh(`ls -A ${ramDir()}`).stdout).toBe("");
      } finally {
        unmount();
      }
    }

    const labRam = (args: string[]) => lab(args, `CRIU_LAB_RAM_DIR=${ramDir()} `);

    /** The images ended up in the run's directory on disk, here and there (PORT's sshd). */
    function onDiskBoth(r: InRam, port = 22) {
      expect(r.imagesDir).toMatch(new RegExp(`^${work}/logs/(migrate|migration)-\\S+/images$`));
      expect(fs.existsSync(path.join(r.imagesDir, "pstree.img"))).toBe(true);
      expect(pair.destination.ssh(`ls ${r.imagesDir}`, "root", port).stdout).toContain(
        "pstree.img",
      );
    }

    it("cold: dumped into RAM here, restored from RAM there, then both copies on disk", async () => {
      const { pid } = await startCounter("ram-cold");
      await ramOnBoth("256m", 22, async () => {
        const ran = labRam(["migrate", ...movePid(pid, ["--mode", "cold"])]);
        expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
        const r = parseRam(ran);
        expect(r).toMatchObject({
          ok: true,
          restoredPid: pid,
          imagesIn: { here: "ram", there: "ram" },
        });
        expect(r.firstAfterRestore).toBe(r.lastBeforeDump + 1);
        expect(r.imagesIn.why).toMatch(
          /^about [\d.]+ MiB of images here and [\d.]+ MiB there fit in RAM/,
        );
        const inRam = r.imagesIn.ramDir!;
        expect(inRam).toMatch(new RegExp(`^${ramDir()}/criu-lab-migrate-\\d{8}T\\d{6}Z-\\d+$`));
        // The room check measured the tmpfs there, where CRIU wrote and read the images; then
        // they were copied from it to disk (a copy from a RAM directory never made fails).
        const room = r.pairChecks.find((c) => c.name === "room")!.detail;
        expect(room).toContain(`free in ${DST}:${inRam}/images (in RAM)`);
        expect(r.criu.dump.pagesWritten).toBeGreaterThan(0);
        const runDir = path.dirname(r.imagesDir);
        expect(r.toDiskMs).toBeGreaterThan(0);
        onDiskBoth(r);
        expect(fs.existsSync(path.join(runDir, "passed"))).toBe(true);
      });
      process.kill(pid, "SIGKILL");
    });

    it("scenario run migration (page-server): the pages into RAM there, then on disk", async () => {
      await ramOnBoth("256m", 22, async () => {
        const ran = migrationScenario(labRam);
        expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
        const r = parseRam(ran);
        started.push(r.pid);
        expect(r).toMatchObject({
          ok: true,
          mode: "page-server",
          imagesIn: { here: "ram", there: "ram" },
        });
        expect(r.imagesIn.why).toMatch(
          /^about 8\.0 MiB of images here and [\d.]+ MiB there fit in RAM/,
        );
        onDiskBoth(r);
        expect(pair.destination.ssh(`ls ${r.imagesDir}`).stdout).toMatch(/^pages-\d+\.img$/m);
      });
    });

    it("on disk, with the reason, when the RAM budget or a small tmpfs will not hold them", async () => {
      const { pid } = await startCounter("ram-budget");
      let next = 0;
      await ramOnBoth("4m", 22, async () => {
        const budget = labRam(["migrate", ...movePid(pid, ["--ram-budget-mib", "0"])]);
        expect(budget.code, budget.stdout + budget.stderr).toBe(ExitCode.ok);
        const r = parseRam(budget);
        expect(r.imagesIn).toEqual({
          here: "disk",
          there: "disk",
          why: expect.stringMatching(
            /^about [\d.]+ MiB of images here, more than the RAM budget of 0 B \(--ram-budget-mib\)$/,
          ),
        });
        expect(r.pairChecks.find((c) => c.name === "room")!.detail).toMatch(/ \(on disk\)$/);
        onDiskBoth(r);
        process.kill(pid, "SIGKILL");
        next = (await startCounter("ram-small")).pid;
        const small = labRam(["migrate", ...movePid(next, ["--mode", "cold"])]);
        expect(small.code, small.stdout + small.stderr).toBe(ExitCode.ok);
        expect(parseRam(small).imagesIn.why).toMatch(
          new RegExp(
            `^about [\\d.]+ MiB of images here, more than the [\\d.]+ [KM]iB free on the tmpfs at ${ramDir()} here$`,
          ),
        );
        onDiskBoth(parseRam(small));
      });
      process.kill(next, "SIGKILL");
    });

    it("a restore that fails there: restored back here from RAM, the images kept on disk at both ends", async () => {
      const { pid, log } = await startCounter("ram-restore-fails");
      await sshdWrapping(2207, HOST.criu, "criu-fails-restore-ram", [failRestore]);
      await ramOnBoth("256m", 2207, async () => {
        const ran = labRam(["migrate", ...movePid(pid, ["--port", "2207"])]);
        expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.labBroken);
        const r = parseRam(ran);
        expect(r.imagesIn).toMatchObject({ here: "ram", there: "ram" });
        expect(r.error).toContain(`criu restore on ${DST} exited 1`);
        expect(r.error).toContain(`The process was dumped; it runs again here as PID ${pid}.`);
        expect(r.error).toContain(
          `Images kept here in ${r.imagesDir} and on ${DST} in ${r.imagesDir}`,
        );
        onDiskBoth(r, 2207);
      });
      await stillCountsHere(pid, log);
      process.kill(pid, "SIGKILL");
    });
  });
});
