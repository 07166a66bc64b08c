/**
 * install-criu.sh's decision to reuse an installation it finds (the Debian 13 VM image has
 * CRIU built in its tree, and the guest's cloud-init run must skip the build only when that
 * build is sound here): the record's source, the binaries, the version and `criu check` on
 * this kernel. Each case lays out a prefix from this host's installed CRIU (copied, never
 * changed) and runs the script's own `already_installed`, or the whole script where a
 * refusal must go on to the build steps. Nothing is built.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needRoot } from "../support/requirements";
import { CLOUD_INIT, run, tempDir, type Ran } from "./support/lab-helpers";

const INSTALLER = path.join(CLOUD_INIT, "install-criu.sh");
const CRIU = "/usr/local/sbin/criu";
const CRIT = "/usr/local/bin/crit";
const CRIU_NS = "/usr/local/sbin/criu-ns";
const SHA = "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9";

const installedVersion = (): string | undefined =>
  /^Version: (\S+)$/m.exec(run(CRIU, ["--version"]).stdout)?.[1];

describe.skipIf(
  cannotRun("install-criu.sh's reuse of an installation", [
    needRoot(),
    [CRIU, CRIT, CRIU_NS].every((f) => fs.existsSync(f))
      ? undefined
      : `no installed CRIU (${CRIU}, ${CRIT}, ${CRIU_NS}): run npm run setup:host`,
    run(CRIU, ["check"]).code === 0 ? undefined : "`criu check` fails on this host",
  ]),
)("install-criu.sh: reusing an installation it finds", () => {
  let work: string;
  let n = 0;
  const version = installedVersion() ?? "";

  /** A prefix and state dir holding a copy of this host's CRIU and a record of it. */
  const layout = (change: { record?: Partial<Record<string, string>>; drop?: string } = {}) => {
    const root = path.join(work, `case-${++n}`);
    const prefix = path.join(root, "prefix");
    const state = path.join(root, "state");
    const log = path.join(root, "log");
    fs.mkdirSync(path.join(prefix, "sbin"), { recursive: true });
    fs.mkdirSync(path.join(prefix, "bin"), { recursive: true });
    fs.mkdirSync(state, { recursive: true });
    fs.copyFileSync(CRIU, path.join(prefix, "sbin/criu"));
    fs.copyFileSync(CRIU_NS, path.join(prefix, "sbin/criu-ns"));
    fs.copyFileSync(CRIT, path.join(prefix, "bin/crit"));
    for (const f of ["sbin/criu", "sbin/criu-ns", "bin/crit"]) {
      fs.chmodSync(path.join(prefix, f), 0o755);
    }
    if (change.drop) fs.rmSync(path.join(prefix, change.drop));
    const record = {
      criuVersion: version,
      sourceId: `tarball:${SHA}`,
      criu: `${prefix}/sbin/criu`,
      ...change.record,
    };
    // As install-criu.sh writes it: one key a line.
    fs.writeFileSync(path.join(state, "install.json"), `${JSON.stringify(record, null, 2)}\n`);
    return { root, prefix, state, log };
  };

  /** Runs the script's `already_installed` (sourced) for a tarball source with sha256 SHA. */
  const decide = (d: ReturnType<typeof layout>, sha = SHA): Ran =>
    run("bash", [
      "-c",
      `set -euo pipefail; source "$1"; shift; parse_args "$@"; validate_args; setup_logging; ` +
        `if already_installed; then echo "decision: reuse"; else echo "decision: build"; fi`,
      "decide",
      INSTALLER,
      ...["--tarball", `/nonexistent/criu_${version}.orig.tar.xz`, "--sha256", sha],
      ...["--prefix", d.prefix, "--state-dir", d.state, "--log-dir", d.log],
    ]);

  beforeAll(() => {
    work = tempDir("install-reuse");
  });
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("reuses a sound installation: same source, version as recorded, criu check passing here", () => {
    const ran = decide(layout());
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain("decision: reuse");
    const kernel = run("uname", ["-r"]).stdout.trim();
    expect(ran.stdout).toContain(
      `CRIU ${version} from tarball:${SHA} is already installed in ${work}/case-${n}/prefix ` +
        `and passes criu check on ${kernel}: nothing to do`,
    );
  });

  it("builds when there is no record, saying nothing about reuse", () => {
    const d = layout();
    fs.rmSync(path.join(d.state, "install.json"));
    const ran = decide(d);
    expect(ran.stdout).toContain("decision: build");
    expect(ran.stdout).not.toContain("not reusing");
  });

  it.each([
    ["another source", {}, "0".repeat(64), /install\.json names another source than tarball:0{64}/],
    ["criu-ns missing", { drop: "sbin/criu-ns" }, SHA, /prefix\/sbin\/criu-ns is missing/],
    ["crit missing", { drop: "bin/crit" }, SHA, /prefix\/bin\/crit is missing/],
    [
      "another version recorded",
      { record: { criuVersion: "4.2.0" } },
      SHA,
      /criu --version says '[\d.]+', .*install\.json says '4\.2\.0'/,
    ],
  ] as const)("builds when %s, and says why", (_what, change, sha, why) => {
    const ran = decide(layout(change), sha);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain("decision: build");
    expect(ran.stdout).toMatch(why);
    expect(ran.stdout).toMatch(/not reusing the installed CRIU: .*; building/);
  });

  it("builds when crit does not run", () => {
    const d = layout();
    fs.writeFileSync(path.join(d.prefix, "bin/crit"), "#!/bin/sh\nexit 1\n");
    const ran = decide(d);
    expect(ran.stdout).toContain("decision: build");
    expect(ran.stdout).toContain("bin/crit does not run");
  });

  // A build made elsewhere (the image's, in a chroot on the build host's kernel) must pass
  // `criu check` on the kernel it runs on; here a criu whose check fails stands for that.
  it("builds when `criu check` fails on this kernel, and the whole run goes on to the build's steps", () => {
    const d = layout();
    const criu = path.join(d.prefix, "sbin/criu");
    fs.renameSync(criu, `${criu}.real`);
    fs.writeFileSync(
      criu,
      `#!/bin/bash\nif [ "$1" = check ]; then echo "Error: a check failed" >&2; exit 1; fi\nexec "$0.real" "$@"\n`,
      { mode: 0o755 },
    );
    const kernel = run("uname", ["-r"]).stdout.trim();
    const decided = decide(d);
    expect(decided.stdout).toContain("decision: build");
    expect(decided.stdout).toContain(`\`criu check\` fails on this kernel (${kernel})`);
    // The whole script: no reuse, so it fetches the source (which does not exist here: exit 2,
    // before any build) and leaves the installation as it was.
    const ran = run("bash", [
      INSTALLER,
      ...["--tarball", "/nonexistent/criu_4.2.1.orig.tar.xz", "--sha256", SHA],
      ...["--prefix", d.prefix, "--state-dir", d.state, "--log-dir", d.log],
    ]);
    expect(ran.code).toBe(2);
    expect(ran.stdout).toContain("--tarball /nonexistent/criu_4.2.1.orig.tar.xz: no such file");
    expect(fs.readFileSync(path.join(d.log, "install.log"), "utf8")).toContain(
      "not reusing the installed CRIU",
    );
    // And with a passing check the whole script stops at the reuse, never reaching the source.
    fs.renameSync(`${criu}.real`, criu);
    const reused = run("bash", [
      INSTALLER,
      ...["--tarball", "/nonexistent/criu_4.2.1.orig.tar.xz", "--sha256", SHA],
      ...["--prefix", d.prefix, "--state-dir", d.state, "--log-dir", d.log],
    ]);
    expect(reused.code, reused.stdout + reused.stderr).toBe(0);
    expect(reused.stdout).toContain("nothing to do");
  });
});
