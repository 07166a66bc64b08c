/**
 * scripts/fetch-criu-source.sh against Debian's real source archive, into a temp cache:
 * it fetches and verifies the release tarball, reuses a verified copy, and replaces one
 * that does not match its pinned sha256.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import { REPO, run, tempDir } from "./support/lab-helpers";

const SCRIPT = path.join(REPO, "scripts/fetch-criu-source.sh");
// Only releases from v4.2 on (install-criu.sh's floor): no 4.1.1 fallback.
const PINNED: Record<string, string> = {
  "4.2.1": "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
};

describe.skipIf(
  cannotRun("fetch-criu-source.sh", [
    needCommand("apt-get"),
    fs.existsSync("/usr/share/keyrings/debian-archive-keyring.gpg")
      ? undefined
      : "needs debian-archive-keyring",
  ]),
)("fetch-criu-source.sh", () => {
  let cache: string;
  const fetch = () => run("bash", [SCRIPT, "--cache-dir", cache]);
  beforeAll(() => {
    cache = tempDir("fetch");
  });
  afterAll(() => fs.rmSync(cache, { recursive: true, force: true }));

  let file = "";
  it("downloads CRIU's release tarball and prints its verified sha256 and path", () => {
    const ran = fetch();
    expect(ran.code, ran.stderr).toBe(0);
    const [sha, printed] = ran.stdout.trim().split(/\s+/);
    file = printed;
    const version = path.basename(file).match(/^criu_(\d+\.\d+\.\d+)\.orig\.tar\.xz$/)?.[1];
    expect(PINNED[version ?? ""]).toBe(sha);
    expect(path.dirname(file)).toBe(fs.realpathSync(cache));
    expect(run("sha256sum", [file]).stdout.split(" ")[0]).toBe(sha);
    expect(ran.stderr).toContain("verified");
  });

  it("reuses the verified copy", () => {
    const ran = fetch();
    expect(ran.code).toBe(0);
    expect(ran.stderr).toContain("already in the cache, verified");
    expect(ran.stdout.trim().split(/\s+/)[1]).toBe(file);
  });

  it("replaces a cached copy that does not match its sha256", () => {
    fs.writeFileSync(file, "not the release");
    const ran = fetch();
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).not.toContain("already in the cache");
    const sha = ran.stdout.trim().split(/\s+/)[0];
    expect(run("sha256sum", [file]).stdout.split(" ")[0]).toBe(sha);
  });

  it("pins no release older than v4.2", () => {
    const text = fs.readFileSync(SCRIPT, "utf8");
    const releases = [...text.matchAll(/^ {2}"(\w+) (\d+)\.(\d+)\.\d+ [0-9a-f]{64}"$/gm)];
    expect(releases.map((m) => m[1])).toEqual(["sid"]);
    for (const m of releases) expect(Number(m[2]) * 100 + Number(m[3])).toBeGreaterThanOrEqual(402);
  });

  it("without Debian's archive keyring (Ubuntu) says so and exits 3, downloading nothing", () => {
    const empty = tempDir("fetch-nokey");
    try {
      const keyring = path.join(empty, "debian-archive-keyring.gpg");
      const ran = run("bash", [SCRIPT, "--cache-dir", empty], {
        env: { ...process.env, CRIU_LAB_DEBIAN_KEYRING: keyring },
      });
      expect(ran.code).toBe(3);
      expect(ran.stderr).toContain(`missing ${keyring}`);
      expect(ran.stdout).toBe("");
      expect(fs.readdirSync(empty)).toEqual(["fetch.log"]);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it("rejects an unknown argument with exit 2", () => {
    const ran = run("bash", [SCRIPT, "--mirror", "x"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("unknown argument '--mirror'");
  });
});
