import { spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  compressUserData,
  DEFAULT_CRIU_REPOSITORY,
  LAB_DIR,
  LAB_FILES,
  LAB_FILES_WAIT_SECONDS,
  labFilesArchive,
  RECEIVE_SCRIPT,
  renderUserData,
  USER_DATA_LIMIT_BYTES,
  type UserDataOptions,
} from "../../cloud-init/userData";

/** An ED25519 key pair in OpenSSH's own format, as @pulumi/tls and ssh-keygen write it
 * (PROTOCOL.key in OpenSSH's source), so sizes and shapes are the real ones. */
function openSshEd25519(comment: string) {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d as string, "base64url");
  const pub = Buffer.from(jwk.x as string, "base64url");
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const str = (b: Buffer | string) => {
    const buf = Buffer.from(b);
    return Buffer.concat([u32(buf.length), buf]);
  };
  const pubBlob = Buffer.concat([str("ssh-ed25519"), str(pub)]);
  let secret = Buffer.concat([
    u32(0x12345678),
    u32(0x12345678),
    str("ssh-ed25519"),
    str(pub),
    str(Buffer.concat([seed, pub])),
    str(comment),
  ]);
  const padding = Buffer.from(
    Array.from({ length: (8 - (secret.length % 8)) % 8 }, (_, i) => i + 1),
  );
  secret = Buffer.concat([secret, padding]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    str("none"),
    str("none"),
    str(""),
    u32(1),
    str(pubBlob),
    str(secret),
  ]).toString("base64");
  const lines = body.match(/.{1,70}/g) ?? [];
  return {
    privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKeyOpenssh: `ssh-ed25519 ${pubBlob.toString("base64")} ${comment}\n`,
  };
}

/** The set-up's files are in cloud-init/; the host command and the lab's programs in host/. */
const SETUP_FILES = ["install-criu.sh", "motd", RECEIVE_SCRIPT, "setup-lab.sh"];

/** Where a lab file (its path on the host, under LAB_DIR) is in the repository: the guide in
 * docs/, the set-up's in cloud-init/, the host command's in host/. */
const folderOf = (name: string) =>
  name === "lab-guide.md" ? "docs" : SETUP_FILES.includes(name) ? "cloud-init" : "host";

/** A lab file exactly as it is in the repository. */
const labFile = (name: string) =>
  fs.readFileSync(path.join(__dirname, "../..", folderOf(name), name), "utf8");

const hostKey = openSshEd25519("criu-lab-host");
const userKey = openSshEd25519("someone@laptop").publicKeyOpenssh;
const vmKey = openSshEd25519("criu-lab-vm").publicKeyOpenssh;

