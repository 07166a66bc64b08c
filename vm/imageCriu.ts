/**
 * CRIU built in the Debian image's own tree, before the image is packed (`--criu-build
 * image`): the same cloud-init/install-criu.sh the guest runs, with the same pinned source and
 * checks, run in a chroot of the debootstrapped tree at the build host's native speed, by the
 * tree's own toolchain. It leaves its install record (/var/lib/criu-lab/install.json) in the
 * tree; in the guest, cloud-init's run of install-criu.sh finds it, checks it (source,
 * version, binaries, `criu check` on the guest's kernel) and skips the build, or builds as
 * without it. See docs/design.md "Measured here" and docs/local.md.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { CriuSource } from "../cloud-init/userData";
import { run } from "./image";

export const INSTALL_CRIU_SH = path.resolve(__dirname, "..", "cloud-init", "install-criu.sh");

/** Where the installer and a local tarball are staged in the tree while it runs. */
const STAGING = "var/tmp/criu-lab-image";

/** The tree's install record, as install-criu.sh writes it. */
export const INSTALL_RECORD = "var/lib/criu-lab/install.json";

/**
 * install-criu.sh's BUILD_PACKAGES, read from the script itself so that the image's
 * debootstrap installs exactly what the installer would otherwise fetch with apt.
 */
export function criuBuildPackages(script = fs.readFileSync(INSTALL_CRIU_SH, "utf8")): string[] {
  const m = /^readonly BUILD_PACKAGES=\(\n([\s\S]*?)\n\)$/m.exec(script);
  if (!m) throw new Error(`${INSTALL_CRIU_SH}: no 'readonly BUILD_PACKAGES=(...)' array`);
  const names = m[1].split(/\s+/).filter(Boolean);
  const bad = names.find((n) => !/^[a-z0-9][a-z0-9.+-]+$/.test(n));
  if (bad !== undefined) throw new Error(`${INSTALL_CRIU_SH}: '${bad}' is not a package name`);
  return names;
}

/** install-criu.sh's id of a source (its `source_id`): what the guest's run compares. */
export function criuSourceId(source: CriuSource): string {
  return source.kind === "tarball"
    ? `tarball:${source.sha256}`
    : `git:${source.version}@${source.commit}`;
}

/** The image's cache tag for its CRIU: the source's sha256 (or git commit), shortened. */
export function criuCacheTag(source: CriuSource): string {
  return `criu-${(source.kind === "tarball" ? source.sha256 : source.commit).slice(0, 12)}`;
}

/** install-criu.sh's arguments for `source`, a local tarball given as its path in the tree. */
function installArgs(source: CriuSource, tarballInTree: string | undefined): string[] {
  if (source.kind === "git") {
    return [
      "--git",
      source.repository ?? "https://github.com/checkpoint-restore/criu.git",
      "--version",
      source.version,
      "--commit",
      source.commit,
    ];
  }
  return ["--tarball", tarballInTree ?? source.url, "--sha256", source.sha256];
}

/**
 * Runs install-criu.sh in a chroot of `root` with /proc, /sys and /dev mounted (always
 * unmounted after, in reverse order) and returns the install record it wrote. A tarball given
 * as a host path is copied into the tree for the run; the staging directory is removed.
 */
export async function buildCriuInTree(
  root: string,
  source: CriuSource,
  logFile: string,
): Promise<Record<string, unknown>> {
  const staging = path.join(root, STAGING);
  fs.mkdirSync(staging, { recursive: true });
  fs.copyFileSync(INSTALL_CRIU_SH, path.join(staging, "install-criu.sh"));
  let tarballInTree: string | undefined;
  if (source.kind === "tarball" && source.url.startsWith("/")) {
    fs.copyFileSync(source.url, path.join(staging, path.basename(source.url)));
    tarballInTree = `/${STAGING}/${path.basename(source.url)}`;
  }
  const mounted: string[] = [];
  const stuck: string[] = [];
  try {
    for (const [what, args] of [
      ["proc", ["-t", "proc", "proc"]],
      ["sys", ["-t", "sysfs", "sysfs"]],
      ["dev", ["--bind", "/dev"]],
    ] as const) {
      const at = path.join(root, what);
      await run("mount", [...args, at], logFile);
      mounted.push(at);
    }
    await run(
      "chroot",
      [
        root,
        // A clean environment: the host's variables (its PATH, a Node's, LANG) stay out.
        "/usr/bin/env",
        "-i",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        "HOME=/root",
        "/bin/bash",
        `/${STAGING}/install-criu.sh`,
        ...installArgs(source, tarballInTree),
      ],
      logFile,
    );
  } finally {
    for (const at of mounted.reverse()) {
      await run("umount", [at], logFile).catch(() => stuck.push(at));
    }
  }
  // A tree with the host's /proc or /dev still in it must not be packed, nor deleted.
  if (stuck.length > 0) throw new Error(`could not unmount ${stuck.join(", ")}; see ${logFile}`);
  fs.rmSync(staging, { recursive: true, force: true });
  return JSON.parse(fs.readFileSync(path.join(root, INSTALL_RECORD), "utf8")) as Record<
    string,
    unknown
  >;
}
