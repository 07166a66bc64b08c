/**
 * Flags of `npm run lab:vm` (criu-lab-local vm), parsed and validated before anything is created:
 * a bad flag or value is a usage error that names it and says what is allowed.
 */
import * as path from "node:path";
import { UsageError } from "../verify/cliCommon";
import { DEFAULT_DEBIAN_RELEASE, type DebianRelease, type ImageKind } from "./image";
import { checkMirrorUrl } from "./mirror";

export type AccelChoice = "auto" | "kvm" | "tcg";

/** Where CRIU is built: in the Debian image's tree before it boots (natively, ./imageCriu),
 * or in the guest by cloud-init, as on EC2. */
export type CriuBuild = "image" | "guest";

export interface VmOptions {
  /** Base image: the official Ubuntu 24.04 cloud image, or Debian built with debootstrap. */
  image: ImageKind;
  /** Which Debian release `--image debian` builds (13 by default: DEBIAN_RELEASES says why). */
  debianRelease: DebianRelease;
  /** The Debian mirror for the image and the guest; undefined = the host's apt config's. */
  mirror?: string;
  /** Names the VM's state directory, so several labs can coexist. */
  name: string;
  /** Host port forwarded to the guest's port 22 on 127.0.0.1; undefined = a free port. */
  sshPort?: number;
  memoryMiB: number;
  cpus: number;
  accel: AccelChoice;
  /** Where base images are cached and VM state lives. */
  cacheDir: string;
  /** Where CRIU is built: `image` for Debian 13 by default (its build in an emulated guest
   * takes 2-4x Debian 12's), `guest` otherwise (the Ubuntu image is downloaded, not built). */
  criuBuild: CriuBuild;
  /** Build CRIU from this local tarball (served to the guest) instead of GitHub. */
  criuTarball?: { path: string; sha256: string };
  /** 2: the verified VM becomes two hosts on a private link, and the counter migrates
   * between them in every mode (./pair). */
  hosts: 1 | 2;
  /** How long to wait for cloud-init (which includes the CRIU build) and the checks. */
  timeoutMinutes: number;
  json: boolean;
  destroy: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run lab:vm -- [options]    (or: npx criu-lab-local vm [options])

Boots the CRIU lab in a local QEMU VM from the same cloud-init user-data that EC2 gets,
waits for it and verifies it (criu check + checkpoint/restore demo). The VM keeps running
so that you can SSH in; --destroy stops it.

options:
  --image ubuntu|debian   base image (default ubuntu: Ubuntu 24.04 cloud image, checked
                          against Canonical's SHA256SUMS; debian: Debian built locally
                          with debootstrap, needs root)
  --debian-release 13|12  the Debian release --image debian builds (default 13, trixie)
  --mirror URL            Debian mirror for --image debian (debootstrap and the guest's
                          apt sources; default: the one in this host's apt configuration)
  --name NAME             VM name, [a-z0-9-], 1-32 chars (default criu-lab)
  --ssh-port PORT         host port for SSH on 127.0.0.1 (default: a free port)
  --memory MIB            guest memory in MiB, 1024-65536 (default 3072)
  --cpus N                guest vCPUs, 1-64 (default 2)
  --accel auto|kvm|tcg    auto tries a tiny guest under KVM and falls back to TCG (default)
  --criu-tarball PATH     build CRIU from this local source tarball (with --criu-sha256)
  --criu-sha256 HEX       sha256 of that tarball (64 hex digits)
  --criu-build image|guest  where CRIU is built: image = natively in the Debian image's
                          tree before it boots (cached with the image; the guest checks
                          that build and reuses it), guest = by cloud-init in the guest,
                          as on EC2 (default: image for Debian 13, guest otherwise)
  --cache-dir DIR         images and VM state (default .cache/vm in this project)
  --hosts 1|2             2: once the lab verifies, two VMs boot from its disk (the same
                          CRIU build) on a private link, and the counter migrates between
                          them in every mode: cold, page-server, pre-copy, lazy (default 1)
  --timeout MINUTES       wait for cloud-init and the checks, 5-600 (default 90)
  --json                  print the verifier's report as JSON
  --destroy               stop the VM (by its recorded PID) and remove its state; the
                          cached base image stays
  -h, --help              this help

exit codes: 0 lab verified, 1 the lab does not work, 2 usage or bad input,
3 not reachable / not ready / a tool is missing`;

/** The project's own cache, next to node_modules; .gitignore already excludes `.cache/`. */
export const DEFAULT_CACHE_DIR = path.resolve(__dirname, "..", ".cache", "vm");

function intFlag(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${flag}: '${value}' is not allowed: use a whole number ${min}-${max}`);
  }
  return Number(value);
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${flag}: '${value}' is not allowed: use one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/**
 * Parses argv (after `vm`). Throws a UsageError on anything it does not understand: the
 * message names the flag, the bad value and what is allowed.
 */