const gitOptions: UserDataOptions = {
  criu: { kind: "git", version: "v4.2", commit: "3c7d4fa013297b431da48eff821db7f2e8b90c27" },
  hostKey,
  authorizedKeys: [userKey],
  autoStopMinutes: 120,
};
const tarballOptions: UserDataOptions = {
  criu: {
    kind: "tarball",
    url: "https://example.org/criu_4.2.1.orig.tar.xz",
    sha256: "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
  },
  hostKey,
  autoStopMinutes: 0,
  labUser: "labber",
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed YAML document
type Doc = Record<string, any>;
const render = (options: UserDataOptions): Doc => {
  const text = renderUserData(options);
  expect(text.startsWith("#cloud-config\n")).toBe(true);
  return parse(text) as Doc;
};

describe("renderUserData", () => {
  it("makes the lab user with passwordless sudo and the extra keys, keeping the default user", () => {
    const doc = render(gitOptions);
    expect(doc.users[0]).toBe("default");
    expect(doc.users[1]).toMatchObject({
      name: "ubuntu",
      sudo: "ALL=(ALL) NOPASSWD:ALL",
      shell: "/bin/bash",
      lock_passwd: true,
      ssh_authorized_keys: [userKey.trim()],
    });
    const other = render(tarballOptions);
    expect(other.users[1].name).toBe("labber");
    expect(other.users[1].ssh_authorized_keys).toBeUndefined();
  });

  it("installs the given SSH host key as the only host key", () => {
    const doc = render(gitOptions);
    expect(doc.ssh_keys).toEqual({
      ed25519_private: hostKey.privateKeyOpenssh,
      ed25519_public: hostKey.publicKeyOpenssh.trim(),
    });
    expect(doc.ssh_deletekeys).toBe(true);
    // cc_ssh generates only missing types; ed25519 is provided, so nothing is generated.
    expect(doc.ssh_genkeytypes).toEqual(["ed25519"]);
  });

  it("leaves apt to the installer, which skips recommends and retries", () => {
    expect(render(gitOptions).packages).toBeUndefined();
    const installer = labFile("install-criu.sh");
    expect(installer).toContain("install -y --no-install-recommends");
    expect(installer).toContain("Acquire::Retries=");
    expect(installer).toContain("DPkg::Lock::Timeout=");
  });

  it("reads the set-up's files from cloud-init/, the host command's from host/, the guide from docs/", () => {
    const root = path.resolve(__dirname, "../..");
    for (const { name, source } of LAB_FILES) {
      expect(source, name).toBe(path.join(root, folderOf(name), name));
    }
    expect(LAB_FILES.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        "criu-lab",
        "criu_lab/cli.py",
        "criu_lab/exercises.json",
        "counter.py",
        "setup-lab.sh",
        "lab-guide.md",
      ]),
    );
  });

  it("ships exactly the lab's files, byte for byte as in the repository, with their modes", () => {
    const doc = render(gitOptions);
    expect(doc.write_files.map((f: Doc) => f.path)).toEqual(
      LAB_FILES.map((f) => `${LAB_DIR}/${f.name}`),
    );
    for (const [i, { name, mode }] of LAB_FILES.entries()) {
      const entry = doc.write_files[i];
      // Plain content: no `encoding`, so cloud-init writes it as it is.
      expect(Object.keys(entry).sort(), name).toEqual(["content", "path", "permissions"]);
      expect(entry.permissions, name).toBe(mode);
      expect(entry.content, name).toBe(labFile(name));
    }
    // Comments reach the host: learners read the scripts as written here.
    const installer = doc.write_files.find((f: Doc) => f.path.endsWith("/install-criu.sh"));
    expect(installer.content).toMatch(/^# /m);
  });

  it("runs setup-lab.sh from where the files land, with the git source", () => {
    const doc = render(gitOptions);
    expect(doc.runcmd).toEqual([
      [
        "bash",
        `${LAB_DIR}/setup-lab.sh`,
        "--user",
        "ubuntu",
        "--auto-stop-minutes",
        "120",
        "--criu-git",
        DEFAULT_CRIU_REPOSITORY,
        "--criu-version",
        "v4.2",
        "--criu-commit",
        "3c7d4fa013297b431da48eff821db7f2e8b90c27",
      ],
    ]);
  });

  it("passes a tarball source, its sha256 and the lab user to setup-lab.sh", () => {
    const setup: string[] = render(tarballOptions).runcmd[0];
    expect(setup.slice(2)).toEqual([
      "--user",
      "labber",
      "--auto-stop-minutes",
      "0",
      "--criu-tarball",
      "https://example.org/criu_4.2.1.orig.tar.xz",
      "--criu-sha256",
      "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
    ]);
  });

  it("compresses to gzip that cloud-init's gunzip turns back into the very document", () => {
    // The form EC2 gets: the embedded one (the VM's) has outgrown EC2's 16 KB on purpose.
    const text = renderUserData({ ...gitOptions, labFiles: "copied" });
    const compressed = compressUserData(text);
    expect([...compressed.subarray(0, 2)]).toEqual([0x1f, 0x8b]); // gzip's magic number
    expect(gunzipSync(compressed).toString("utf8")).toBe(text);
  });

  it("refuses a document that does not fit even compressed, naming its size and the limit", () => {
    // Random bytes do not compress: base64 of 16 KB of them gzips to more than 16 KB.
    const text = "#cloud-config\n# " + randomBytes(USER_DATA_LIMIT_BYTES).toString("base64");
    expect(() => compressUserData(text)).toThrow(
      new RegExp(`user-data is \\d+ bytes gzip-compressed .*limit of ${USER_DATA_LIMIT_BYTES}`),
    );
  });

  it("is a pure function of its options", () => {
    expect(renderUserData(gitOptions)).toBe(renderUserData(gitOptions));
    expect(renderUserData(gitOptions)).not.toBe(renderUserData({ ...gitOptions, labUser: "x" }));
  });

  it.each([
    [{ criu: { ...gitOptions.criu, commit: "3c7d4fa" } }, "criu.commit", "3c7d4fa"],
    [{ criu: { ...gitOptions.criu, version: "v4.2; rm -rf /" } }, "criu.version", "v4.2; rm -rf /"],
    [{ criu: { ...tarballOptions.criu, sha256: "abc" } }, "criu.sha256", "abc"],
    [{ criu: { ...tarballOptions.criu, url: "ftp://x/y.tar" } }, "criu.url", "ftp://x/y.tar"],
    [{ autoStopMinutes: -1 }, "autoStopMinutes", "-1"],
    [{ autoStopMinutes: 1.5 }, "autoStopMinutes", "1.5"],
    [{ labUser: "root" }, "labUser", "root"],
    [{ labUser: "Bad User" }, "labUser", "Bad User"],
    [{ authorizedKeys: ["not a key"] }, "authorizedKeys[0]", "not a key"],
    [{ hostKey: { ...hostKey, publicKeyOpenssh: "ssh-rsa AAAA" } }, "hostKey.publicKeyOpenssh", ""],
    [{ labFiles: "scp" }, "labFiles", "scp"],
    [{ labFilesWaitSeconds: 0 }, "labFilesWaitSeconds", "0"],
    [{ labFilesWaitSeconds: 2.5 }, "labFilesWaitSeconds", "2.5"],
  ] as Array<[Partial<UserDataOptions>, string, string]>)(
    "refuses bad input, naming the field: %o",
    (override, field, value) => {
      expect(() => renderUserData({ ...gitOptions, ...override })).toThrow(
        new RegExp(
          `invalid ${field.replace(/[[\]]/g, "\\$&")} .*${value.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}.*expected`,
        ),
      );
    },
  );

  it("never echoes a bad private key in its error", () => {
    const secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-really\n";
    expect(() =>
      renderUserData({ ...gitOptions, hostKey: { ...hostKey, privateKeyOpenssh: secret } }),
    ).toThrow(/invalid hostKey.privateKeyOpenssh "<redacted>"/);
    try {
      renderUserData({ ...gitOptions, hostKey: { ...hostKey, privateKeyOpenssh: secret } });
    } catch (e) {
      expect(String(e)).not.toContain("not-really");
    }
  });
});

