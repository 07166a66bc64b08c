/**
 * Base images for the VM, cached under `<cacheDir>/images` and never written to (each VM runs
 * on a copy-on-write overlay):
 * - `ubuntu`: the official Ubuntu 24.04 cloud image for the host's architecture, checked
 *   against Canonical's published SHA256SUMS.
 * - `debian`: Debian 13 (or 12) built here with debootstrap from Debian's packages, from the
 *   host's own mirror (./mirror), booted with the kernel and initrd of its own tree (a bare
 *   ext4 file system, no boot loader; DEBIAN_RELEASES says why 13 is the default).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { CriuSource } from "../cloud-init/userData";
import { buildCriuInTree, criuBuildPackages, criuCacheTag, criuSourceId } from "./imageCriu";
import { guestSourcesList, type DebianMirrors } from "./mirror";

/** The base image: the official Ubuntu cloud image, or Debian built with debootstrap. */
export type ImageKind = "ubuntu" | "debian";

export interface BaseImage {
  kind: ImageKind;
  /** The disk the overlay is backed by. */
  disk: string;
  format: "raw" | "qcow2";
  /** Direct kernel boot (Debian image); the Ubuntu image boots from its own disk. */
  kernel?: string;
  initrd?: string;
  /** Kernel command line for direct boot. */
  append?: string;
  /** Whether the image came from the cache (false: built or downloaded now). */
  cached: boolean;
  /** The build's own steps, when it was built now. */
  phases?: Array<{ name: string; ms: number }>;
}

// ---------------------------------------------------------------------------------------
// Ubuntu cloud image

/** Canonical's release directory for Ubuntu 24.04 cloud images. */
export const UBUNTU_RELEASE_URL = "https://cloud-images.ubuntu.com/releases/24.04/release";

/** Canonical's name for the host's architecture in image file names. */
export function ubuntuArch(arch: string = process.arch): "amd64" | "arm64" {
  if (arch === "x64") return "amd64";
  if (arch === "arm64") return "arm64";
  throw new Error(`no Ubuntu cloud image for host architecture '${arch}' (x64 or arm64 only)`);
}

export function ubuntuImageName(arch: string = process.arch): string {
  return `ubuntu-24.04-server-cloudimg-${ubuntuArch(arch)}.img`;
}

/**
 * Parses a SHA256SUMS file (`<64 hex> *<name>` or `<64 hex>  <name>` per line, as
 * sha256sum writes in binary or text mode) into name -> lowercase hex. Throws on a line that
 * is neither, so a truncated or HTML error page is not mistaken for a list of sums.
 */
