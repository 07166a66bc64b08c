import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { PROBE_MARKER, probeArgs, probeBootSector } from "../../vm/accel";
import { DEBIAN_KERNEL_APPEND, type BaseImage } from "../../vm/image";
import { installTimings } from "../../vm/lab";
import {
  pairFigures,
  vmEvidence,
  type MigrationReport,
  type PairMigration,
  type PairMode,
} from "../../vm/pair";
import {
  cpuSeconds,
  cpuSecondsFromStat,
  overlayArgs,
  qemuCommand,
  type VmLaunch,
} from "../../vm/qemu";
import { renderMetaData, seedIsoArgs } from "../../vm/seed";
import { GUEST_HOST_ADDRESS, serveFile } from "../../vm/serve";
import { missingTools, missingToolsMessage, requiredTools } from "../../vm/tools";
import { scratchDir } from "./support/scratch";

const launch: VmLaunch = {
  name: "t1",
  accel: "tcg",
  memoryMiB: 2048,
  cpus: 2,
  sshPort: 2299,
  overlay: "/s/disk.qcow2",
  seedIso: "/s/seed/seed.iso",
  serialLog: "/s/serial.log",
  pidFile: "/s/qemu.pid",
  base: { kernel: "/i/vmlinuz", initrd: "/i/initrd.img", append: DEBIAN_KERNEL_APPEND },
};

/** The value that follows `flag` in argv (each flag used once). */
const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];
const allAfter = (argv: string[], flag: string) =>
  argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));

describe("QEMU command line", () => {
  it("forwards SSH on 127.0.0.1 only, daemonizes with a PID file, boots the Debian kernel", () => {
    const argv = qemuCommand(launch, "x64");
    expect(argv[0]).toBe("qemu-system-x86_64");
    expect(after(argv, "-netdev")).toBe("user,id=net0,hostfwd=tcp:127.0.0.1:2299-:22");
    expect(after(argv, "-machine")).toBe("q35,accel=tcg");
    expect(after(argv, "-cpu")).toBe("max");
    expect(after(argv, "-m")).toBe("2048");
    expect(after(argv, "-smp")).toBe("2");
    expect(after(argv, "-serial")).toBe("file:/s/serial.log");
    expect(after(argv, "-pidfile")).toBe("/s/qemu.pid");
    expect(argv).toContain("-daemonize");
    expect(allAfter(argv, "-drive")).toEqual([
      "file=/s/disk.qcow2,format=qcow2,if=virtio",
      "file=/s/seed/seed.iso,format=raw,if=virtio,readonly=on",
    ]);
    expect(after(argv, "-kernel")).toBe("/i/vmlinuz");
    expect(after(argv, "-initrd")).toBe("/i/initrd.img");
    expect(after(argv, "-append")).toBe("root=/dev/vda rw console=ttyS0 net.ifnames=0");
  });

  it("passes the host CPU through under KVM and boots a cloud image from its own disk", () => {
    const argv = qemuCommand({ ...launch, accel: "kvm", base: {} }, "x64");
    expect(after(argv, "-machine")).toBe("q35,accel=kvm");
    expect(after(argv, "-cpu")).toBe("host");
    expect(argv).not.toContain("-kernel");
    expect(argv).not.toContain("-append");
  });

  it("uses the virt machine and UEFI firmware on arm64", () => {
    const argv = qemuCommand({ ...launch, base: {} }, "arm64");
    expect(argv[0]).toBe("qemu-system-aarch64");
    expect(after(argv, "-machine")).toBe("virt,accel=tcg");
    expect(after(argv, "-bios")).toBe("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd");
  });

  it("links two VMs privately (--hosts 2): a second NIC on a socket netdev over 127.0.0.1", () => {
    const argv = qemuCommand(launch, "x64");
    expect(allAfter(argv, "-netdev")).toHaveLength(1);
    const a = qemuCommand(
      { ...launch, link: { role: "listen", port: 40100, mac: "52:54:00:77:00:01" } },
      "x64",
    );
    expect(allAfter(a, "-netdev")).toEqual([
      "user,id=net0,hostfwd=tcp:127.0.0.1:2299-:22",
      "socket,id=net1,listen=127.0.0.1:40100",
    ]);
    expect(allAfter(a, "-device")).toContain("virtio-net-pci,netdev=net1,mac=52:54:00:77:00:01");
    const b = qemuCommand(
      { ...launch, link: { role: "connect", port: 40100, mac: "52:54:00:77:00:02" } },
      "x64",
    );
    expect(allAfter(b, "-netdev")).toContain("socket,id=net1,connect=127.0.0.1:40100");
  });

  it("makes a copy-on-write overlay on the base in the base's own format", () => {
    const raw: BaseImage = { kind: "debian", disk: "/i/disk.raw", format: "raw", cached: true };
    expect(overlayArgs(raw, "/s/disk.qcow2")).toEqual([
      "create",
      "-q",
      "-f",
      "qcow2",
      "-b",
      "/i/disk.raw",
      "-F",
      "raw",
      "/s/disk.qcow2",
    ]);
    const qcow: BaseImage = { kind: "ubuntu", disk: "/i/u.img", format: "qcow2", cached: true };
    expect(overlayArgs(qcow, "/s/d.qcow2", 16).slice(-3)).toEqual(["qcow2", "/s/d.qcow2", "16G"]);
  });
});

