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
const PINNED: Record<string, string> = {
  "4.2.1": "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
  "4.1.1": "f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe",
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

  it("rejects an unknown argument with exit 2", () => {
    const ran = run("bash", [SCRIPT, "--mirror", "x"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("unknown argument '--mirror'");
  });
});
