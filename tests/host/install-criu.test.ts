/**
 * cloud-init/install-criu.sh for real: builds CRIU from its release tarball and from a local
 * git repository made from the same source, into temp prefixes (the installed lab in
 * /usr/local is never touched). Two builds in all; the other cases fail before building.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import {
  CLOUD_INIT,
  criuReleaseRepo,
  criuTarball,
  run,
  tempDir,
  type Ran,
} from "./support/lab-helpers";

const INSTALLER = path.join(CLOUD_INIT, "install-criu.sh");

describe.skipIf(
  cannotRun("install-criu.sh", [
    needRoot(),
    needCommand("make"),
    needCommand("protoc-c", "apt-get install protobuf-c-compiler"),
    needCommand("git"),
  ]),
)("install-criu.sh", () => {
  let work: string;
  let tarball: { path: string; sha256: string };
  const dirs = (name: string) => {
    const root = path.join(work, name);
    return {
      root,
      prefix: path.join(root, "prefix"),
      state: path.join(root, "state"),
      log: path.join(root, "log"),
      args: [
        "--prefix",
        path.join(root, "prefix"),
        "--state-dir",
        path.join(root, "state"),
        "--log-dir",
        path.join(root, "log"),
      ],
    };
  };
  const install = (args: string[]): Ran => run("bash", [INSTALLER, ...args]);
  const nothingInstalled = (d: ReturnType<typeof dirs>) => {
    expect(fs.existsSync(path.join(d.prefix, "sbin/criu"))).toBe(false);
    expect(fs.existsSync(path.join(d.prefix, "bin/crit"))).toBe(false);
    expect(fs.existsSync(path.join(d.state, "install.json"))).toBe(false);
  };

  /** A source tarball of a tree NAME (with FILES and a criu/ directory) under WHERE in the
   * work dir, and the installer's flags that take it with its sha256. */
  const fakeSource = (where: string, name: string, files: Record<string, string>): string[] => {
    const src = path.join(work, where, name);
    fs.mkdirSync(path.join(src, "criu"), { recursive: true });
    for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(src, file), text);
    const tar = path.join(work, `${where}.tar.xz`);
    expect(run("tar", ["-cJf", tar, "-C", path.dirname(src), name]).code).toBe(0);
    return ["--tarball", tar, "--sha256", run("sha256sum", [tar]).stdout.split(" ")[0]];
  };

  beforeAll(() => {
    work = tempDir("install");
    tarball = criuTarball();
  });
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  describe("from the release tarball", () => {
    const d = () => dirs("tarball");
    let first: Ran;
    beforeAll(() => {
      first = install(["--tarball", tarball.path, "--sha256", tarball.sha256, ...d().args]);
    });

    it("builds and installs criu and crit, and records what it installed", () => {
      expect(first.code, first.stdout + first.stderr).toBe(0);
      expect(first.stdout).toContain(`sha256 verified: ${tarball.sha256}`);
      const version = run(path.join(d().prefix, "sbin/criu"), ["--version"]);
      expect(version.stdout).toMatch(/^Version: 4\.\d+/m);
      const record = JSON.parse(fs.readFileSync(path.join(d().state, "install.json"), "utf8"));
      expect(record).toMatchObject({
        sourceId: `tarball:${tarball.sha256}`,
        source: { kind: "tarball", url: tarball.path, sha256: tarball.sha256 },
        criu: path.join(d().prefix, "sbin/criu"),
        log: path.join(d().log, "install.log"),
      });
      expect(version.stdout).toContain(`Version: ${record.criuVersion}`);
      // The lab keeps checkpoint images under its log dir: root's alone.
      expect(fs.statSync(d().log).mode & 0o777).toBe(0o700);
      expect(fs.readFileSync(path.join(d().log, "install.log"), "utf8")).toContain("CC");
    });

    it("installs a criu that passes `criu check` on this kernel", () => {
      const check = run(path.join(d().prefix, "sbin/criu"), ["check"]);
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(check.stdout + check.stderr).toContain("Looks good.");
    });

    it("installs a crit that runs with the system python3 from any directory", () => {
      const crit = path.join(d().prefix, "bin/crit");
      expect(fs.readFileSync(crit, "utf8").split("\n")[0]).toBe("#!/usr/bin/python3");
      // A `crit` folder in the working directory must not shadow the installed package.
      fs.mkdirSync(path.join(work, "crit"), { recursive: true });
      const ran = run(crit, ["--version"], { cwd: work });
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout.trim()).toMatch(/^4\.\d+/);
    });

    it("installs criu-ns, run by the system python3, which runs the installed criu", () => {
      const criuNs = path.join(d().prefix, "sbin/criu-ns");
      expect(fs.readFileSync(criuNs, "utf8").split("\n")[0]).toBe("#!/usr/bin/python3");
      const record = JSON.parse(fs.readFileSync(path.join(d().state, "install.json"), "utf8"));
      expect(record.criuNs).toBe(criuNs);
      // `criu-ns check` runs `criu check` from PATH: the one installed beside it.
      const env = { ...process.env, PATH: `${path.join(d().prefix, "sbin")}:${process.env.PATH}` };
      const check = run(criuNs, ["check"], { env });
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(check.stdout + check.stderr).toContain("Looks good.");
    });

    it("does nothing on a second run with the same source, and says so", () => {
      const criu = path.join(d().prefix, "sbin/criu");
      const before = fs.statSync(criu);
      const again = install(["--tarball", tarball.path, "--sha256", tarball.sha256, ...d().args]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toContain("already installed");
      expect(again.stdout).toContain("nothing to do");
      expect(again.stdout).not.toContain("building");
      const after = fs.statSync(criu);
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    });
  });

  it("refuses a tarball whose sha256 differs (exit 2), installs nothing, keeps the log", () => {
    const d = dirs("bad-sha");
    const wrong = "0".repeat(64);
    const ran = install(["--tarball", tarball.path, "--sha256", wrong, ...d.args]);
    expect(ran.code).toBe(2);
    expect(ran.stdout).toContain(`sha256 mismatch for ${tarball.path}`);
    expect(ran.stdout).toContain(`expected ${wrong}`);
    expect(ran.stderr).toContain(path.join(d.log, "install.log"));
    expect(fs.readFileSync(path.join(d.log, "install.log"), "utf8")).toContain("sha256 mismatch");
    nothingInstalled(d);
  });

  it.each([
    [["--tarball", "/x.tar"], "--sha256 ''"],
    [["--tarball", "relative.tar", "--sha256", "a".repeat(64)], "--tarball 'relative.tar'"],
    [["--git", "/repo", "--version", "v4.2"], "--commit ''"],
    [["--git", "/repo", "--tarball", "/x.tar"], "either --tarball or --git"],
    [[], "no CRIU source"],
    [["--bogus", "1"], "unknown argument '--bogus'"],
  ])("rejects bad arguments with exit 2 before doing anything: %j", (args, message) => {
    const d = dirs("usage");
    const ran = install([...args, ...d.args]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain(message);
    expect(fs.existsSync(d.root)).toBe(false);
  });

  describe("refuses CRIU older than v4.2 (exit 2, nothing installed), with the reason", () => {
    const reason = (text: string) => {
      expect(text).toContain("criu#2709");
      expect(text).toContain("criu#2705");
    };

    it.each([
      [["--git", "/repo", "--version", "v4.1.1", "--commit", "a".repeat(40)], "v4.1.1"],
      [["--tarball", "https://example.org/criu-4.1.1.tar.gz", "--sha256", "a".repeat(64)], "4.1"],
      [["--tarball", "/src/criu_4.1.1.orig.tar.xz", "--sha256", "a".repeat(64)], "4.1.1"],
      [["--tarball", "https://example.org/tags/v3.19.tar.gz", "--sha256", "a".repeat(64)], "v3"],
    ])("by its tag or tarball name, before fetching anything: %j", (args, version) => {
      const d = dirs("old-name");
      const ran = install([...args, ...d.args]);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toContain(version);
      expect(ran.stderr).toContain("refused (nothing installed)");
      reason(ran.stderr);
      expect(fs.existsSync(d.root)).toBe(false);
    });

    it("by the source's Makefile.versions when the name does not say, before building", () => {
      // A tree whose build would fail loudly: the refusal must come first.
      const d = dirs("old-tree");
      const source = fakeSource("old-src", "criu-src", {
        Makefile: "criu crit:\n\t@echo 'built!' && false\n",
        "Makefile.versions":
          "CRIU_VERSION_MAJOR\t:= 4\nCRIU_VERSION_MINOR\t:= 1\nCRIU_VERSION_SUBLEVEL\t:= 1\n",
      });
      const ran = install([...source, ...d.args]);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toContain("the source is CRIU 4.1.1: refused (nothing installed)");
      reason(ran.stdout);
      expect(ran.stdout).not.toContain("building");
      expect(fs.readFileSync(path.join(d.log, "install.log"), "utf8")).not.toContain("built!");
      nothingInstalled(d);
    });
  });

  it("stops with exit 1 and the log when the build fails, installing nothing", () => {
    const d = dirs("bad-build");
    const source = fakeSource("broken-src", "criu-0.0", {
      Makefile: "criu crit:\n\t@echo 'compiler says no' && false\n",
    });
    const ran = install([...source, ...d.args]);
    expect(ran.code).toBe(1);
    expect(ran.stdout).toContain("make failed");
    expect(fs.readFileSync(path.join(d.log, "install.log"), "utf8")).toContain("compiler says no");
    nothingInstalled(d);
  });

  describe("from git", () => {
    let repo: string;
    let commit: string;
    beforeAll(() => {
      repo = path.join(work, "criu.git");
      commit = criuReleaseRepo(repo);
    });

    it("refuses a tag whose commit is not the pinned one (exit 2), installing nothing", () => {
      const d = dirs("bad-commit");
      const wrong = "3c7d4fa013297b431da48eff821db7f2e8b90c27";
      const ran = install(["--git", repo, "--version", "v4.2.1", "--commit", wrong, ...d.args]);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toContain(`is commit ${commit}, expected ${wrong}: refused`);
      nothingInstalled(d);
    });

    it("fails with exit 3 when the tag cannot be fetched", () => {
      const d = dirs("no-tag");
      const ran = install(["--git", repo, "--version", "v9.9", "--commit", commit, ...d.args]);
      expect(ran.code).toBe(3);
      expect(ran.stdout).toContain(`could not clone tag v9.9 of ${repo}`);
      nothingInstalled(d);
    });

    it("builds the verified commit and records it", () => {
      const d = dirs("git");
      const ran = install(["--git", repo, "--version", "v4.2.1", "--commit", commit, ...d.args]);
      expect(ran.code, ran.stdout + ran.stderr).toBe(0);
      expect(ran.stdout).toContain(`commit verified: v4.2.1 = ${commit}`);
      const record = JSON.parse(fs.readFileSync(path.join(d.state, "install.json"), "utf8"));
      expect(record.sourceId).toBe(`git:v4.2.1@${commit}`);
      expect(record.source).toEqual({
        kind: "git",
        repository: repo,
        version: "v4.2.1",
        commit,
      });
      const check = run(path.join(d.prefix, "sbin/criu"), ["check"]);
      expect(check.code, check.stderr).toBe(0);
    });
  });
});