describe("a VM that does not answer", () => {
  const dir = scratchDir("criu-lab-evidence");
  const vm = (serialLog: string) => ({
    name: "test-1-d13-b",
    // This test's own PID: a process that is no QEMU of that state directory.
    pid: process.pid,
    sshPort: 2222,
    user: "ubuntu",
    image: "debian-13",
    accel: "tcg" as const,
    stateDir: dir,
    privateKeyPath: "",
    knownHostsPath: "",
    hostKeyPublic: "",
    serialLog,
    startedAt: "",
  });

  it("is described by its QEMU, this host's load and the end of its serial console", () => {
    const log = path.join(dir, "serial.log");
    const lines = Array.from({ length: 30 }, (_, i) => `[ ${i}.0] line ${i}\r`);
    lines.push("[ 30.0] Out of memory: Killed process 812 (sshd-session)\r");
    fs.writeFileSync(log, lines.join("\n") + "\n");
    const said = vmEvidence(vm(log));
    expect(said).toMatch(
      new RegExp(`^VM 'test-1-d13-b': QEMU PID ${process.pid} is gone; load on this host [0-9.]+ `),
    );
    const tail = said.split(`(${log}):\n`)[1].split("\n");
    expect(tail).toHaveLength(15);
    expect(tail[0]).toBe("[ 16.0] line 16");
    expect(tail.at(-1)).toBe("[ 30.0] Out of memory: Killed process 812 (sshd-session)");
  });

  it("says when its console cannot be read", () => {
    expect(vmEvidence(vm(path.join(dir, "missing.log")))).toMatch(/\(unreadable: ENOENT/);
  });
});

describe("acceleration probe", () => {
  it("is a signed boot sector that writes the marker to COM1 and halts", () => {
    const sector = probeBootSector();
    expect(sector.length).toBe(512);
    expect([sector[510], sector[511]]).toEqual([0x55, 0xaa]);
    // mov dx, 0x3f8
    expect([...sector.subarray(0, 3)]).toEqual([0xba, 0xf8, 0x03]);
    // Then `mov al, imm8; out dx, al` per byte: read the immediates back.
    const written: number[] = [];
    for (let i = 3; sector[i] === 0xb0 && sector[i + 2] === 0xee; i += 3)
      written.push(sector[i + 1]);
    expect(Buffer.from(written).toString("ascii")).toBe(`${PROBE_MARKER}\n`);
    const end = 3 + written.length * 3;
    expect([...sector.subarray(end, end + 3)]).toEqual([0xf4, 0xeb, 0xfd]);
    expect(() => probeBootSector("x".repeat(200))).toThrow(/too long/);
  });

  it("boots the sector read-only from a floppy, with the VM's CPU model", () => {
    const argv = probeArgs("kvm", "sector", "/t/p.img", "/t/s.log");
    expect(after(argv, "-machine")).toBe("pc,accel=kvm");
    expect(after(argv, "-cpu")).toBe(
      after(qemuCommand({ ...launch, accel: "kvm" }, "x64"), "-cpu"),
    );
    expect(after(argv, "-drive")).toBe("file=/t/p.img,format=raw,if=floppy,readonly=on");
    expect(after(argv, "-serial")).toBe("file:/t/s.log");
    expect(argv).toContain("-nodefaults");
  });

  it("boots the image's kernel with no root device, so it panics (and QEMU exits) once up", () => {
    const argv = probeArgs("tcg", "kernel", "/i/vmlinuz", "/t/s.log");
    expect(after(argv, "-machine")).toBe(after(qemuCommand(launch, "x64"), "-machine"));
    expect(after(argv, "-cpu")).toBe("max");
    expect(after(argv, "-kernel")).toBe("/i/vmlinuz");
    expect(after(argv, "-append")).toBe("console=ttyS0 panic=-1 root=/dev/criu-lab-probe");
    expect(argv).toContain("-no-reboot");
    expect(argv).not.toContain("-initrd");
  });
});

describe("NoCloud seed", () => {
  it("gives each VM its own instance-id and the lab's hostname", () => {
    expect(renderMetaData("criu-lab-t1-17", "criu-lab")).toBe(
      "instance-id: criu-lab-t1-17\nlocal-hostname: criu-lab\n",
    );
    expect(() => renderMetaData("a b", "criu-lab")).toThrow(/bad instance-id/);
  });

  it("labels the ISO cidata, which is how cloud-init finds a NoCloud seed", () => {
    const argv = seedIsoArgs("/s/seed.iso", "/s", ["user-data", "meta-data"]);
    expect(after(argv, "-volid")).toBe("cidata");
    expect(after(argv, "-output")).toBe("/s/seed.iso");
    expect(argv.slice(-2)).toEqual(["/s/user-data", "/s/meta-data"]);
  });
});

describe("tools", () => {
  it("names each missing tool's Debian/Ubuntu package and one apt command for all", () => {
    const tools = requiredTools("debian", "x64");
    const missing = missingTools(
      tools,
      (cmd) => !["qemu-system-x86_64", "debootstrap"].includes(cmd),
    );
    expect(missing.map((t) => t.pkg)).toEqual(["qemu-system-x86", "debootstrap"]);
    const message = missingToolsMessage(missing);
    expect(message).toContain("qemu-system-x86_64 (package qemu-system-x86)");
    expect(message).toContain(
      "install them with: sudo apt-get install qemu-system-x86 debootstrap",
    );
  });

  it("needs debootstrap only for the Debian image, and firmware on arm64", () => {
    expect(requiredTools("ubuntu", "x64").map((t) => t.command)).not.toContain("debootstrap");
    expect(requiredTools("ubuntu", "arm64").map((t) => t.pkg)).toContain("qemu-efi-aarch64");
    expect(() => requiredTools("ubuntu", "riscv64")).toThrow(/this host is 'riscv64'/);
  });
});

describe("tarball server", () => {
  const dir = scratchDir("vm-serve-test");

  it("serves the one file at the URL the guest gets, and nothing else", async () => {
    const file = path.join(dir, "criu_4.2.1.orig.tar.xz");
    fs.writeFileSync(file, "tarball bytes");
    const server = await serveFile(file);
    try {
      const url = new URL(server.guestUrl);
      expect(url.hostname).toBe(GUEST_HOST_ADDRESS);
      expect(url.pathname).toBe("/criu_4.2.1.orig.tar.xz");
      // The guest's 10.0.2.2 is the host's 127.0.0.1 under QEMU user networking.
      const local = `http://127.0.0.1:${url.port}`;
      const res = await fetch(`${local}${url.pathname}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("tarball bytes");
      expect((await fetch(`${local}/etc/passwd`)).status).toBe(404);
      expect(server.requests[0]).toBe("GET /criu_4.2.1.orig.tar.xz 200");
    } finally {
      await server.close();
    }
  });
});

describe("guest install timings", () => {
  it("reads the apt, build and install times of the last install from install.log", () => {
    const log = [
      "2026-11-26T19:00:00Z --- install-criu tarball:old prefix=/usr/local",
      "2026-11-26T19:00:09Z built in 9 s",
      "2026-11-26T20:05:17Z --- install-criu tarball:29ec prefix=/usr/local",
      "2026-11-26T20:05:23Z installing build dependencies: build-essential pkg-config",
      "Unpacking libprotoc32:amd64 (3.21.12-3+deb12u1) ...",
      "2026-11-26T20:10:37Z downloading http://10.0.2.2:36145/criu_4.2.1.orig.tar.xz",
      "2026-11-26T20:10:43Z building CRIU with 2 jobs (log: /var/log/criu-lab/install.log)",
      "  CC       criu/cr-restore.o",
      "2026-11-26T20:29:34Z built in 1131 s",
      "2026-11-26T20:29:40Z installed CRIU 4.2.1: /usr/local/sbin/criu, /usr/local/bin/crit",
    ].join("\n");
    expect(installTimings(log)).toEqual([
      { name: "CRIU build deps (apt)", ms: 314_000 },
      { name: "CRIU build", ms: 1_131_000 },
      { name: "CRIU install (all)", ms: 1_463_000 },
    ]);
    expect(installTimings("no timestamps here")).toEqual([]);
  });

  it("reads the guest's checks of the image's build when it reused it", () => {
    const log = [
      "2026-11-26T19:00:00Z --- install-criu tarball:29ec prefix=/usr/local",
      "2026-11-26T19:04:14Z built in 254 s",
      "2026-11-26T19:04:20Z installed CRIU 4.2.1: /usr/local/sbin/criu, /usr/local/bin/crit",
      "2026-11-26T20:05:17Z --- install-criu tarball:29ec prefix=/usr/local",
      "2026-11-26T20:05:21Z CRIU 4.2.1 from tarball:29ec is already installed in /usr/local and passes criu check on 6.12.57+deb13-cloud-amd64: nothing to do",
    ].join("\n");
    expect(installTimings(log)).toEqual([{ name: "CRIU reused (checks)", ms: 4_000 }]);
  });
});

describe("QEMU's CPU time", () => {
  it("reads utime + stime from a /proc/PID/stat line, even with spaces in the name", () => {
    // A real line's shape: pid (comm) state ppid ... utime(14) stime(15) ...
    const stat =
      "26127 (qemu-system-x86) S 1 26126 26126 0 -1 4194624 1 0 0 0 47353 1023 0 0 20 0 5 0 1 2 3";
    expect(cpuSecondsFromStat(stat)).toBeCloseTo(483.76);
    expect(cpuSecondsFromStat(stat.replace("(qemu-system-x86)", "(a b) c)"))).toBeCloseTo(483.76);
    expect(() => cpuSecondsFromStat("garbage")).toThrow(/not a \/proc\/PID\/stat line/);
  });

  it("measures a live process and says undefined for a gone one", () => {
    const own = cpuSeconds(process.pid);
    expect(own).toBeGreaterThan(0);
    expect(cpuSeconds(2 ** 22 + 1)).toBeUndefined();
  });
});

describe("the pair's figures against cold migration", () => {
  const row = (mode: PairMode, report: Partial<MigrationReport>): PairMigration => ({
    from: "a",
    to: "b",
    mode,
    exitCode: 0,
    report: { ok: true, ...report },
  });

  it("gives pre-copy's downtime and lazy's resume as ratios of cold's downtime", () => {
    const rows = [
      row("cold", { downtimeMs: 2000 }),
      row("page-server", { downtimeMs: 1800 }),
      row("pre-copy", { downtimeMs: 500, preCopyRounds: [], preCopyStop: "converged" }),
      row("lazy", { downtimeMs: 300, resumeMs: 300, completeMs: 900 }),
    ];
    expect(pairFigures(rows)).toEqual([
      "pre-copy: downtime 500 ms = 0.25x cold's downtime 2000 ms (0 rounds, stopped: converged)",
      "lazy: running there after 300 ms = 0.15x cold's downtime 2000 ms; its last page after 900 ms",
    ]);
  });

  it("leaves out a ratio it has no cold run for, and modes that failed", () => {
    const rows = [
      row("cold", { ok: false }),
      row("pre-copy", { downtimeMs: 500 }),
      row("lazy", { ok: false, resumeMs: 1 }),
    ];
    expect(pairFigures(rows)).toEqual(["pre-copy: downtime 500 ms (0 rounds, stopped: ?)"]);
  });
});