describe("renderUserData with copied lab files (EC2)", () => {
  const copied: UserDataOptions = { ...gitOptions, labFiles: "copied" };

  it("writes only the receiving script, as in cloud-init/, and none of the lab's files", () => {
    const doc = render(copied);
    expect(doc.write_files).toEqual([
      {
        path: `${LAB_DIR}/${RECEIVE_SCRIPT}`,
        permissions: "0755",
        content: labFile(RECEIVE_SCRIPT),
      },
    ]);
    const text = renderUserData(copied);
    expect(text).not.toContain(
      labFile("counter.py")
        .split("\n")
        .find((l) => l.length > 40),
    );
    expect(text).not.toContain("setup-lab: ");
  });

  it("keeps the users and the pinned host key of the embedded form", () => {
    const [embedded, doc] = [render(gitOptions), render(copied)];
    for (const key of ["users", "ssh_keys", "ssh_deletekeys", "ssh_genkeytypes"]) {
      expect(doc[key], key).toEqual(embedded[key]);
    }
  });

  it("waits for the archive it pins by SHA-256, then runs setup-lab.sh with the same arguments", () => {
    const embeddedSetup: string[] = render(gitOptions).runcmd[0];
    const runcmd: string[][] = render(copied).runcmd;
    expect(runcmd).toHaveLength(1);
    const command = runcmd[0]!;
    const option = (name: string) => command[command.indexOf(name) + 1];
    expect(command.slice(0, 3)).toEqual(["bash", `${LAB_DIR}/${RECEIVE_SCRIPT}`, "wait"]);
    expect(option("--sha256")).toBe(labFilesArchive().sha256);
    expect(option("--wait-seconds")).toBe(String(LAB_FILES_WAIT_SECONDS));
    // After `--`: setup-lab.sh's own arguments, the same as when it runs embedded.
    expect(command.slice(command.indexOf("--") + 1)).toEqual(embeddedSetup.slice(2));
    const short = render({ ...copied, labFilesWaitSeconds: 5 }).runcmd[0];
    expect(short[short.indexOf("--wait-seconds") + 1]).toBe("5");
  });

  it("compressed, is small: a quarter of EC2's 16 KB at most, with two authorized keys", () => {
    const text = renderUserData({ ...copied, authorizedKeys: [userKey, vmKey] });
    const compressed = compressUserData(text);
    console.log(
      `user-data (copied lab files): ${compressed.length} of ${USER_DATA_LIMIT_BYTES} bytes ` +
        `gzip-compressed (${Buffer.byteLength(text, "utf8")} bytes plain); embedded it would be ` +
        `${gzipSync(renderUserData({ ...gitOptions, authorizedKeys: [userKey, vmKey] }), { level: 9 }).length}`,
    );
    expect(compressed.length).toBeLessThanOrEqual(USER_DATA_LIMIT_BYTES / 4);
    expect(gunzipSync(compressed).toString("utf8")).toBe(text);
  });
});

