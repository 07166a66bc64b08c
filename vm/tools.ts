/**
 * The host tools the VM target runs, checked before anything is created, so that a missing
 * one is a clear error naming the Debian/Ubuntu package to install.
 */
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import type { ImageKind } from "./image";

export interface Tool {
  command: string;
  /** The Debian/Ubuntu package that provides it. */
  pkg: string;
  why: string;
}

/** The QEMU system emulator for this host's architecture. */
export function qemuBinary(arch: string = process.arch): Tool {
  switch (arch) {
    case "x64":
      return { command: "qemu-system-x86_64", pkg: "qemu-system-x86", why: "runs the VM" };
    case "arm64":
      return { command: "qemu-system-aarch64", pkg: "qemu-system-arm", why: "runs the VM" };
    default:
      throw new Error(
        `the VM target supports x86_64 and arm64 hosts; this host is '${arch}' (process.arch)`,
      );
  }
}

/** Every tool needed for `image` on this host, in the order they are used. */
export function requiredTools(image: ImageKind, arch: string = process.arch): Tool[] {
  const tools: Tool[] = [
    qemuBinary(arch),
    { command: "qemu-img", pkg: "qemu-utils", why: "makes the copy-on-write overlay" },
    { command: "genisoimage", pkg: "genisoimage", why: "writes the NoCloud seed (cidata ISO)" },
    { command: "ssh-keygen", pkg: "openssh-client", why: "generates the VM's host and user keys" },
  ];
  if (arch === "arm64") {
    tools.push({
      command: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
      pkg: "qemu-efi-aarch64",
      why: "UEFI firmware for arm64 guests",
    });
  }
  if (image === "debian") {
    tools.push(
      { command: "debootstrap", pkg: "debootstrap", why: "builds the Debian image" },
      { command: "mkfs.ext4", pkg: "e2fsprogs", why: "writes the Debian image's file system" },
    );
  }
  return tools;
}

function present(command: string): boolean {
  try {
    // `command -v` finds commands on PATH and also accepts an absolute path to a file.
    execFileSync("sh", ["-c", 'command -v "$1" || test -e "$1"', "sh", command], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
}

/** Tools that are missing, or [] when all are there. */
export function missingTools(tools: Tool[], isPresent = present): Tool[] {
  return tools.filter((t) => !isPresent(t.command));
}

/** One message for all missing tools, with the apt command that installs them. */
export function missingToolsMessage(missing: Tool[]): string {
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  const lines = missing.map((t) => `  ${t.command} (package ${t.pkg}): ${t.why}`);
  return [
    "the VM target needs tools that are not installed:",
    ...lines,
    `install them with: sudo apt-get install ${pkgs.join(" ")}`,
  ].join("\n");
}

/**
 * CRIU's release tarball from scripts/fetch-criu-source.sh (Debian's source archive, checked by
 * its sha256), for `--criu-tarball` where GitHub cannot be reached; or why it could not be had.
 */
export function releaseTarball(): { sha256: string; path: string } | string {
  try {
    const out = execFileSync(
      "bash",
      [path.join(__dirname, "..", "scripts", "fetch-criu-source.sh")],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    const m = /^([0-9a-f]{64}) {2}(\/\S+)$/m.exec(out);
    return m
      ? { sha256: m[1], path: m[2] }
      : `fetch-criu-source.sh printed no '<sha256>  <path>' line: ${out}`;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    return `scripts/fetch-criu-source.sh failed: ${stderr.trim().split("\n").slice(-3).join(" / ")}`;
  }
}
