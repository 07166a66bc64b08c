/**
 * The lab in a local QEMU VM: checks tools and input, chooses the accelerator, gets
 * the base image, generates the VM's keys, renders the very user-data EC2 gets into a NoCloud
 * seed, boots the VM on a copy-on-write overlay with SSH on 127.0.0.1, and verifies it with
 * the same verifier as an EC2 host. Each phase is timed. The VM is recorded (PID, port, keys)
 * in its state directory so that `--destroy` can stop it later, from another process.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { renderUserData, type CriuSource } from "../cloud-init/userData";
import { defaultConfig } from "../components/config";
import { ExitCode } from "../contract/checks";
import { parseHostKey } from "../contract/hostKey";
import { connect, runCommand } from "../verify/session";
import { verifyLab, type VerifyReport } from "../verify/verifier";
import { chooseAccel, type Accel } from "./accel";
import {
  baseImage,
  debianBuildProblem,
  debianCacheMiss,
  GUEST_HOSTNAME,
  run,
  sha256File,
  type BaseImage,
  type DebianSpec,
} from "./image";
import { generateKey } from "./keys";
import { chooseMirrors } from "./mirror";
import type { VmOptions } from "./options";
import {
  cpuSeconds,
  freePort,
  isOurQemu,
  overlayArgs,
  startQemu,
  stopQemu,
  waitForSsh,
} from "./qemu";
import { renderMetaData, writeSeed } from "./seed";
import { serveFile, type FileServer } from "./serve";
import { missingTools, missingToolsMessage, requiredTools } from "./tools";

/** The lab user, as on EC2 (docs/design.md "Contracts": `~ubuntu/counter.py`). */
export const LAB_USER = "ubuntu";

/** Overlay size for the Ubuntu image (its own disk is ~3.5 GiB; cloud-init grows the root). */
const UBUNTU_DISK_GIB = 16;

/** How long the guest may take from QEMU's start to sshd's banner (TCG is slow). */
const BOOT_TIMEOUT_MS = 15 * 60_000;

/** A failure with its exit code (docs/design.md "Contracts"), and where its evidence is. */
export class VmError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly evidenceDir?: string,
  ) {
    super(message);
    this.name = "VmError";
  }
}

/** What `state.json` records about a running VM. */
export interface VmState {
  name: string;
  pid: number;
  sshPort: number;
  user: string;
  image: string;
  accel: Accel;
  stateDir: string;
  privateKeyPath: string;
  knownHostsPath: string;
  hostKeyPublic: string;
  serialLog: string;
  startedAt: string;
}

export interface PhaseTime {
  name: string;
  ms: number;
  note?: string;
}

export interface LabRun {
  vm: VmState;
  /** The image it booted (its kernel, for direct boot): `--hosts 2` boots clones of it. */
  base: BaseImage;
  report: VerifyReport;
  phases: PhaseTime[];
  /** Where the failure's evidence was kept, when the lab did not verify. */
  evidenceDir?: string;
}

/** A VM's files in its state directory: its overlay disk, serial console log and QEMU's PID
 * file. One naming for the lab's VM and each host of a pair (whose overlays stack on the
 * first VM's disk). */
export function vmFiles(dir: string): { overlay: string; serialLog: string; pidFile: string } {
  return {
    overlay: path.join(dir, "disk.qcow2"),
    serialLog: path.join(dir, "serial.log"),
    pidFile: path.join(dir, "qemu.pid"),
  };
}

export function stateDirOf(cacheDir: string, name: string): string {
  return path.join(cacheDir, "vms", name);
}

export function readState(cacheDir: string, name: string): VmState | undefined {
  return readStateIn(stateDirOf(cacheDir, name));
}

/** The `state.json` in `dir`, or undefined. */
function readStateIn(dir: string): VmState | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")) as VmState;
  } catch {
    return undefined;
  }
}