export function parseSha256Sums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") return;
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (!m) {
      throw new Error(
        `SHA256SUMS line ${i + 1} is not '<sha256> *<file>': ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    sums.set(m[2], m[1].toLowerCase());
  });
  if (sums.size === 0) throw new Error("SHA256SUMS is empty");
  return sums;
}

/** The expected sum of `name`, or a clear error when the list does not have it. */
export function expectedSum(sums: Map<string, string>, name: string): string {
  const sum = sums.get(name);
  if (sum === undefined) {
    throw new Error(
      `SHA256SUMS has no entry for ${name} (it lists ${[...sums.keys()].slice(0, 5).join(", ")}${sums.size > 5 ? ", ..." : ""})`,
    );
  }
  return sum;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest("hex");
}

/** Throws unless `file` hashes to `expected`, naming both sums. */
export async function verifySha256(file: string, expected: string): Promise<void> {
  const actual = await sha256File(file);
  if (actual !== expected.toLowerCase()) {
    throw new Error(
      `${path.basename(file)}: sha256 ${actual} does not match the expected ${expected}`,
    );
  }
}

async function download(url: string, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : "";
    throw new Error(
      `could not download ${what} from ${url}: ${err instanceof Error ? err.message : String(err)}` +
        `${cause ? ` (${cause})` : ""}. --image ubuntu needs internet access to ` +
        `cloud-images.ubuntu.com; without it use --image debian (built locally from Debian's packages)`,
    );
  }
  if (!res.ok || !res.body) {
    throw new Error(`could not download ${what} from ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  return res;
}

/**
 * The Ubuntu 24.04 cloud image: from the cache when its recorded sum still matches, else
 * downloaded to a temporary file, checked against SHA256SUMS, then moved into place.
 */
export async function ubuntuImage(
  cacheDir: string,
  log: (line: string) => void,
  baseUrl = UBUNTU_RELEASE_URL,
): Promise<BaseImage> {
  const dir = path.join(cacheDir, "images");
  const name = ubuntuImageName();
  const disk = path.join(dir, name);
  const sumFile = `${disk}.sha256`;
  const image: BaseImage = { kind: "ubuntu", disk, format: "qcow2", cached: true };
  if (fs.existsSync(disk) && fs.existsSync(sumFile)) {
    await verifySha256(disk, fs.readFileSync(sumFile, "utf8").trim());
    return image;
  }
  fs.mkdirSync(dir, { recursive: true });
  const sumsText = await (await download(`${baseUrl}/SHA256SUMS`, "SHA256SUMS")).text();
  const expected = expectedSum(parseSha256Sums(sumsText), name);
  log(`downloading ${baseUrl}/${name}`);
  const partial = `${disk}.part-${process.pid}`;
  try {
    const res = await download(`${baseUrl}/${name}`, name);
    await pipeline(Readable.fromWeb(res.body as never), fs.createWriteStream(partial));
    await verifySha256(partial, expected);
    fs.renameSync(partial, disk);
  } finally {
    fs.rmSync(partial, { force: true });
  }
  fs.writeFileSync(sumFile, `${expected}\n`);
  return { ...image, cached: false };
}

// ---------------------------------------------------------------------------------------
// Debian image built with debootstrap

export type DebianRelease = "12" | "13";

/**
 * The Debian releases the image can be: 13 (trixie: kernel 6.12, gcc 14, Python 3.13, glibc
 * 2.41, cloud-init 25) is the default because it is the nearest to Ubuntu 24.04 on EC2 that
 * Debian's archive serves; 12 (bookworm) stays selectable.
 */
export const DEBIAN_RELEASES: Record<DebianRelease, { suite: string; dhcpClient: string }> = {
  "12": { suite: "bookworm", dhcpClient: "isc-dhcp-client" },
  // trixie's ifupdown recommends dhcpcd-base (ISC's dhclient is end-of-life upstream).
  "13": { suite: "trixie", dhcpClient: "dhcpcd-base" },
};
export const DEFAULT_DEBIAN_RELEASE: DebianRelease = "13";

/** Hostname baked into /etc/hosts and the seed's meta-data (sudo warns without it). */
export const GUEST_HOSTNAME = "criu-lab";

/**
 * What a minbase debootstrap needs to be a cloud image: python3-cffi-backend or
 * cloud-init's dependencies fail to configure; locales or cloud-init's locale module fails;
 * a DHCP client for ifupdown, which cloud-init renders the NIC's config for; curl and
 * ca-certificates as on Ubuntu's cloud image, for the lab's downloads. (debootstrap installs
 * no Recommends.)
 */
export function debianPackages(
  release: DebianRelease = DEFAULT_DEBIAN_RELEASE,
  arch: string = process.arch,
): string[] {
  return [
    "systemd-sysv",
    "udev",
    "cloud-init",
    "openssh-server",
    `linux-image-cloud-${ubuntuArch(arch)}`,
    "ifupdown",
    DEBIAN_RELEASES[release].dhcpClient,
    "sudo",
    "python3",
    "python3-cffi-backend",
    "locales",
    "curl",
    "ca-certificates",
    // cloud-init's resizefs runs resize2fs: without it cloud-init ends in "status: error".
    // trixie's minbase no longer carries e2fsprogs (found by a Debian 13 run of the VM tier).
    "e2fsprogs",
  ];
}

/** Bumped when the recipe below changes, so that a cached image from an older one is rebuilt. */
export const DEBIAN_RECIPE_VERSION = 6;

/** Size of the ext4 file system (sparse file): room for CRIU's build deps and build. */
export const DEBIAN_DISK_GIB = 8;

/** Files written into the debootstrapped tree, relative to its root. */
export function debianImageFiles(
  release: DebianRelease,
  mirrors: DebianMirrors,
): Record<string, string> {
  return {
    "etc/hostname": `${GUEST_HOSTNAME}\n`,
    // cloud-init's locale module sets LANG=en_US.UTF-8 but on Debian runs a bare `locale-gen`,
    // which builds only what locale.gen lists; without it `cloud-init status` says error.
    "etc/locale.gen": "en_US.UTF-8 UTF-8\n",
    "etc/default/locale": "LANG=en_US.UTF-8\n",
    "etc/hosts": `127.0.0.1\tlocalhost\n127.0.1.1\t${GUEST_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    "etc/fstab": "/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n",
    // cloud-init renders the NIC's DHCP config into interfaces.d (net.ifnames=0: eth0).
    "etc/network/interfaces":
      "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n",
    // Only NoCloud: skip probing cloud metadata services a local VM does not have; keep the
    // hostname from meta-data in /etc/hosts on every boot.
    "etc/cloud/cloud.cfg.d/10_criu-lab-vm.cfg":
      "datasource_list: [NoCloud, None]\nmanage_etc_hosts: true\n",
    // The host's mirrors (./mirror), as the guest reaches them.
    "etc/apt/sources.list": guestSourcesList(DEBIAN_RELEASES[release].suite, mirrors),
  };
}

export const DEBIAN_KERNEL_APPEND = "root=/dev/vda rw console=ttyS0 net.ifnames=0";

interface DebianManifest {
  recipe: number;
  release: DebianRelease;
  suite: string;
  mirror: string;
  /** The guest's apt sources, as written into the image. */
  sources: string;
  packages: string[];
  kernel: string;
  initrd: string;
  builtAt: string;
  buildSeconds: number;
  /** The install record of CRIU built in the tree (./imageCriu), when it was. */
  criu?: { sourceId?: string } & Record<string, unknown>;
}

/** Runs a command with its output appended to `logFile`; rejects naming the log on failure. */
export function run(command: string, args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(logFile, "a");
    fs.writeSync(out, `\n$ ${command} ${args.join(" ")}\n`);
    const child = spawn(command, args, { stdio: ["ignore", out, out] });
    child.on("error", (err) => {
      fs.closeSync(out);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.on("exit", (code, signal) => {
      fs.closeSync(out);
      if (code === 0) resolve();
      else {
        reject(
          new Error(`${command} failed (${signal ?? `exit ${code}`}); see its log: ${logFile}`),
        );
      }
    });
  });
}

/** The newest `prefix-*` file in `dir` (vmlinuz-6.1.0-..., initrd.img-6.1.0-...). */
function newest(dir: string, prefix: string): string {
  const found = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(prefix))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const last = found.at(-1);
  if (last === undefined) throw new Error(`no ${prefix}* in ${dir}: the kernel did not install`);
  return path.join(dir, last);
}

/** What a Debian image is built from: the release, the mirrors (./mirror), and the CRIU
 * source to build in its tree (./imageCriu), if any. */
export interface DebianSpec {
  release: DebianRelease;
  mirrors: DebianMirrors;
  criu?: CriuSource;
}

/** Where a Debian image lives in the cache: `debian-13-amd64`, or with CRIU built in it
 * `debian-13-amd64-criu-<sha256 of its source, shortened>` (a new source is a new image). */
export function debianImageDir(
  cacheDir: string,
  release: DebianRelease,
  criu?: CriuSource,
): string {
  const tag = criu ? `-${criuCacheTag(criu)}` : "";
  return path.join(cacheDir, "images", `debian-${release}-${ubuntuArch()}${tag}`);
}

function debianImageAt(dir: string, cached: boolean): BaseImage {
  return {
    kind: "debian",
    disk: path.join(dir, "disk.raw"),
    format: "raw",
    kernel: path.join(dir, "vmlinuz"),
    initrd: path.join(dir, "initrd.img"),
    append: DEBIAN_KERNEL_APPEND,
    cached,
  };
}

/** What debootstrap installs for `spec`: with CRIU built in the tree, its build dependencies
 * too (install-criu.sh's list, which the guest's reuse of that build never installs). */
export function imagePackages(spec: Pick<DebianSpec, "release" | "criu">): string[] {
  return [...new Set([...debianPackages(spec.release), ...(spec.criu ? criuBuildPackages() : [])])];
}

/** Why the cached image for `spec` cannot be used (not built, an older recipe, another
 * mirror in its apt sources), or undefined when it can. */
export function debianCacheMiss(cacheDir: string, spec: DebianSpec): string | undefined {
  const dir = debianImageDir(cacheDir, spec.release, spec.criu);
  const image = debianImageAt(dir, true);
  let manifest: DebianManifest;
  try {
    manifest = JSON.parse(
      fs.readFileSync(path.join(dir, "manifest.json"), "utf8"),
    ) as DebianManifest;
  } catch {
    return "not built yet";
  }
  if (manifest.recipe !== DEBIAN_RECIPE_VERSION) {
    return `built by recipe ${manifest.recipe}, this is recipe ${DEBIAN_RECIPE_VERSION}`;
  }
  const sources = guestSourcesList(DEBIAN_RELEASES[spec.release].suite, spec.mirrors);
  if (manifest.sources !== sources) return "its apt sources name another mirror";
  if (JSON.stringify(manifest.packages) !== JSON.stringify(imagePackages(spec))) {
    return "it was built with another package list";
  }
  if (spec.criu && manifest.criu?.sourceId !== criuSourceId(spec.criu)) {
    return `its CRIU is from ${manifest.criu?.sourceId ?? "nowhere"}, not ${criuSourceId(spec.criu)}`;
  }
  const missing = [image.disk, image.kernel ?? "", image.initrd ?? ""].find(
    (f) => !fs.existsSync(f),
  );
  return missing === undefined ? undefined : `${missing} is missing`;
}

/** Why this process cannot build the Debian image, or undefined when it can. */
export function debianBuildProblem(): string | undefined {
  return process.getuid?.() === 0
    ? undefined
    : "--image debian builds its image with debootstrap, which needs root: run as root (sudo), or use --image ubuntu";
}

/**
 * The Debian image: from the cache when this recipe built it with these mirrors, else built
 * with debootstrap (as root) from the mirror, its tree written into an ext4 image with
 * `mkfs.ext4 -d`, the kernel and initrd copied beside it. Built in a temporary directory and
 * renamed into place, so an interrupted build never looks cached; its log stays in
 * `<cacheDir>/images`. Each build step is timed (`phases`).
 */
export async function debianImage(
  cacheDir: string,
  spec: DebianSpec,
  log: (line: string) => void,
): Promise<BaseImage> {
  const { release, mirrors, criu } = spec;
  const miss = debianCacheMiss(cacheDir, spec);
  const dir = debianImageDir(cacheDir, release, criu);
  if (miss === undefined) return debianImageAt(dir, true);
  const problem = debianBuildProblem();
  if (problem) throw new Error(problem);
  const suite = DEBIAN_RELEASES[release].suite;
  const images = path.dirname(dir);
  const started = Date.now();
  const phases: Array<{ name: string; ms: number }> = [];
  const timed = async (name: string, step: () => Promise<void>) => {
    const t0 = Date.now();
    await step();
    phases.push({ name, ms: Date.now() - t0 });
    log(`  ${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  };
  fs.mkdirSync(images, { recursive: true });
  const logFile = path.join(images, `${path.basename(dir)}.build.log`);
  fs.writeFileSync(logFile, `build started ${new Date().toISOString()}\n`);
  const work = fs.mkdtempSync(path.join(images, ".build-"));
  const root = path.join(work, "rootfs");
  const packages = imagePackages(spec);
  const sources = guestSourcesList(suite, mirrors);
  try {
    log(
      `building the Debian ${release} (${suite}) image with debootstrap from ${mirrors.archive} ` +
        `(mirror from ${mirrors.from}; cache: ${miss}; log: ${logFile})`,
    );
    // Debs are kept across builds (a rebuild then downloads nothing).
    const debs = path.join(cacheDir, "debs");
    fs.mkdirSync(debs, { recursive: true });
    await timed("image: debootstrap", () =>
      run(
        "debootstrap",
        [
          "--variant=minbase",
          `--arch=${ubuntuArch()}`,
          `--cache-dir=${debs}`,
          `--include=${packages.join(",")}`,
          suite,
          root,
          mirrors.archive,
        ],
        logFile,
      ),
    );
    for (const [rel, content] of Object.entries(debianImageFiles(release, mirrors))) {
      const file = path.join(root, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, content);
    }
    // Every VM must get its own identity: cloud-init writes the host key from user-data, and
    // systemd makes a machine-id on first boot when the file is empty.
    for (const f of fs.readdirSync(path.join(root, "etc/ssh"))) {
      if (f.startsWith("ssh_host_")) fs.rmSync(path.join(root, "etc/ssh", f));
    }
    fs.writeFileSync(path.join(root, "etc/machine-id"), "");
    fs.rmSync(path.join(root, "var/lib/dbus/machine-id"), { force: true });
    await timed("image: locale-gen", () => run("chroot", [root, "locale-gen"], logFile));
    let criuRecord: DebianManifest["criu"];
    if (criu) {
      log(`building CRIU (${criuSourceId(criu)}) in the image's tree, in a chroot`);
      await timed("image: CRIU build (chroot)", async () => {
        criuRecord = await buildCriuInTree(root, criu, logFile);
      });
    }
    await run("chroot", [root, "apt-get", "clean"], logFile);
    const boot = path.join(root, "boot");
    const out = path.join(work, "image");
    fs.mkdirSync(out);
    fs.copyFileSync(newest(boot, "vmlinuz-"), path.join(out, "vmlinuz"));
    fs.copyFileSync(newest(boot, "initrd.img-"), path.join(out, "initrd.img"));
    const outDisk = path.join(out, "disk.raw");
    fs.closeSync(fs.openSync(outDisk, "w"));
    fs.truncateSync(outDisk, DEBIAN_DISK_GIB * 1024 ** 3);
    await timed("image: mkfs.ext4 -d", () =>
      run("mkfs.ext4", ["-q", "-F", "-L", "criu-lab-root", "-d", root, outDisk], logFile),
    );
    const manifest: DebianManifest = {
      recipe: DEBIAN_RECIPE_VERSION,
      release,
      suite,
      mirror: mirrors.archive,
      sources,
      packages,
      kernel: path.basename(newest(boot, "vmlinuz-")),
      initrd: path.basename(newest(boot, "initrd.img-")),
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 1000),
      ...(criuRecord ? { criu: criuRecord } : {}),
    };
    fs.writeFileSync(path.join(out, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(out, dir);
  } finally {
    removeBuildDir(work);
  }
  return { ...debianImageAt(dir, false), phases };
}

/**
 * Removes a build directory, unless something is still mounted under it (debootstrap mounts
 * /proc and /sys in the tree and unmounts them when it ends; a recursive delete through a
 * leftover mount would reach the host's own files).
 */
function removeBuildDir(work: string): void {
  const mounts = fs
    .readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((m) => m === work || m.startsWith(`${work}/`));
  if (mounts.length > 0) {
    throw new Error(`not removing ${work}: still mounted there: ${mounts.join(", ")}`);
  }
  fs.rmSync(work, { recursive: true, force: true });
}

/** The base image for `kind`, built or downloaded when the cache does not have it. */
export function baseImage(
  kind: ImageKind,
  cacheDir: string,
  debian: DebianSpec | undefined,
  log: (line: string) => void,
): Promise<BaseImage> {
  if (kind === "ubuntu") return ubuntuImage(cacheDir, log);
  if (debian === undefined) throw new Error("--image debian needs a release and a mirror");
  return debianImage(cacheDir, debian, log);
}
