/**
 * `npm run setup:host` (scripts/setup-host.sh) chooses CRIU's source: Debian's source archive
 * where it can be used, else the pinned git source EC2 uses (Ubuntu has no
 * debian-archive-keyring, jammy's lacks current Debian keys). The choice is read with
 * --dry-run (the set-up command, run nothing), and the git path is then built for real from
 * a local repository into a temp prefix, as install-criu.test.ts's git-path test does: the
 * lab installed in /usr/local is never touched.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { DEFAULT_CRIU_REPOSITORY } from "../../cloud-init/userData";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import { CLOUD_INIT, criuReleaseRepo, REPO, run, tempDir } from "./support/lab-helpers";

const SETUP_HOST = path.join(REPO, "scripts/setup-host.sh");
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/** The --criu-* flags of the set-up command a dry run prints, as a map. */
function criuFlags(stdout: string): Record<string, string> {
  const words = stdout.trim().split(" ");
  expect(words.slice(0, 2)).toEqual(["bash", path.join(CLOUD_INIT, "setup-lab.sh")]);
  const flags: Record<string, string> = {};
  words.forEach((w, i) => {
    if (w.startsWith("--criu-")) flags[w] = words[i + 1];
  });
  return flags;
}

describe.skipIf(
  cannotRun("setup-host.sh", [
    needRoot(),
    needCommand("apt-get"),
    needCommand("git"),
    needCommand("make"),
    needCommand("protoc-c", "apt-get install protobuf-c-compiler"),
  ]),
)("setup-host.sh chooses CRIU's source", () => {
  let work: string;
  beforeAll(() => {
    work = tempDir("setup-host");
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
  const dryRun = (env: Record<string, string>, ...args: string[]) =>
    run("bash", [SETUP_HOST, "--dry-run", ...args], { env: { ...process.env, ...env } });

  it("without Debian's keyring: the pinned git source of Pulumi.yaml's defaults, and says so", () => {
    const keyring = path.join(work, "no-such-keyring.gpg");
    const ran = dryRun({ CRIU_LAB_DEBIAN_KEYRING: keyring });
    expect(ran.code, ran.stderr).toBe(0);
    const config = parse(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")).config;
    const version = config["criu-lab:criuVersion"]?.default ?? config.criuVersion.default;
    const commit = config["criu-lab:criuCommit"]?.default ?? config.criuCommit.default;
    expect(criuFlags(ran.stdout)).toEqual({
      "--criu-git": DEFAULT_CRIU_REPOSITORY,
      "--criu-version": version,
      "--criu-commit": commit,
    });
    expect(ran.stderr).toContain(`no Debian archive keyring at ${keyring}`);
    expect(ran.stderr).toContain(
      `building CRIU from the pinned git source that EC2 uses: ${DEFAULT_CRIU_REPOSITORY} tag ${version} (commit ${commit})`,
    );
  });

  it("with a keyring that cannot check Debian's archive (jammy's): the git source", () => {
    const keyring = path.join(work, "old-keyring.gpg");
    fs.writeFileSync(keyring, "not the keys of current Debian releases\n");
    const cache = path.join(work, "empty-cache");
    const ran = dryRun({ CRIU_LAB_DEBIAN_KEYRING: keyring, CRIU_LAB_CRIU_CACHE: cache });
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toContain(`Debian's archive could not be used`);
    expect(criuFlags(ran.stdout)["--criu-git"]).toBe(DEFAULT_CRIU_REPOSITORY);
    expect(fs.readdirSync(cache).filter((f) => f.endsWith(".tar.xz"))).toEqual([]);
  });

  it.skipIf(!fs.existsSync(KEYRING))("with Debian's keyring: the release tarball", () => {
    const ran = dryRun({});
    expect(ran.code, ran.stderr).toBe(0);
    const flags = criuFlags(ran.stdout);
    expect(flags["--criu-tarball"]).toMatch(/criu_4\.2\.\d+\.orig\.tar\.xz$/);
    expect(flags["--criu-sha256"]).toMatch(/^[0-9a-f]{64}$/);
  });

  it("flags given on the command line win: no source is chosen", () => {
    const ran = dryRun(
      { CRIU_LAB_DEBIAN_KEYRING: path.join(work, "none") },
      ...["--criu-tarball", "/x.tar", "--criu-sha256", "a".repeat(64)],
    );
    expect(ran.code).toBe(0);
    expect(ran.stderr).toBe("");
    expect(criuFlags(ran.stdout)).toEqual({
      "--criu-tarball": "/x.tar",
      "--criu-sha256": "a".repeat(64),
    });
  });

  it("the git path builds and installs CRIU from a local repository", () => {
    const repo = path.join(work, "criu.git");
    const commit = criuReleaseRepo(repo);

    const chosen = dryRun({
      CRIU_LAB_DEBIAN_KEYRING: path.join(work, "none"),
      CRIU_LAB_GIT_REPOSITORY: repo,
      CRIU_LAB_GIT_VERSION: "v4.2.1",
      CRIU_LAB_GIT_COMMIT: commit,
    });
    expect(chosen.code, chosen.stderr).toBe(0);
    const flags = criuFlags(chosen.stdout);
    expect(flags).toEqual({
      "--criu-git": repo,
      "--criu-version": "v4.2.1",
      "--criu-commit": commit,
    });
    // setup-lab.sh hands the --criu-* flags to install-criu.sh without their "criu-" prefix.
    const root = path.join(work, "install");
    const install = run("bash", [
      path.join(CLOUD_INIT, "install-criu.sh"),
      ...Object.entries(flags).flatMap(([flag, value]) => [flag.replace("--criu-", "--"), value]),
      ...["--prefix", `${root}/prefix`, "--state-dir", `${root}/state`, "--log-dir", `${root}/log`],
    ]);
    expect(install.code, install.stdout + install.stderr).toBe(0);
    expect(install.stdout).toContain(`commit verified: v4.2.1 = ${commit}`);
    const record = JSON.parse(fs.readFileSync(`${root}/state/install.json`, "utf8"));
    expect(record.source).toEqual({ kind: "git", repository: repo, version: "v4.2.1", commit });
    const check = run(`${root}/prefix/sbin/criu`, ["check"]);
    expect(check.code, check.stderr).toBe(0);
  });
});