/** The command a user types to reach the VM (host key pinned through its own known_hosts). */
export function sshCommand(vm: VmState): string {
  return [
    "ssh",
    `-i ${vm.privateKeyPath}`,
    `-p ${vm.sshPort}`,
    `-o UserKnownHostsFile=${vm.knownHostsPath}`,
    "-o StrictHostKeyChecking=yes",
    `${vm.user}@127.0.0.1`,
  ].join(" ");
}

/** The CRIU source: the served tarball, else the pinned release from GitHub (as on EC2). */
function criuSource(tarballUrl: string | undefined, sha256: string | undefined): CriuSource {
  if (tarballUrl !== undefined && sha256 !== undefined) {
    return { kind: "tarball", url: tarballUrl, sha256 };
  }
  return defaultConfig().criu;
}

/**
 * Checks everything that can be checked before anything is created. Returns what the Debian
 * image is built from (release, mirrors), for --image debian.
 */
async function preflight(opts: VmOptions): Promise<DebianSpec | undefined> {
  const missing = missingTools(requiredTools(opts.image));
  if (missing.length > 0) throw new VmError(missingToolsMessage(missing), ExitCode.unreachable);
  let debian: DebianSpec | undefined;
  if (opts.image === "debian") {
    try {
      debian = {
        release: opts.debianRelease,
        mirrors: chooseMirrors(opts.mirror),
        // The very source the guest's install-criu.sh is given (a served tarball is named by
        // its host path here), so that the guest finds its own source id in the record.
        ...(opts.criuBuild === "image"
          ? {
              criu: opts.criuTarball
                ? {
                    kind: "tarball" as const,
                    url: opts.criuTarball.path,
                    sha256: opts.criuTarball.sha256,
                  }
                : defaultConfig().criu,
            }
          : {}),
      };
    } catch (err) {
      throw new VmError(err instanceof Error ? err.message : String(err), ExitCode.usage);
    }
    const buildProblem = debianBuildProblem();
    if (buildProblem && debianCacheMiss(opts.cacheDir, debian) !== undefined) {
      throw new VmError(buildProblem, ExitCode.unreachable);
    }
  }
  if (opts.criuTarball) {
    const { path: file, sha256 } = opts.criuTarball;
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
      throw new VmError(`--criu-tarball: '${file}' is not a file`, ExitCode.usage);
    }
    // The guest checks it too; checking here first fails in a second instead of after boot.
    const actual = await sha256File(file);
    if (actual !== sha256) {
      throw new VmError(
        `--criu-sha256: '${file}' has sha256 ${actual}, not the ${sha256} given`,
        ExitCode.usage,
      );
    }
  }
  const existing = readState(opts.cacheDir, opts.name);
  if (existing && isOurQemu(existing.pid, existing.stateDir)) {
    throw new VmError(
      `a VM named '${opts.name}' already runs (PID ${existing.pid}, SSH port ${existing.sshPort}): ` +
        `reach it with: ${sshCommand(existing)}\n` +
        `or remove it first: npm run lab:vm -- --destroy${opts.name === "criu-lab" ? "" : ` --name ${opts.name}`}`,
      ExitCode.usage,
    );
  }
  return debian;
}

const since = (t0: number) => Date.now() - t0;

/**
 * The guest's CRIU install phases, from the timestamped lines of cloud-init/install-criu.sh's
 * log ("<ISO time> <message>"): apt build dependencies, the build itself ("built in N s")
 * and the whole install, for the last install in the log.
 */
export function installTimings(installLog: string): PhaseTime[] {
  const lines = installLog
    .split("\n")
    .map((line) => /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ at: Date.parse(m[1]), text: m[2] }));
  const start = lines.map((l) => l.text.startsWith("--- install-criu")).lastIndexOf(true);
  const run = lines.slice(Math.max(start, 0));
  const times: PhaseTime[] = [];
  const deps = run.findIndex((l) => l.text.startsWith("installing build dependencies"));
  if (deps >= 0 && deps + 1 < run.length) {
    times.push({ name: "CRIU build deps (apt)", ms: run[deps + 1].at - run[deps].at });
  }
  const built = run.map((l) => /^built in (\d+) s$/.exec(l.text)).find((m) => m);
  if (built) times.push({ name: "CRIU build", ms: Number(built[1]) * 1000 });
  // The image's build reused (--criu-build image): the guest's checks, then nothing to do.
  const reused = run.find((l) => /is already installed .*: nothing to do$/.test(l.text));
  if (start >= 0 && reused) {
    times.push({ name: "CRIU reused (checks)", ms: reused.at - lines[start].at });
  }
  const done = run.find((l) => l.text.startsWith("installed CRIU"));
  if (start >= 0 && done) {
    times.push({ name: "CRIU install (all)", ms: done.at - lines[start].at });
  }
  return times;
}

