import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEBIAN_RECIPE_VERSION,
  DEBIAN_RELEASES,
  debianCacheMiss,
  debianImageDir,
  debianImageFiles,
  debianPackages,
  DEFAULT_DEBIAN_RELEASE,
  expectedSum,
  imagePackages,
  parseSha256Sums,
  sha256File,
  ubuntuImage,
  ubuntuImageName,
  verifySha256,
} from "../../vm/image";
import { criuBuildPackages, criuSourceId, INSTALL_CRIU_SH } from "../../vm/imageCriu";
import { scratchDir } from "./support/scratch";

const sha = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

// The shape of Canonical's file (binary-mode lines, as on cloud-images.ubuntu.com).
const SUMS = [
  `${"a".repeat(64)} *ubuntu-24.04-server-cloudimg-amd64.img`,
  `${"B".repeat(64)} *ubuntu-24.04-server-cloudimg-arm64.img`,
  `${"c".repeat(64)}  ubuntu-24.04-server-cloudimg-amd64.manifest`,
  "",
].join("\n");

describe("SHA256SUMS", () => {
  it("parses binary- and text-mode lines, lowercasing the sums", () => {
    const sums = parseSha256Sums(SUMS);
    expect(sums.size).toBe(3);
    expect(sums.get("ubuntu-24.04-server-cloudimg-arm64.img")).toBe("b".repeat(64));
    expect(sums.get("ubuntu-24.04-server-cloudimg-amd64.manifest")).toBe("c".repeat(64));
    expect(expectedSum(sums, ubuntuImageName("x64"))).toBe("a".repeat(64));
    expect(ubuntuImageName("arm64")).toBe("ubuntu-24.04-server-cloudimg-arm64.img");
  });

  it("refuses what is not a list of sums (an HTML error page, a cut line, nothing)", () => {
    expect(() => parseSha256Sums("<html><body>404</body></html>")).toThrow(
      /SHA256SUMS line 1 is not '<sha256> \*<file>'/,
    );
    expect(() => parseSha256Sums(`${"a".repeat(63)} *x.img`)).toThrow(/line 1/);
    expect(() => parseSha256Sums("\n\n")).toThrow("SHA256SUMS is empty");
  });

  it("names the missing file when the list has no entry for it", () => {
    expect(() =>
      expectedSum(parseSha256Sums(SUMS), "ubuntu-24.04-server-cloudimg-riscv64.img"),
    ).toThrow(/no entry for ubuntu-24.04-server-cloudimg-riscv64.img/);
  });
});

describe("file checks", () => {
  const dir = scratchDir("vm-image-test");

  it("hashes a file as sha256sum does and rejects a mismatch naming both sums", async () => {
    const file = path.join(dir, "disk.img");
    fs.writeFileSync(file, "not really a disk\n");
    expect(await sha256File(file)).toBe(sha("not really a disk\n"));
    await expect(
      verifySha256(file, sha("not really a disk\n").toUpperCase()),
    ).resolves.toBeUndefined();
    await expect(verifySha256(file, "0".repeat(64))).rejects.toThrow(
      `disk.img: sha256 ${sha("not really a disk\n")} does not match the expected ${"0".repeat(64)}`,
    );
  });
});

/**
 * The Ubuntu download path against a local server that plays cloud-images.ubuntu.com (this
 * machine cannot reach the real one): sums fetched and parsed, the image checked, cached.
 */
