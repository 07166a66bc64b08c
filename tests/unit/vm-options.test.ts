import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../verify/cliCommon";
import { DEFAULT_CACHE_DIR, parseVmArgs } from "../../vm/options";

const SHA = "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9";

describe("criu-lab vm flags", () => {
  it("defaults to the Ubuntu image, auto acceleration and a free port", () => {
    const o = parseVmArgs([]);
    expect(o).toMatchObject({
      image: "ubuntu",
      name: "criu-lab",
      accel: "auto",
      memoryMiB: 3072,
      cpus: 2,
      cacheDir: DEFAULT_CACHE_DIR,
      json: false,
      destroy: false,
    });
    expect(o.sshPort).toBeUndefined();
    expect(o.criuTarball).toBeUndefined();
    expect(o.mirror).toBeUndefined();
    // --image debian builds Debian 13 unless told otherwise.
    expect(parseVmArgs(["--image", "debian"]).debianRelease).toBe("13");
  });

  it("builds CRIU in the image for Debian 13 and in the guest otherwise, unless told", () => {
    expect(parseVmArgs([]).criuBuild).toBe("guest");
    expect(parseVmArgs(["--image", "debian"]).criuBuild).toBe("image");
    expect(parseVmArgs(["--image", "debian", "--debian-release", "12"]).criuBuild).toBe("guest");
    expect(parseVmArgs(["--image", "debian", "--criu-build", "guest"]).criuBuild).toBe("guest");
    expect(
      parseVmArgs(["--image", "debian", "--debian-release=12", "--criu-build=image"]).criuBuild,
    ).toBe("image");
    expect(() => parseVmArgs(["--criu-build", "image"])).toThrow(
      /--criu-build: 'image' only applies to --image debian/,
    );
    expect(() => parseVmArgs(["--image", "debian", "--criu-build", "host"])).toThrow(
      "--criu-build: 'host' is not allowed: use one of image, guest",
    );
  });

  it("reads every flag, in both --flag value and --flag=value forms", () => {
    const o = parseVmArgs(
      [
        "--image=debian",
        "--name",
        "ci-1",
        "--ssh-port",
        "2299",
        "--memory=2048",
        "--cpus",
        "1",
        "--accel",
        "tcg",
        "--criu-tarball",
        "src/criu.tar.xz",
        "--criu-sha256",
        SHA.toUpperCase(),
        "--cache-dir",
        "/var/tmp/c",
        "--timeout",
        "30",
        "--json",
      ],
      "/home/u/lab",
    );
    expect(o).toMatchObject({
      image: "debian",
      name: "ci-1",
      sshPort: 2299,
      memoryMiB: 2048,
      cpus: 1,
      accel: "tcg",
      cacheDir: "/var/tmp/c",
      timeoutMinutes: 30,
      json: true,
      criuTarball: { path: path.resolve("/home/u/lab", "src/criu.tar.xz"), sha256: SHA },
    });
    expect(parseVmArgs(["--destroy", "--name", "x"])).toMatchObject({ destroy: true, name: "x" });
    expect(parseVmArgs([]).hosts).toBe(1);
    expect(parseVmArgs(["--hosts", "2"]).hosts).toBe(2);
    expect(
      parseVmArgs([
        "--image",
        "debian",
        "--debian-release=12",
        "--mirror",
        "http://10.1.2.3:3142/debian",
      ]),
    ).toMatchObject({ debianRelease: "12", mirror: "http://10.1.2.3:3142/debian" });
  });

  it.each([
    [["--image", "fedora"], "--image: 'fedora' is not allowed: use one of ubuntu, debian"],
    [["--accel", "hvf"], "--accel: 'hvf' is not allowed: use one of auto, kvm, tcg"],
    [["--ssh-port", "22"], "--ssh-port: '22' is not allowed: use a whole number 1024-65535"],
    [["--memory", "1g"], "--memory: '1g' is not allowed"],
    [["--cpus", "0"], "--cpus: '0' is not allowed"],
    [["--name", "Bad_Name"], "--name: 'Bad_Name' is not allowed"],
    [["--criu-sha256", "abc"], "--criu-sha256: 'abc' is not allowed: use 64 hex digits"],
    [["--criu-tarball", "x.tar.xz"], "--criu-tarball: needs --criu-sha256 HEX too"],
    [["--criu-sha256", SHA], "--criu-sha256: needs --criu-tarball PATH too"],
    [["--name"], "--name: needs a value"],
    [["--name", "--json"], "--name: needs a value"],
    [["--json=yes"], "--json: takes no value, got 'yes'"],
    [["--bogus"], "unknown option '--bogus'"],
    [["--hosts", "3"], "--hosts: '3' is not allowed: use one of 1, 2"],
    [
      ["--image", "debian", "--debian-release", "11"],
      "--debian-release: '11' is not allowed: use one of 13, 12",
    ],
    [["--debian-release", "12"], "--debian-release: only applies to --image debian"],
    [["--mirror", "http://m.example/debian"], "--mirror: only applies to --image debian"],
    [
      ["--image", "debian", "--mirror", "mirror.example"],
      "--mirror: 'mirror.example' is not a URL",
    ],
    [
      ["--image", "debian", "--mirror", "file:///srv/mirror"],
      "--mirror: 'file:///srv/mirror' is not allowed: use an http:// or https:// URL",
    ],
  ])("rejects %j naming the flag and what is allowed", (argv, message) => {
    expect(() => parseVmArgs(argv)).toThrow(UsageError);
    expect(() => parseVmArgs(argv)).toThrow(message);
  });
});