describe("labFilesArchive", () => {
  it("is the same bytes every time, and its sha256 is theirs", () => {
    const [a, b] = [labFilesArchive(), labFilesArchive()];
    expect(a.tar.equals(b.tar)).toBe(true);
    expect(a.sha256).toBe(createHash("sha256").update(a.tar).digest("hex"));
    expect(a.tar.length % 512).toBe(0);
  });

  it("unpacks with GNU tar into exactly the lab's files, byte for byte, with their modes", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lab-archive-"));
    try {
      const file = path.join(dir, "lab.tar");
      fs.writeFileSync(file, labFilesArchive().tar);
      const out = path.join(dir, "out");
      fs.mkdirSync(out);
      const list = spawnSync("tar", ["-tvf", file], { encoding: "utf8" });
      expect(list.status, list.stderr).toBe(0);
      expect(list.stderr).toBe("");
      expect(list.stdout).toMatch(/^-rwxr-xr-x root\/root .* setup-lab.sh$/m);
      const unpack = spawnSync("tar", ["-x", "--no-same-owner", "--touch", "-f", file, "-C", out], {
        encoding: "utf8",
      });
      expect(unpack.status, unpack.stderr).toBe(0);
      const found = fs
        .readdirSync(out, { recursive: true, encoding: "utf8" })
        .filter((name) => fs.statSync(path.join(out, name)).isFile());
      expect(found.sort()).toEqual(LAB_FILES.map((f) => f.name).sort());
      for (const { name, mode } of LAB_FILES) {
        expect(fs.readFileSync(path.join(out, name), "utf8"), name).toBe(labFile(name));
        const actual = (fs.statSync(path.join(out, name)).mode & 0o777).toString(8);
        expect(actual.padStart(4, "0"), name).toBe(mode);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
