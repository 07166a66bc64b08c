/**
 * `criu-lab analyze` beyond one fresh dump of this host: core images of each architecture
 * CRIU supports on EC2 (x86_64, and aarch64 for Graviton, whose registers CRIU keeps in
 * `ti_aarch64`, not `thread_info`: images/core.proto), made with `crit encode` from JSON in
 * crit's own format; and a checkpoint directory that two real dumps were written into.
 *
 * Fixtures: core-x86_64.json is `crit show` of a real core image of this host's counter;
 * core-aarch64.json is the same task with its registers in core-aarch64.proto's
 * thread_info_aarch64 (gpregs: regs[31], sp, pc, pstate; fpsimd: vregs, fpsr, fpcr).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun } from "../support/requirements";
import { alive, HOST, LAB, labEnv, run, tempDir, waitFor } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

const FIXTURES = path.join(__dirname, "fixtures");

interface Analyzed {
  pids: number[];
  stale: string[];
  files: { name: string; details: string; stale: boolean }[];
}

const skip = cannotRun("criu-lab analyze", needLabHost("criu", "crit"));
describe.skipIf(skip)("criu-lab analyze", () => {
  let work: string;
  beforeAll(() => {
    work = tempDir("analyze");
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
  const analyze = (dir: string, json = true) =>
    run(LAB.command, ["analyze", dir, ...(json ? ["--json"] : [])], { env: labEnv() });
  const encode = (json: string, img: string) => {
    const ran = run(HOST.crit, ["encode", "-i", json, "-o", img]);
    expect(ran.code, ran.stderr).toBe(0);
  };

  it.each([
    ["x86_64", "X86_64", "0x7fbd6eb4d501", "0x7fffe7afbcc8"],
    ["aarch64", "AARCH64", "0xffff8e6f4a2c", "0xffffd3c0a9e0"],
  ])("decodes the registers of a %s core image", (arch, mtype, ip, sp) => {
    const dir = path.join(work, arch);
    fs.mkdirSync(dir);
    const tree = path.join(work, `pstree-${arch}.json`);
    fs.writeFileSync(
      tree,
      JSON.stringify({
        magic: "PSTREE",
        entries: [{ pid: 4242, ppid: 1, pgid: 4242, sid: 4242, threads: [4242] }],
      }),
    );
    encode(tree, path.join(dir, "pstree.img"));
    encode(path.join(FIXTURES, `core-${arch}.json`), path.join(dir, "core-4242.img"));
    // crit reads the image back as the architecture the JSON says.
    const shown = JSON.parse(run(HOST.crit, ["show", path.join(dir, "core-4242.img")]).stdout);
    expect(shown.entries[0].mtype).toBe(mtype);

    const ran = analyze(dir);
    expect(ran.code, ran.stdout + ran.stderr).toBe(ExitCode.ok);
    const core = (JSON.parse(ran.stdout) as Analyzed).files.find((f) => f.name === "core-4242.img");
    expect(core?.details).toBe(
      `python3 on ${mtype}, instruction pointer ${ip}, stack pointer ${sp}`,
    );
    expect(analyze(dir, false).stdout).toContain(`instruction pointer ${ip}, stack pointer ${sp}`);
  });

  describe("a directory two dumps were written into", () => {
    const pids: number[] = [];
    let dir: string;
    beforeAll(async () => {
      dir = path.join(work, "checkpoint_dir");
      fs.mkdirSync(dir);
      // Two counters, started detached (their own session, no terminal) as the demo does,
      // dumped one after the other into the same directory, as a learner repeating the lab.
      for (const name of ["first", "second"]) {
        const log = path.join(work, `${name}.log`);
        const out = fs.openSync(log, "w");
        const child = spawn("/usr/bin/python3", [LAB.counter, "--interval", "0.2"], {
          detached: true,
          stdio: ["ignore", out, out],
        });
        fs.closeSync(out);
        child.unref();
        pids.push(child.pid!);
        await waitFor(`the ${name} counter`, () =>
          fs.readFileSync(log, "utf8").includes("Counter: 1\n") ? true : undefined,
        );
        const dump = run(HOST.criu, [
          "dump",
          ...["-t", String(child.pid), "-D", dir, "-o", path.join(work, `${name}-dump.log`)],
        ]);
        expect(dump.code, fs.readFileSync(path.join(work, `${name}-dump.log`), "utf8")).toBe(0);
        await waitFor(`the ${name} counter to be gone`, () =>
          alive(child.pid!) ? undefined : true,
        );
      }
    });
    afterAll(() => {
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL"); // only on failure
    });

    it("marks the files of the earlier dump as belonging to no process of pstree.img", () => {
      const [first, second] = pids;
      const ran = analyze(dir);
      expect(ran.code, ran.stderr).toBe(ExitCode.ok);
      const result = JSON.parse(ran.stdout) as Analyzed;
      expect(result.pids).toEqual([second]);
      const perTask = ["core", "mm", "pagemap", "fs", "ids"];
      expect(result.stale).toEqual(perTask.map((k) => `${k}-${first}.img`).sort());
      for (const f of result.files) {
        expect(f.stale, f.name).toBe(result.stale.includes(f.name));
      }
      expect(result.files.map((f) => f.name)).toEqual(
        expect.arrayContaining(perTask.map((k) => `${k}-${second}.img`)),
      );

      const human = analyze(dir, false).stdout;
      expect(human).toMatch(
        new RegExp(`^core-${first}\\.img .*\\(STALE: no process of pstree\\.img\\)$`, "m"),
      );
      expect(human).not.toMatch(new RegExp(`^core-${second}\\.img .*STALE`, "m"));
      expect(human).toContain(
        "5 file(s) belong to no process of pstree.img: left over from an earlier dump",
      );
      expect(human).toContain("Dump into an empty directory");
    });
  });
});
