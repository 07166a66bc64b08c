import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { migrationTable } from "../../vm/pair";
import { formatPhases, main } from "../../vm/cli";
import { destroyLab, runLab, VmError } from "../../vm/lab";
import { parseVmArgs } from "../../vm/options";
import { scratchDir } from "./support/scratch";

const tmp = scratchDir("vm-cli-test");
afterEach(() => vi.restoreAllMocks());

function captureStderr(): () => string {
  const lines: string[] = [];
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
    lines.push(args.join(" "));
  });
  return () => lines.join("\n");
}

describe("criu-lab vm CLI", () => {
  it("exits 2 on a bad flag, naming it and what is allowed", async () => {
    const stderr = captureStderr();
    expect(await main(["--image", "fedora"])).toBe(2);
    expect(stderr()).toContain("--image: 'fedora' is not allowed: use one of ubuntu, debian");
  });

  it("prints its usage with --help", async () => {
    const out: string[] = [];
    vi.spyOn(console, "log").mockImplementation((text: string) => out.push(text));
    expect(await main(["--help"])).toBe(0);
    expect(out.join("\n")).toMatch(/--destroy +stop the VM \(by its recorded PID\)/);
  });

  it("--destroy of a VM that does not exist says so and exits 0", async () => {
    const stderr = captureStderr();
    expect(await main(["--destroy", "--name", "nothing", "--cache-dir", tmp])).toBe(0);
    expect(stderr()).toMatch(/no VM named 'nothing'/);
  });

  it("prints phase times aligned, with notes", () => {
    expect(
      formatPhases([
        { name: "image", ms: 1500, note: "cached" },
        { name: "cloud-init", ms: 612_340 },
      ]),
    ).toBe("  image           1.5 s  (cached)\n  cloud-init    612.3 s");
  });
});

describe("destroying a VM", () => {
  it("never signals a recorded PID that is not this VM's QEMU, and removes the state", async () => {
    // A process of ours standing in for a PID reused after the VM died.
    const bystander = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      const stateDir = path.join(tmp, "vms", "stale");
      fs.mkdirSync(stateDir, { recursive: true });
      fs.writeFileSync(
        path.join(stateDir, "state.json"),
        JSON.stringify({ name: "stale", pid: bystander.pid, stateDir }),
      );
      expect(await destroyLab(tmp, "stale")).toBe(
        `VM 'stale' was not running; removed ${stateDir}`,
      );
      expect(fs.existsSync(stateDir)).toBe(false);
      expect(bystander.exitCode).toBeNull();
      expect(bystander.signalCode).toBeNull();
    } finally {
      bystander.kill();
    }
  });
});

describe("before anything is created", () => {
  it("a missing tool is an error naming its package, and nothing is written", async () => {
    const cacheDir = path.join(tmp, "never-created");
    const empty = fs.mkdtempSync(path.join(tmp, "empty-path-"));
    vi.stubEnv("PATH", empty);
    try {
      const err = await runLab(parseVmArgs(["--cache-dir", cacheDir]), () => {}).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(VmError);
      expect((err as VmError).exitCode).toBe(3);
      expect((err as VmError).message).toContain("qemu-img (package qemu-utils)");
      expect((err as VmError).message).toMatch(/sudo apt-get install qemu-system-\S+ qemu-utils/);
    } finally {
      vi.unstubAllEnvs();
    }
    expect(fs.existsSync(cacheDir)).toBe(false);
  });

  it("building the Debian image without root is refused up front, saying why", async () => {
    const cacheDir = path.join(tmp, "never-created-3");
    vi.spyOn(process, "getuid").mockReturnValue(1000);
    const err = await runLab(
      parseVmArgs(["--image", "debian", "--cache-dir", cacheDir]),
      () => {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmError);
    const message = (err as VmError).message;
    // Without the VM tools installed the tool check speaks first; either way: nothing made.
    if (!message.includes("needs tools")) {
      expect(message).toContain(
        "--image debian builds its image with debootstrap, which needs root",
      );
    }
    expect(fs.existsSync(cacheDir)).toBe(false);
  });

  it("a tarball whose sha256 differs from --criu-sha256 is refused before boot", async () => {
    const cacheDir = path.join(tmp, "never-created-2");
    const file = path.join(tmp, "criu.tar.xz");
    fs.writeFileSync(file, "not the release");
    const opts = parseVmArgs([
      "--cache-dir",
      cacheDir,
      "--criu-tarball",
      file,
      "--criu-sha256",
      "0".repeat(64),
    ]);
    const err = await runLab(opts, () => {}).catch((e: unknown) => e);
    // On a machine without the VM tools the tool check speaks first; either way: nothing made.
    expect(err).toBeInstanceOf(VmError);
    const message = (err as VmError).message;
    if (!message.includes("needs tools")) {
      expect(message).toMatch(
        /--criu-sha256: '.*criu\.tar\.xz' has sha256 [0-9a-f]{64}, not the 0{64} given/,
      );
      expect((err as VmError).exitCode).toBe(2);
    }
    expect(fs.existsSync(cacheDir)).toBe(false);
  });
});

describe("the two-host migration table (--hosts 2)", () => {
  it("shows each migration's mode, direction, result and the parts of its downtime", () => {
    const table = migrationTable([
      {
        from: "a",
        to: "b",
        mode: "pre-copy",
        exitCode: 0,
        report: {
          ok: true,
          pid: 812,
          restoredPid: 812,
          lastBeforeDump: 41,
          firstAfterRestore: 42,
          downtimeMs: 1234.5,
          freezeMs: 300,
          transferMs: 400.2,
          restoreMs: 534,
          bytesTransferred: 3 * 2 ** 20,
        },
      },
      { from: "b", to: "a", mode: "lazy", exitCode: 2, report: { ok: false, error: "no" } },
    ]).split("\n");
    expect(lines(table[0])).toEqual([
      "mode",
      "from->to",
      "result",
      "downtime",
      "freeze",
      "transfer",
      "restore",
      "sent",
    ]);
    expect(table[1]).toMatch(
      /^pre-copy +a->b +ok, PID 812, 41 -> 42 +1235 ms +300 ms +400 ms +534 ms +3\.0 MiB$/,
    );
    expect(table[2]).toMatch(/^lazy +b->a +FAILED \(exit 2\) +- +- +- +- +-$/);
  });
});

/** A table row's cells (two or more spaces apart). */
const lines = (row: string) => row.split(/ {2,}/);
