/**
 * `criu-lab checkpoint` of this checkout with the installed CRIU, for real: the counter dumped
 * with its manifest, exported into one archive (zstd here), imported elsewhere, verified and
 * restored with its PID, counting on; a changed archive or checkpoint refused naming the file.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../contract/checks";
import { cannotRun, needCommand } from "../support/requirements";
import { alive, LAB, labEnv, run, tempDir, waitFor } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

describe.skipIf(
  cannotRun("criu-lab checkpoint", [
    ...needLabHost("criu", "crit"),
    needCommand("zstd", "apt-get install zstd"),
  ]),
)("criu-lab checkpoint: dump, export, import, verify, restore", () => {
  let dir: string;
  let log: string;
  let pid: number;
  let restored = 0;
  let exited: Promise<unknown>;
  const lab = (...args: string[]) =>
    run(LAB.command, args, { env: labEnv({ CRIU_LAB_LOG_DIR: path.join(dir, "logs") }) });
  const counts = () =>
    [...fs.readFileSync(log, "utf8").matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

  beforeAll(async () => {
    dir = tempDir("checkpoint");
    log = path.join(dir, "counter.log");
    // Detached (its own session, no terminal) and appending to its log: CRIU then checks no
    // size of the log on restore, which grows after the dump (files-reg.c should_check_size).
    const out = fs.openSync(log, "a");
    const child = spawn("/usr/bin/python3", [LAB.counter, "--interval", "0.2"], {
      detached: true,
      stdio: ["ignore", out, out],
      cwd: dir,
    });
    fs.closeSync(out);
    child.unref();
    exited = new Promise((resolve) => child.on("exit", resolve));
    pid = child.pid as number;
    await waitFor("the counter to count to 3", () => (counts().length >= 4 ? true : undefined));
  });

  afterAll(() => {
    for (const p of [pid, restored]) {
      if (p && alive(p) && fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("counter.py")) {
        process.kill(p, "SIGKILL");
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("dump, export (zstd), import elsewhere, restore: the counter comes back with its PID and counts on", async () => {
    const images = path.join(dir, "ck");
    const dump = lab("checkpoint", "dump", "--pid", String(pid), images, "--json");
    expect(dump.code, dump.stdout + dump.stderr).toBe(ExitCode.ok);
    await exited; // a dump without --leave-running ends it; reaped, its PID is free again
    const last = counts().at(-1) as number;
    const manifest = JSON.parse(fs.readFileSync(path.join(images, "MANIFEST.json"), "utf8"));
    expect(Object.keys(manifest.files)).toContain("pstree.img");
    expect(manifest).toMatchObject({ pid, format: "criu-lab-checkpoint/1" });
    expect(fs.statSync(images).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(images, "MANIFEST.json")).mode & 0o777).toBe(0o600);

    const exp = lab("checkpoint", "export", images, path.join(dir, "counter"), "--json");
    expect(exp.code, exp.stdout + exp.stderr).toBe(ExitCode.ok);
    const packed = JSON.parse(exp.stdout);
    expect(packed).toMatchObject({
      ok: true,
      codec: "zstd",
      file: path.join(dir, "counter.tar.zst"),
    });
    expect(fs.statSync(packed.file).mode & 0o777).toBe(0o600);
    // Plain enough for a host without criu-lab: zstd and tar list its files by name.
    const listed = run("sh", ["-c", `zstd -dc ${packed.file} | tar -tf -`]);
    expect(listed.stdout.trim().split("\n").sort()).toEqual(
      ["MANIFEST.json", ...Object.keys(manifest.files)].sort(),
    );
    fs.rmSync(images, { recursive: true }); // what a move leaves: the archive only

    const moved = path.join(dir, "elsewhere", "ck");
    fs.mkdirSync(path.dirname(moved), { mode: 0o700 });
    const imp = lab("checkpoint", "import", packed.file, moved, "--json");
    expect(imp.code, imp.stdout + imp.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(imp.stdout)).toMatchObject({
      ok: true,
      codec: "zstd",
      files: packed.files,
      notes: [],
    });
    expect(fs.statSync(moved).mode & 0o777).toBe(0o700);

    const res = lab("checkpoint", "restore", moved, "--json");
    expect(res.code, res.stdout + res.stderr).toBe(ExitCode.ok);
    restored = JSON.parse(res.stdout).restoredPid;
    expect(restored).toBe(pid);
    await waitFor("the restored counter's next count", () =>
      counts().includes(last + 1) ? true : undefined,
    );
  });

  it("import of an archive whose bytes changed is refused (exit 3), its unpacked files kept", () => {
    const file = path.join(dir, "counter.tar.zst");
    const tar = execFileSync("zstd", ["-dc", file], { maxBuffer: 256 * 2 ** 20 });
    // A byte inside pages-1.img's data: its member's 512-byte header starts with its name.
    let header = 0;
    while (
      header < tar.length &&
      !tar.subarray(header, header + 12).equals(Buffer.from("pages-1.img\0"))
    ) {
      header += 512;
    }
    expect(header).toBeLessThan(tar.length);
    const at = header + 512 + 10;
    tar[at] ^= 1;
    fs.writeFileSync(path.join(dir, "bad.tar"), tar);
    expect(
      run("zstd", ["-q", "-f", path.join(dir, "bad.tar"), "-o", path.join(dir, "bad.tar.zst")])
        .code,
    ).toBe(0);
    const target = path.join(dir, "bad");
    const imp = lab("checkpoint", "import", path.join(dir, "bad.tar.zst"), target);
    expect(imp.code, imp.stdout + imp.stderr).toBe(ExitCode.unreachable);
    expect(imp.stdout).toContain(`checkpoint ${target} refused: pages-1.img changed (sha256`);
    expect(fs.existsSync(path.join(target, "pages-1.img"))).toBe(true);
  });

  it("bad arguments exit 2 naming them, before anything is written", () => {
    const cases: Array<[string[], string]> = [
      [
        ["checkpoint", "verify", path.join(dir, "none")],
        `DIR '${path.join(dir, "none")}': no such directory`,
      ],
      [
        ["checkpoint", "export", dir, path.join(dir, "x.zip")],
        `FILE '${path.join(dir, "x.zip")}': an archive ends`,
      ],
      [
        ["checkpoint", "import", path.join(dir, "counter.tar.zst"), dir],
        `DIR '${dir}' exists and is not empty`,
      ],
    ];
    for (const [argv, message] of cases) {
      const ran = lab(...argv);
      expect(ran.code, argv.join(" ")).toBe(ExitCode.usage);
      expect(ran.stdout).toContain(message);
    }
    expect(fs.existsSync(path.join(dir, "x.zip"))).toBe(false);
  });
});