export function parseVmArgs(argv: readonly string[], cwd = process.cwd()): VmOptions {
  const opts: VmOptions = {
    image: "ubuntu",
    debianRelease: DEFAULT_DEBIAN_RELEASE,
    criuBuild: "guest",
    name: "criu-lab",
    memoryMiB: 3072,
    cpus: 2,
    accel: "auto",
    cacheDir: DEFAULT_CACHE_DIR,
    timeoutMinutes: 90,
    hosts: 1,
    json: false,
    destroy: false,
    help: false,
  };
  let tarball: string | undefined;
  let sha256: string | undefined;
  let debianOnly: string | undefined;
  let criuBuild: CriuBuild | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // Accept both `--flag value` and `--flag=value`.
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) {
        throw new UsageError(`${flag}: needs a value`);
      }
      i++;
      return next;
    };
    const noValue = (): true => {
      if (inline !== undefined) throw new UsageError(`${flag}: takes no value, got '${inline}'`);
      return true;
    };
    switch (flag) {
      case "--image":
        opts.image = oneOf(flag, value(), ["ubuntu", "debian"] as const);
        break;
      case "--debian-release":
        opts.debianRelease = oneOf(flag, value(), ["13", "12"] as const);
        debianOnly = flag;
        break;
      case "--mirror": {
        const url = value();
        const problem = checkMirrorUrl(url);
        if (problem) throw new UsageError(problem);
        opts.mirror = url;
        debianOnly = flag;
        break;
      }
      case "--name": {
        const name = value();
        if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) {
          throw new UsageError(
            `--name: '${name}' is not allowed: use 1-32 characters of a-z, 0-9 and '-', starting with a letter or digit`,
          );
        }
        opts.name = name;
        break;
      }
      case "--ssh-port":
        opts.sshPort = intFlag(flag, value(), 1024, 65535);
        break;
      case "--memory":
        opts.memoryMiB = intFlag(flag, value(), 1024, 65536);
        break;
      case "--cpus":
        opts.cpus = intFlag(flag, value(), 1, 64);
        break;
      case "--accel":
        opts.accel = oneOf(flag, value(), ["auto", "kvm", "tcg"] as const);
        break;
      case "--criu-tarball":
        tarball = path.resolve(cwd, value());
        break;
      case "--criu-sha256": {
        const hex = value();
        if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
          throw new UsageError(`--criu-sha256: '${hex}' is not allowed: use 64 hex digits`);
        }
        sha256 = hex.toLowerCase();
        break;
      }
      case "--criu-build":
        criuBuild = oneOf(flag, value(), ["image", "guest"] as const);
        break;
      case "--cache-dir":
        opts.cacheDir = path.resolve(cwd, value());
        break;
      case "--timeout":
        opts.timeoutMinutes = intFlag(flag, value(), 5, 600);
        break;
      case "--hosts":
        opts.hosts = oneOf(flag, value(), ["1", "2"] as const) === "2" ? 2 : 1;
        break;
      case "--json":
        opts.json = noValue();
        break;
      case "--destroy":
        opts.destroy = noValue();
        break;
      case "-h":
      case "--help":
        opts.help = noValue();
        break;
      default:
        throw new UsageError(`unknown option '${arg}' (see --help)`);
    }
  }
  if (debianOnly !== undefined && opts.image !== "debian") {
    throw new UsageError(
      `${debianOnly}: only applies to --image debian (the Ubuntu image comes with its own sources)`,
    );
  }
  if (criuBuild === "image" && opts.image !== "debian") {
    throw new UsageError(
      "--criu-build: 'image' only applies to --image debian (the Ubuntu cloud image is downloaded, not built here): use --criu-build guest",
    );
  }
  opts.criuBuild =
    criuBuild ?? (opts.image === "debian" && opts.debianRelease === "13" ? "image" : "guest");
  if ((tarball === undefined) !== (sha256 === undefined)) {
    throw new UsageError(
      tarball === undefined
        ? "--criu-sha256: needs --criu-tarball PATH too"
        : "--criu-tarball: needs --criu-sha256 HEX too (the guest checks the tarball against it)",
    );
  }
  if (tarball !== undefined && sha256 !== undefined) {
    opts.criuTarball = { path: tarball, sha256 };
  }
  return opts;
}
