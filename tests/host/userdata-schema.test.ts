/**
 * The rendered user-data, checked by this machine's real cloud-init: `cloud-init schema` on
 * the plain document, cloud-init's own user-data code on the gzip-compressed one EC2 gets, and
 * the lab files as cloud-init's write_files module writes them, checked like the originals.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import {
  compressUserData,
  LAB_DIR,
  LAB_FILES,
  renderUserData,
  type UserDataOptions,
} from "../../cloud-init/userData";
import { cannotRun, needCommand } from "../support/requirements";
import { cloudInitRead } from "./support/cloud-init";
import { run, tempDir } from "./support/lab-helpers";
import { generateKey } from "../../vm/keys";

describe.skipIf(
  cannotRun("user-data schema", [
    needCommand("cloud-init", "apt-get install cloud-init"),
    needCommand("ssh-keygen"),
    needCommand("shellcheck"),
  ]),
)("rendered user-data", () => {
  let dir: string;
  let options: UserDataOptions;
  const write = (name: string, text: string) => {
    // The user-data holds the host's private key: readable by the owner only, never printed.
    const file = path.join(dir, name);
    fs.writeFileSync(file, text, { mode: 0o600 });
    return file;
  };
  const schema = (file: string) => run("cloud-init", ["schema", "-c", file]);

  beforeAll(() => {
    dir = tempDir("userdata");
    const hostKey = generateKey(path.join(dir, "host_ed25519"), "test");
    options = {
      criu: { kind: "git", version: "v4.2", commit: "3c7d4fa013297b431da48eff821db7f2e8b90c27" },
      hostKey,
      authorizedKeys: [hostKey.publicKeyOpenssh],
      autoStopMinutes: 120,
    };
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each([
    ["git source", () => options],
    [
      "tarball source, other user, no auto-stop",
      () =>
        ({
          ...options,
          criu: { kind: "tarball", url: "/srv/criu.tar.xz", sha256: "a".repeat(64) },
          labUser: "debian",
          autoStopMinutes: 0,
          authorizedKeys: undefined,
        }) satisfies UserDataOptions,
    ],
  ])("passes `cloud-init schema` (%s)", (_, make) => {
    const ran = schema(write("user-data.yaml", renderUserData(make())));
    expect(ran.stdout + ran.stderr).toContain("Valid cloud-config");
    expect(ran.code).toBe(0);
  });

  it("the schema check can fail: a broken document is refused", () => {
    const doc = parse(renderUserData(options));
    doc.runcmd = "bash setup-lab.sh";
    doc.ssh_genkeytypes = [];
    const ran = schema(write("broken.yaml", "#cloud-config\n" + stringify(doc)));
    expect(ran.code).not.toBe(0);
    expect(ran.stdout + ran.stderr).toContain("runcmd");
    expect(ran.stdout + ran.stderr).toContain("ssh_genkeytypes");
  });

  // The gzip-compressed form is EC2's, whose lab files are copied (the embedded form, the
  // VM's, has outgrown EC2's 16 KB on purpose).
  it("cloud-init reads the gzip-compressed user-data as this very #cloud-config document", () => {
    const text = renderUserData({ ...options, labFiles: "copied" });
    const read = cloudInitRead(dir, compressUserData(text));
    expect(read.contentTypes).toEqual(["text/cloud-config"]);
    expect(read.cloudConfig === text, "cloud-init's reading differs from the document").toBe(true);
  });

  it("the reading can fail: a truncated gzip is no cloud-config to cloud-init", () => {
    const compressed = compressUserData(renderUserData({ ...options, labFiles: "copied" }));
    const read = cloudInitRead(dir, compressed.subarray(0, compressed.length >> 1));
    expect(read.contentTypes).not.toEqual(["text/cloud-config"]);
    expect(read.cloudConfig).toBeUndefined();
  });

  describe("the lab files it carries, written by cloud-init's write_files", () => {
    let root: string;
    beforeAll(() => {
      root = path.join(dir, "root");
      // The embedded form, as a VM's NoCloud seed carries it (plain text).
      const read = cloudInitRead(dir, renderUserData(options), root);
      expect(read.written).toEqual(LAB_FILES.map((f) => path.join(root, LAB_DIR, f.name)));
    });
    const written = (name: string) => path.join(root, LAB_DIR, name);

    it("are the lab's files of the repository, byte for byte, with their modes", () => {
      const files = fs
        .readdirSync(path.join(root, LAB_DIR), { recursive: true, encoding: "utf8" })
        .filter((name) => fs.statSync(written(name)).isFile());
      expect(files.sort()).toEqual(LAB_FILES.map((f) => f.name).sort());
      for (const { name, mode, source } of LAB_FILES) {
        const mine = (fs.statSync(written(name)).mode & 0o777).toString(8).padStart(4, "0");
        expect(mine, name).toBe(mode);
        const same = fs.readFileSync(written(name)).equals(fs.readFileSync(source));
        expect(same, `${name} differs from ${source}`).toBe(true);
      }
    });

    it("pass shellcheck and compile where cloud-init wrote them", () => {
      for (const name of ["install-criu.sh", "setup-lab.sh"]) {
        const ran = run("shellcheck", [written(name)]);
        expect(ran.stdout, name).toBe("");
        expect(ran.code, name).toBe(0);
      }
      for (const name of ["criu-lab", "counter.py"]) {
        const code = `import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")`;
        const ran = run("/usr/bin/python3", ["-c", code, written(name)]);
        expect(ran.code, ran.stderr).toBe(0);
      }
      const help = run("/usr/bin/python3", [written("criu-lab"), "--help"]);
      expect(help.stdout).toContain("analyze DIR");
    });
  });
});
