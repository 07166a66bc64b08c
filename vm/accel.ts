/**
 * Chooses KVM or TCG by booting a guest, not by looking at /dev/kvm: on some hosts (this
 * project's own CI among them) /dev/kvm exists and a VM can be created, but a guest never
 * runs under it. Measured here: a real-mode boot sector runs under KVM, but
 * `-cpu host` aborts ("failed to set MSR 0x10a") and a Linux kernel with another CPU model
 * prints nothing in 60 s. So the probe boots what the VM will boot, the same way: the image's
 * own kernel, with the VM's machine and CPU model, until it gets as far as mounting the root
 * file system (about 2 s under TCG). Where there is no kernel to boot (the Ubuntu image boots
 * from its disk), a boot sector that writes a marker to the serial port stands in, still
 * with the VM's CPU model. The verdict is cached per boot of the host.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { AccelChoice } from "./options";
import { qemuBinary } from "./tools";

export type Accel = "kvm" | "tcg";

/** What the probe boot sector prints on COM1. */
export const PROBE_MARKER = "CRIU-LAB-PROBE-OK";

/**
 * What a kernel booted with no root device prints once its whole initialisation is done
 * (init/do_mounts.c), just before the panic that ends the probe.
 */
export const KERNEL_PROBE_MARKER = "VFS: Unable to mount root fs";

export type ProbeGuest = { kind: "kernel"; kernel: string } | { kind: "sector"; sector: Buffer };

/**
 * An x86 real-mode boot sector: `mov dx,0x3f8` then, per marker byte, `mov al,B; out dx,al`;
 * then `hlt; jmp $-1`, padded to 510 bytes and signed 0x55AA.
 */