describe("Ubuntu cloud image download", () => {
  const name = ubuntuImageName();
  const goodImage = Buffer.from("QFI\xfb pretend qcow2 image", "latin1");
  let served = goodImage;
  let requests: string[] = [];
  let baseUrl = "";
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    if (req.url === "/release/SHA256SUMS") res.end(`${sha(goodImage)} *${name}\n`);
    else if (req.url === `/release/${name}`) res.end(served);
    else res.writeHead(404).end("not found");
  });
  const dirs: string[] = [];
  const cacheDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "vm-ubuntu-test-"));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/release`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it("downloads, checks against SHA256SUMS, caches, and reuses the cache", async () => {
    const cache = cacheDir();
    served = goodImage;
    requests = [];
    const first = await ubuntuImage(cache, () => {}, baseUrl);
    expect(first).toMatchObject({ kind: "ubuntu", format: "qcow2", cached: false });
    expect(fs.readFileSync(first.disk)).toEqual(goodImage);
    expect(requests).toEqual(["/release/SHA256SUMS", `/release/${name}`]);
    requests = [];
    const second = await ubuntuImage(cache, () => {}, baseUrl);
    expect(second.cached).toBe(true);
    expect(requests).toEqual([]);
  });

  it("refuses an image that does not match its sum and leaves nothing in the cache", async () => {
    const cache = cacheDir();
    served = Buffer.from("tampered");
    await expect(ubuntuImage(cache, () => {}, baseUrl)).rejects.toThrow(
      new RegExp(`sha256 ${sha("tampered")} does not match the expected ${sha(goodImage)}`),
    );
    expect(fs.readdirSync(path.join(cache, "images"))).toEqual([]);
  });

  it("says how to do without it when the site cannot be reached or answers an error", async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = http.createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    await expect(
      ubuntuImage(cacheDir(), () => {}, `http://127.0.0.1:${closed}/release`),
    ).rejects.toThrow(/could not download SHA256SUMS .*without it use --image debian/);
    await expect(ubuntuImage(cacheDir(), () => {}, `${baseUrl}/nope`)).rejects.toThrow(
      /could not download SHA256SUMS from .*\/nope\/SHA256SUMS: HTTP 404/,
    );
  });
});

describe("Debian image recipe", () => {
  const mirrors = {
    archive: "http://mirror.example/debian",
    security: "http://mirror.example/debian-security",
    updates: true,
    from: "test",
  };

  it("names the packages a minbase cloud image needs, per release", () => {
    const common = [
      "cloud-init",
      "openssh-server",
      "linux-image-cloud-amd64",
      "python3-cffi-backend",
      "locales",
      "sudo",
      "ifupdown",
      "e2fsprogs",
    ];
    expect(debianPackages("12", "x64")).toEqual(
      expect.arrayContaining([...common, "isc-dhcp-client"]),
    );
    // trixie: the DHCP client its ifupdown recommends.
    const trixie = debianPackages("13", "x64");
    expect(trixie).toEqual(expect.arrayContaining([...common, "dhcpcd-base"]));
    expect(trixie).not.toContain("isc-dhcp-client");
    expect(debianPackages("13", "arm64")).toContain("linux-image-cloud-arm64");
    expect(DEFAULT_DEBIAN_RELEASE).toBe("13");
    expect(DEBIAN_RELEASES["13"].suite).toBe("trixie");
    expect(DEBIAN_RELEASES["12"].suite).toBe("bookworm");
  });

  it("puts the hostname in /etc/hosts, the root on /dev/vda and NoCloud first", () => {
    const files = debianImageFiles("13", mirrors);
    expect(files["etc/hosts"]).toMatch(/^127\.0\.1\.1\tcriu-lab$/m);
    expect(files["etc/fstab"]).toMatch(/^\/dev\/vda\t\/\text4/);
    expect(files["etc/network/interfaces"]).toContain("source /etc/network/interfaces.d/*");
    expect(files["etc/cloud/cloud.cfg.d/10_criu-lab-vm.cfg"]).toContain(
      "datasource_list: [NoCloud, None]",
    );
  });

  it("gives the guest the chosen mirrors for its release, and no other", () => {
    expect(debianImageFiles("13", mirrors)["etc/apt/sources.list"]).toBe(
      [
        "deb http://mirror.example/debian trixie main",
        "deb http://mirror.example/debian trixie-updates main",
        "deb http://mirror.example/debian-security trixie-security main",
        "",
      ].join("\n"),
    );
    expect(debianImageFiles("12", mirrors)["etc/apt/sources.list"]).toMatch(
      /^deb \S+ bookworm main$/m,
    );
  });
});