/** An SSH session to the running VM, its host key pinned, for a short look at its logs. */
function connectToVm(vm: VmState, privateKey: string) {
  return connect({
    host: "127.0.0.1",
    port: vm.sshPort,
    user: vm.user,
    privateKey,
    hostKey: parseHostKey(vm.hostKeyPublic),
    deadline: Date.now() + 20_000,
  });
}

/**
 * Copies what explains a failure out of the VM's state directory (which --destroy removes):
 * the serial console log, the verifier's log tails, the cloud-init logs fetched over SSH when
 * the guest answers, and the report itself.
 */
async function keepEvidence(
  opts: VmOptions,
  vm: VmState,
  privateKey: string,
  report: VerifyReport | undefined,
  log: (line: string) => void,
): Promise<string> {
  const dir = path.join(
    opts.cacheDir,
    "evidence",
    `${opts.name}-${new Date().toISOString().replace(/[:.]/g, "-")}`,
  );
  fs.mkdirSync(dir, { recursive: true });
  if (fs.existsSync(vm.serialLog)) fs.copyFileSync(vm.serialLog, path.join(dir, "serial.log"));
  if (report) {
    fs.writeFileSync(path.join(dir, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
    for (const [remote, text] of Object.entries(report.logs ?? {})) {
      fs.writeFileSync(path.join(dir, remote.replace(/[^A-Za-z0-9._-]+/g, "_")), text);
    }
  }
  try {
    const ssh = await connectToVm(vm, privateKey);
    try {
      for (const remote of [
        "/var/log/cloud-init.log",
        "/var/log/cloud-init-output.log",
        "/var/lib/criu-lab/install.json",
      ]) {
        const r = await runCommand(ssh, `sudo tail -c 1000000 ${remote}`, 60);
        if (r.code === 0) {
          fs.writeFileSync(path.join(dir, remote.replace(/[^A-Za-z0-9._-]+/g, "_")), r.stdout);
        }
      }
      const status = await runCommand(ssh, "sudo cloud-init status --long", 60);
      fs.writeFileSync(path.join(dir, "cloud-init-status.txt"), status.stdout + status.stderr);
    } finally {
      ssh.dispose();
    }
  } catch (err) {
    fs.writeFileSync(
      path.join(dir, "fetch-error.txt"),
      `could not fetch the guest's logs: ${err instanceof Error ? err.message : String(err)}\n`,
    );
  }
  log(`evidence kept in ${dir}`);
  return dir;
}

/**
 * Boots and verifies the lab. Returns the run (the VM keeps running) when it was created,
 * whether or not it verified; throws VmError when it could not be created.
 */
export async function runLab(opts: VmOptions, log: (line: string) => void): Promise<LabRun> {
  const phases: PhaseTime[] = [];
  // Each phase's time is printed as it ends, and listed again at the end: TCG runs are long.
  const phase = (p: PhaseTime) => {
    phases.push(p);
    log(`phase ${p.name}: ${(p.ms / 1000).toFixed(1)} s${p.note ? ` (${p.note})` : ""}`);
  };
  const debian = await preflight(opts);
  const deadline = Date.now() + opts.timeoutMinutes * 60_000;

  let t0 = Date.now();
  const base = await baseImage(opts.image, opts.cacheDir, debian, log);
  phases.push(...(base.phases ?? []));
  phase({
    name: "image",
    ms: since(t0),
    note:
      `${debian ? `Debian ${debian.release}, ` : ""}${base.cached ? "cached" : "built/downloaded"}` +
      `, CRIU built in the ${opts.criuBuild}`,
  });

  // After the image: the probe boots the image's own kernel where it has one (./accel).
  const accel = await chooseAccel(opts.accel, opts.cacheDir, base.kernel).catch((err: unknown) => {
    throw new VmError(err instanceof Error ? err.message : String(err), ExitCode.usage);
  });
  if (accel.accel === "tcg") {
    log(
      `warning: software emulation (TCG): ${accel.reason}` +
        `${accel.cached ? " (verdict cached for this boot of the host)" : ""}. ` +
        (opts.criuBuild === "guest"
          ? "Booting and building CRIU take about 10x longer than with KVM (expect 20-30 minutes)"
          : "Booting takes about 10x longer than with KVM (CRIU is built in the image, natively)"),
    );
  } else {
    log(`acceleration: KVM (${accel.reason}${accel.cached ? ", cached for this boot" : ""})`);
  }

  const stateDir = stateDirOf(opts.cacheDir, opts.name);
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const logFile = path.join(stateDir, "vm.log");
  const hostKey = generateKey(path.join(stateDir, "ssh_host_ed25519_key"), `criu-lab-vm-host`);
  const userKey = generateKey(path.join(stateDir, "id_ed25519"), `criu-lab-vm-${opts.name}`);
  const knownHostsPath = path.join(stateDir, "known_hosts");
  const files = vmFiles(stateDir);
  const { serialLog } = files;
  const sshPort = opts.sshPort ?? (await freePort());
  fs.writeFileSync(knownHostsPath, `[127.0.0.1]:${sshPort} ${hostKey.publicKeyOpenssh}\n`);

  let server: FileServer | undefined;
  let vm: VmState | undefined;
  try {
    if (opts.criuTarball) {
      server = await serveFile(opts.criuTarball.path);
      log(`serving ${opts.criuTarball.path} to the VM at ${server.guestUrl}`);
    }
    const userData = renderUserData({
      criu: criuSource(server?.guestUrl, opts.criuTarball?.sha256),
      hostKey,
      authorizedKeys: [userKey.publicKeyOpenssh],
      // A local VM is stopped by --destroy, not by idling.
      autoStopMinutes: 0,
      labUser: LAB_USER,
    });
    const seedDir = path.join(stateDir, "seed");
    fs.mkdirSync(seedDir, { mode: 0o700 });
    const metaData = renderMetaData(`criu-lab-${opts.name}-${Date.now()}`, GUEST_HOSTNAME);
    const seedIso = await writeSeed(seedDir, userData, metaData, logFile);
    await run(
      "qemu-img",
      overlayArgs(base, files.overlay, base.kind === "ubuntu" ? UBUNTU_DISK_GIB : undefined),
      logFile,
    );

    t0 = Date.now();
    const pid = startQemu({
      name: opts.name,
      accel: accel.accel,
      memoryMiB: opts.memoryMiB,
      cpus: opts.cpus,
      sshPort,
      seedIso,
      base,
      ...files,
    });
    vm = {
      name: opts.name,
      pid,
      sshPort,
      user: LAB_USER,
      image: opts.image,
      accel: accel.accel,
      stateDir,
      privateKeyPath: userKey.path,
      knownHostsPath,
      hostKeyPublic: hostKey.publicKeyOpenssh,
      serialLog,
      startedAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(stateDir, "state.json"), `${JSON.stringify(vm, null, 2)}\n`);
    log(
      `VM '${opts.name}' started (QEMU PID ${pid}, ${accel.accel}); serial console: ${serialLog}`,
    );
    log(`SSH in (once cloud-init has made the user): ${sshCommand(vm)}`);

    const running = vm;
    try {
      await waitForSsh(
        sshPort,
        () => isOurQemu(running.pid, stateDir),
        Math.min(BOOT_TIMEOUT_MS, deadline - Date.now()),
      );
    } catch (err) {
      const evidenceDir = await keepEvidence(
        opts,
        running,
        userKey.privateKeyOpenssh,
        undefined,
        log,
      );
      throw new VmError(
        `${err instanceof Error ? err.message : String(err)} (serial console: ${serialLog})`,
        ExitCode.unreachable,
        evidenceDir,
      );
    }
    /** What QEMU used of the host's CPU since `from`: the guest's share of a busy host. */
    const qemuCpu = (from: number | undefined) => {
      const now = cpuSeconds(running.pid);
      return now === undefined || from === undefined
        ? ""
        : `; QEMU CPU ${(now - from).toFixed(0)} s`;
    };
    phase({ name: "boot", ms: since(t0), note: `QEMU start to sshd banner${qemuCpu(0)}` });
    const cpuAtBoot = cpuSeconds(running.pid);
    t0 = Date.now();

    const report = await verifyLab(
      {
        host: "127.0.0.1",
        port: sshPort,
        user: LAB_USER,
        privateKey: userKey.privateKeyOpenssh,
        hostKey: hostKey.publicKeyOpenssh,
      },
      {
        timeoutSeconds: Math.max(60, Math.floor((deadline - Date.now()) / 1000)),
        onProgress: log,
      },
    );
    for (const step of report.steps) phase({ name: step.name, ms: step.ms });
    phase({
      name: "verifier (all steps)",
      ms: since(t0),
      note: `sshd up to the demo's end${qemuCpu(cpuAtBoot)}`,
    });
    for (const t of await guestTimings(running, userKey.privateKeyOpenssh)) phase(t);
    let evidenceDir: string | undefined;
    if (!report.ok) {
      if (server)
        fs.writeFileSync(path.join(stateDir, "file-server.log"), server.requests.join("\n"));
      evidenceDir = await keepEvidence(opts, running, userKey.privateKeyOpenssh, report, log);
    }
    return { vm: running, base, report, phases, evidenceDir };
  } catch (err) {
    if (err instanceof VmError) throw err;
    throw new VmError(
      `${err instanceof Error ? err.message : String(err)}` +
        `${vm ? ` (the VM is still running: --destroy removes it; serial console: ${serialLog})` : ""}`,
      ExitCode.unreachable,
    );
  } finally {
    await server?.close();
  }
}

/** The guest's own install timings (CRIU build and so on), when its log has them. */
async function guestTimings(vm: VmState, privateKey: string): Promise<PhaseTime[]> {
  try {
    const ssh = await connectToVm(vm, privateKey);
    try {
      const r = await runCommand(ssh, "sudo cat /var/log/criu-lab/install.log", 30);
      return r.code === 0
        ? installTimings(r.stdout).map((t) => ({
            ...t,
            note: "in cloud-init, from the guest's log",
          }))
        : [];
    } finally {
      ssh.dispose();
    }
  } catch {
    return [];
  }
}

/**
 * Stops the VM named `name` by its recorded PID and removes its state (overlay, keys, seed).
 * The cached base images and kept evidence stay. Returns what it did, for the CLI to print.
 */
export async function destroyLab(cacheDir: string, name: string): Promise<string> {
  const stateDir = stateDirOf(cacheDir, name);
  if (!fs.existsSync(stateDir)) return `no VM named '${name}' (nothing in ${stateDir})`;
  const state = readState(cacheDir, name);
  const stopped = state ? await stopQemu(state.pid, stateDir) : false;
  // `--hosts 2`: the two hosts booted from the first VM's disk (./pair), each in its own
  // directory under this one, recorded the same way.
  const hosts: string[] = [];
  const pairDir = path.join(stateDir, "pair");
  for (const role of fs.existsSync(pairDir) ? fs.readdirSync(pairDir).sort() : []) {
    const host = readStateIn(path.join(pairDir, role));
    if (host && (await stopQemu(host.pid, host.stateDir))) {
      hosts.push(`host ${role} (QEMU PID ${host.pid})`);
    }
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
  const what = [...(stopped ? [`VM '${name}' (QEMU PID ${state?.pid})`] : []), ...hosts];
  return what.length > 0
    ? `stopped ${what.join(", ")} and removed ${stateDir}`
    : `VM '${name}' was not running; removed ${stateDir}`;
}
