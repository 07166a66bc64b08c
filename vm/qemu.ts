/**
 * The QEMU side of the VM: the command line (pure, unit-tested), the copy-on-write overlay,
 * starting QEMU as a daemon that records its PID, waiting for sshd, and stopping it by PID.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import { cpuModel, type Accel } from "./accel";
import type { BaseImage } from "./image";
import { qemuBinary } from "./tools";

export interface VmLaunch {
  name: string;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  sshPort: number;
  overlay: string;
  seedIso: string;
  serialLog: string;
  pidFile: string;
  base: Pick<BaseImage, "kernel" | "initrd" | "append">;
  /** A second NIC on a private link to another VM (`--hosts 2`): QEMU's socket netdev, one VM
   * listening on a 127.0.0.1 port and the other connecting to it; nothing else is on it. */
  link?: { role: "listen" | "connect"; port: number; mac: string };
}

/** UEFI firmware for arm64 guests (Debian/Ubuntu package qemu-efi-aarch64). */
export const AARCH64_FIRMWARE = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

/** The full QEMU command line: [binary, ...args]. */
export function qemuCommand(vm: VmLaunch, arch: string = process.arch): string[] {
  const binary = qemuBinary(arch).command;
  const cpu = cpuModel(vm.accel);
  const machine = arch === "arm64" ? `virt,accel=${vm.accel}` : `q35,accel=${vm.accel}`;
  const args = [
    "-name",
    `criu-lab-${vm.name}`,
    "-machine",
    machine,
    "-cpu",
    cpu,
    "-smp",
    String(vm.cpus),
    "-m",
    String(vm.memoryMiB),
    "-nodefaults",
    "-display",
    "none",
    "-serial",
    `file:${vm.serialLog}`,
    "-drive",
    `file=${vm.overlay},format=qcow2,if=virtio`,
    "-drive",
    `file=${vm.seedIso},format=raw,if=virtio,readonly=on`,
    // User networking: no privileges, and the guest's sshd is reachable only through this
    // forward on the host's loopback: no other machine can reach it.
    "-netdev",
    `user,id=net0,hostfwd=tcp:127.0.0.1:${vm.sshPort}-:22`,
    "-device",
    "virtio-net-pci,netdev=net0",
    ...(vm.link === undefined
      ? []
      : [
          "-netdev",
          `socket,id=net1,${vm.link.role}=127.0.0.1:${vm.link.port}`,
          "-device",
          `virtio-net-pci,netdev=net1,mac=${vm.link.mac}`,
        ]),
    // Entropy for the guest's first boot (sshd, Python's hash seeds) without waiting.
    "-device",
    "virtio-rng-pci",
    "-daemonize",
    "-pidfile",
    vm.pidFile,
  ];
  if (arch === "arm64") args.push("-bios", AARCH64_FIRMWARE);
  if (vm.base.kernel !== undefined) {
    args.push("-kernel", vm.base.kernel);
    if (vm.base.initrd !== undefined) args.push("-initrd", vm.base.initrd);
    if (vm.base.append !== undefined) args.push("-append", vm.base.append);
  }
  return [binary, ...args];
}

/** `qemu-img create` argv for an overlay backed by `base` (left untouched: copy-on-write). */
export function overlayArgs(
  base: Pick<BaseImage, "disk" | "format">,
  overlay: string,
  sizeGiB?: number,
): string[] {
  return [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-b",
    base.disk,
    "-F",
    base.format,
    overlay,
    ...(sizeGiB === undefined ? [] : [`${sizeGiB}G`]),
  ];
}

/** A free TCP port on 127.0.0.1, from the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("could not read the free port"));
      });
    });
  });
}

/**
 * Starts QEMU. With -daemonize, QEMU returns once the VM runs (or fails to start, with its
 * error on stderr), and the PID file names the VM process.
 */
export function startQemu(vm: VmLaunch): number {
  const [binary, ...args] = qemuCommand(vm);
  try {
    execFileSync(binary, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`QEMU did not start: ${stderr || (err as Error).message}`);
  }
  const pid = Number(fs.readFileSync(vm.pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`bad PID file ${vm.pidFile}`);
  return pid;
}

/** Whether `pid` is a running QEMU of this VM (its command line names `marker`). */
export function isOurQemu(pid: number, marker: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmdline.some((a) => a.includes(marker)) && cmdline[0]?.includes("qemu-system") === true;
  } catch {
    return false;
  }
}

/**
 * Stops the VM by PID: SIGTERM (QEMU exits at once), then SIGKILL if it lingers. `marker`
 * (its state directory) guards against a PID reused by another process since it was recorded.
 * Returns false when no such VM process was running.
 */
export async function stopQemu(pid: number, marker: string): Promise<boolean> {
  if (!isOurQemu(pid, marker)) return false;
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && isOurQemu(pid, marker); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (isOurQemu(pid, marker)) process.kill(pid, "SIGKILL");
  return true;
}

/** Reads the first bytes a server sends on `port` (sshd: "SSH-2.0-..."). */
function banner(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let data = "";
    const done = () => {
      socket.destroy();
      resolve(data);
    };
    socket.setTimeout(timeoutMs, done);
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1");
      if (data.includes("\n")) done();
    });
    socket.on("error", done);
    socket.on("close", done);
  });
}

/**
 * Waits until the guest's sshd answers through the forward. QEMU accepts the host-side
 * connection itself and drops it while nothing listens in the guest, so only a banner counts.
 * Fails early when QEMU exits (its serial log then says why).
 */
export async function waitForSsh(
  port: number,
  alive: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error("the VM stopped before its sshd answered");
    if ((await banner(port, 5_000)).startsWith("SSH-")) return;
    await new Promise((r) => setTimeout(r, 2_000));
  }
  throw new Error(`the VM's sshd did not answer on 127.0.0.1:${port} within ${timeoutMs / 1000} s`);
}

/**
 * CPU seconds (user + system) a process has used, from the `/proc/PID/stat` line: on a host
 * that other work shares, the guest's phases are compared by what QEMU got to run, not only by
 * the wall clock. Fields 14 and 15 after the `(comm)`, in clock ticks (100 a second
 * on Linux).
 */
export function cpuSecondsFromStat(stat: string, ticksPerSecond = 100): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`not a /proc/PID/stat line: ${stat.slice(0, 80)}`);
  }
  return (utime + stime) / ticksPerSecond;
}

/** CPU seconds `pid` has used so far, or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    return cpuSecondsFromStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}