describe("Debian image cache", () => {
  const cache = scratchDir("vm-debian-cache");
  const spec = {
    release: "13" as const,
    mirrors: { archive: "http://a.example/debian", updates: true, from: "test" },
  };
  /** An image the recipe built in DIR: its files, and its manifest (the packages of `packagesOf`, and `more`). */
  const built = <T extends object>(dir: string, packagesOf: typeof spec, more = {} as T) => {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ["disk.raw", "vmlinuz", "initrd.img"]) fs.writeFileSync(path.join(dir, f), "");
    const manifest = {
      recipe: DEBIAN_RECIPE_VERSION,
      sources: debianImageFiles("13", spec.mirrors)["etc/apt/sources.list"],
      packages: imagePackages(packagesOf),
      ...more,
    };
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    return manifest;
  };

  it("is used only when this recipe built it with the same apt sources", () => {
    expect(debianCacheMiss(cache, spec)).toBe("not built yet");
    const dir = debianImageDir(cache, "13");
    expect(path.basename(dir)).toMatch(/^debian-13-(amd64|arm64)$/);
    const manifest = built(dir, spec);
    expect(debianCacheMiss(cache, spec)).toBeUndefined();
    const other = { ...spec, mirrors: { ...spec.mirrors, archive: "http://b.example/debian" } };
    expect(debianCacheMiss(cache, other)).toBe("its apt sources name another mirror");
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify({ ...manifest, recipe: 1 }));
    expect(debianCacheMiss(cache, spec)).toMatch(/^built by recipe 1/);
    // A package added to the list (debianPackages, or install-criu.sh's) makes a new image.
    const fewer = { ...manifest, packages: manifest.packages.slice(1) };
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(fewer));
    expect(debianCacheMiss(cache, spec)).toBe("it was built with another package list");
    expect(debianCacheMiss(cache, { ...spec, release: "12" })).toBe("not built yet");
  });

  it("keys an image with CRIU built in on the source's sha256, and checks its record", () => {
    const sha = "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9";
    const criu = { kind: "tarball" as const, url: "/src/criu_4.2.1.orig.tar.xz", sha256: sha };
    const withCriu = { ...spec, criu };
    const dir = debianImageDir(cache, "13", criu);
    expect(path.basename(dir)).toMatch(/^debian-13-(amd64|arm64)-criu-29ec0ee09e29$/);
    const other = { ...criu, sha256: "0".repeat(64) };
    expect(debianImageDir(cache, "13", other)).not.toBe(dir);
    expect(debianCacheMiss(cache, withCriu)).toBe("not built yet");
    const manifest = built(dir, withCriu, {
      criu: { criuVersion: "4.2.1", sourceId: `tarball:${sha}` },
    });
    expect(debianCacheMiss(cache, withCriu)).toBeUndefined();
    // A record of another source in the same directory (a shortened-sha collision) is a miss.
    const record = { ...manifest.criu, sourceId: "tarball:other" };
    fs.writeFileSync(
      path.join(dir, "manifest.json"),
      JSON.stringify({ ...manifest, criu: record }),
    );
    expect(debianCacheMiss(cache, withCriu)).toBe(
      `its CRIU is from tarball:other, not tarball:${sha}`,
    );
    // A git source is keyed on its commit.
    const git = { kind: "git" as const, version: "v4.2.1", commit: "a".repeat(40) };
    expect(path.basename(debianImageDir(cache, "13", git))).toMatch(/-criu-aaaaaaaaaaaa$/);
  });
});

describe("CRIU built in the image", () => {
  it("debootstraps exactly install-criu.sh's build dependencies", () => {
    const packages = criuBuildPackages();
    expect(packages).toContain("build-essential");
    expect(packages).toContain("libprotobuf-c-dev");
    expect(packages).toContain("libnftables-dev");
    const script = fs.readFileSync(INSTALL_CRIU_SH, "utf8");
    for (const p of packages) expect(script).toContain(p);
    expect(() => criuBuildPackages("#!/bin/bash\n")).toThrow(/no 'readonly BUILD_PACKAGES/);
    expect(() => criuBuildPackages("readonly BUILD_PACKAGES=(\n  gcc $(id)\n)\n")).toThrow(
      /'\$\(id\)' is not a package name/,
    );
  });

  it("gives the guest the source id install-criu.sh records", () => {
    const sha = "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9";
    expect(criuSourceId({ kind: "tarball", url: "http://x/c.tar.xz", sha256: sha })).toBe(
      `tarball:${sha}`,
    );
    expect(criuSourceId({ kind: "git", version: "v4.2.1", commit: "b".repeat(40) })).toBe(
      `git:v4.2.1@${"b".repeat(40)}`,
    );
    // install-criu.sh's own source_id, as written there.
    const script = fs.readFileSync(INSTALL_CRIU_SH, "utf8");
    expect(script).toContain('echo "tarball:$SHA256"');
    expect(script).toContain('echo "git:$GIT_VERSION@$GIT_COMMIT"');
  });
});