export function probeBootSector(marker = PROBE_MARKER): Buffer {
  const code: number[] = [0xba, 0xf8, 0x03];
  for (const byte of Buffer.from(`${marker}\n`, "ascii")) code.push(0xb0, byte, 0xee);
  code.push(0xf4, 0xeb, 0xfd);
  if (code.length > 510) throw new Error(`probe marker too long (${marker.length} bytes)`);
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** The CPU model the VM uses under `accel` (qemu.ts), which the probe must use too. */
export function cpuModel(accel: Accel): string {
  // KVM passes the host CPU through; under TCG "max" emulates every feature QEMU can.
  return accel === "kvm" ? "host" : "max";
}

/**
 * The argv that boots a probe under `accel`, serial output to `serialLog`. `guestFile` is the
 * kernel, or the boot sector written to a file. -no-reboot makes the kernel's panic end QEMU.
 */
export function probeArgs(
  accel: Accel,
  probe: ProbeGuest["kind"],
  guestFile: string,
  serialLog: string,
): string[] {
  const common = ["-cpu", cpuModel(accel), "-nodefaults", "-display", "none", "-no-reboot"];
  const serial = ["-serial", `file:${serialLog}`];
  if (probe === "kernel") {
    return [
      ...["-machine", `q35,accel=${accel}`, ...common, "-m", "256", ...serial],
      ...["-kernel", guestFile, "-append", "console=ttyS0 panic=-1 root=/dev/criu-lab-probe"],
    ];
  }
  // The i440fx machine, for its floppy controller: SeaBIOS boots the sector from it read-only.
  return [
    ...["-machine", `pc,accel=${accel}`, ...common, "-m", "16", ...serial],
    ...["-drive", `file=${guestFile},format=raw,if=floppy,readonly=on`],
  ];
}

/** Whether the probe booted under `accel` (see probe()). */
export async function probeBoots(
  accel: Accel,
  timeoutMs: number,
  probe: ProbeGuest = { kind: "sector", sector: probeBootSector() },
): Promise<boolean> {
  return (await runProbe(accel, timeoutMs, probe)).ok;
}

/**
 * Boots the probe under `accel`; ok when its marker appears on the serial port within
 * `timeoutMs`, else why not (QEMU's last error line, or the timeout). The QEMU process is
 * always ended, by its PID.
 */
export async function runProbe(
  accel: Accel,
  timeoutMs: number,
  probe: ProbeGuest,
): Promise<{ ok: boolean; why: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "criu-lab-accel-"));
  const serial = path.join(dir, "serial.log");
  let guestFile: string;
  if (probe.kind === "kernel") {
    guestFile = probe.kernel;
  } else {
    guestFile = path.join(dir, "probe.img");
    fs.writeFileSync(guestFile, probe.sector);
  }
  const marker = probe.kind === "kernel" ? KERNEL_PROBE_MARKER : PROBE_MARKER;
  const child = spawn(qemuBinary("x64").command, probeArgs(accel, probe.kind, guestFile, serial), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    const done = () => {
      exited = true;
      resolve();
    };
    child.on("exit", done);
    child.on("error", done);
  });
  const seen = () => fs.existsSync(serial) && fs.readFileSync(serial, "latin1").includes(marker);
  const deadline = Date.now() + timeoutMs;
  let ok = false;
  try {
    while (!exited && Date.now() < deadline) {
      if (seen()) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // The kernel probe ends QEMU itself (panic, -no-reboot), so read the log after the loop.
    ok = seen();
  } finally {
    if (!exited && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    await exit;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const error = stderr
    .split("\n")
    .find((line) => /error/i.test(line))
    ?.trim();
  const why = ok
    ? "booted"
    : (error ??
      (exited
        ? "QEMU exited before the guest got there"
        : `no sign of it within ${timeoutMs / 1000} s`));
  return { ok, why };
}

interface CachedVerdict {
  bootId: string;
  accel: Accel;
  reason: string;
  probe: ProbeGuest["kind"] | "none";
}

function bootId(): string {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "";
  }
}

export interface AccelDecision {
  accel: Accel;
  /** Why: shown to the user, a warning when it is TCG. */
  reason: string;
  cached: boolean;
}

/** How long a probe may take under KVM before KVM counts as not running guests. */
const KVM_PROBE_TIMEOUT_MS = 20_000;

/**
 * Resolves `--accel`. `auto` boots the probe under KVM (x86_64 hosts with /dev/kvm) and falls
 * back to TCG; the verdict is cached in `cacheDir` for this boot of the host. A cached verdict
 * from the boot-sector probe does not stand in for a kernel probe. `kvm` is honoured only when
 * the probe passes, since a guest that never boots would otherwise look like a hang.
 */
export async function chooseAccel(
  choice: AccelChoice,
  cacheDir: string,
  kernel?: string,
  arch: string = process.arch,
): Promise<AccelDecision> {
  if (choice === "tcg") return { accel: "tcg", reason: "--accel tcg", cached: false };
  const cacheFile = path.join(cacheDir, "accel.json");
  const id = bootId();
  const probe: ProbeGuest =
    kernel !== undefined
      ? { kind: "kernel", kernel }
      : { kind: "sector", sector: probeBootSector() };
  if (id !== "") {
    try {
      const cached = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as CachedVerdict;
      const strongEnough = cached.probe !== "sector" || probe.kind === "sector";
      if (cached.bootId === id && strongEnough && (choice === "auto" || cached.accel === "kvm")) {
        return { accel: cached.accel, reason: cached.reason, cached: true };
      }
    } catch {
      // no verdict yet for this boot
    }
  }
  let verdict: CachedVerdict;
  const what = probe.kind === "kernel" ? "the image's kernel" : "a probe boot sector";
  if (arch !== "x64") {
    // The probes are x86 guests; elsewhere trust /dev/kvm's presence alone.
    verdict = fs.existsSync("/dev/kvm")
      ? { bootId: id, accel: "kvm", reason: "/dev/kvm present (x86_64-only probe)", probe: "none" }
      : { bootId: id, accel: "tcg", reason: "no /dev/kvm", probe: "none" };
  } else if (!fs.existsSync("/dev/kvm")) {
    verdict = { bootId: id, accel: "tcg", reason: "no /dev/kvm on this host", probe: "none" };
  } else {
    const result = await runProbe("kvm", KVM_PROBE_TIMEOUT_MS, probe);
    verdict = result.ok
      ? { bootId: id, accel: "kvm", reason: `${what} booted under KVM`, probe: probe.kind }
      : {
          bootId: id,
          accel: "tcg",
          reason: `/dev/kvm exists but ${what} did not boot under it (${result.why})`,
          probe: probe.kind,
        };
  }
  if (choice === "kvm" && verdict.accel !== "kvm") {
    throw new Error(
      `--accel kvm: KVM cannot run a guest here (${verdict.reason}); use --accel auto or tcg`,
    );
  }
  fs.mkdirSync(cacheDir, { recursive: true });
  fs.writeFileSync(cacheFile, `${JSON.stringify(verdict)}\n`);
  return { accel: verdict.accel, reason: verdict.reason, cached: false };
}
