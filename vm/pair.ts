/**
 * Two lab hosts in local VMs (`npm run lab:vm -- --hosts 2`): migration
 * between two real kernels, with no cloud account.
 *
 * CRIU is set up once: the first VM is set up and verified as usual (CRIU built in the image,
 * or by cloud-init under software emulation, then the longest phase by far), a host-to-host key is authorized in
 * it, it is shut down cleanly, and two VMs boot from copy-on-write overlays of its disk; each
 * then runs the peer set-up of a two-host EC2 seat (components/peerSetup.ts). Both thus run the same verified build (CRIU restores a
 * process only where the files it maps are identical, docs/design.md "Facts"), each under its own
 * kernel (its own boot id: `lazy` needs that), on a private link between them that nothing
 * else is on: QEMU's socket netdev, one VM listening on a 127.0.0.1 port, the other
 * connecting. SSH from this host still reaches each only through its own 127.0.0.1 forward.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { peerSetupScript } from "../components/peerSetup";
import { ExitCode, shellQuote } from "../contract/checks";
import { RAN_MODES, type RanMode } from "../contract/seats";
import { parseHostKey } from "../contract/hostKey";
import { connect, runCommand, VerifyError, type CommandResult } from "../verify/session";
import { run } from "./image";
import { generateKey } from "./keys";
import { stateDirOf, vmFiles, VmError, type LabRun, type PhaseTime, type VmState } from "./lab";
import type { VmOptions } from "./options";
import { freePort, isOurQemu, overlayArgs, startQemu, stopQemu, waitForSsh } from "./qemu";

export type Role = "a" | "b";

/** The private link's addresses and the names each host knows its peer by (/etc/hosts). */
export const PAIR: Record<Role, { ip: string; mac: string; name: string }> = {
  a: { ip: "10.77.0.1", mac: "52:54:00:77:00:01", name: "criu-lab-vm-a" },
  b: { ip: "10.77.0.2", mac: "52:54:00:77:00:02", name: "criu-lab-vm-b" },
};

export const peerOf = (role: Role): Role => (role === "a" ? "b" : "a");

export interface PairRun {
  hosts: Record<Role, VmState>;
  phases: PhaseTime[];
}

/** Where host `role` of the pair keeps its overlay, PID and serial log. */
export function pairDirOf(cacheDir: string, name: string, role: Role): string {
  return path.join(stateDirOf(cacheDir, name), "pair", role);
}

/**
 * Runs `command` on `vm` over a fresh SSH session (host key pinned). A VM that does not answer
 * is described in the error: whether its QEMU still runs and the end of its serial console
 * (the guest kernel's own words: an OOM kill, a hung task), which the VM's removal would take.
 */
export async function onVm(
  vm: VmState,
  command: string,
  timeoutSeconds: number,
): Promise<CommandResult> {
  let ssh: Awaited<ReturnType<typeof connect>>;
  try {
    ssh = await connect({
      host: "127.0.0.1",
      port: vm.sshPort,
      user: vm.user,
      privateKey: fs.readFileSync(vm.privateKeyPath, "utf8"),
      hostKey: parseHostKey(vm.hostKeyPublic),
      deadline: Date.now() + 120_000,
    });
  } catch (err) {
    if (!(err instanceof VerifyError)) throw err;
    throw new VerifyError(`${err.message}\n${vmEvidence(vm)}`, err.exitCode);
  }
  try {
    return await runCommand(ssh, command, timeoutSeconds);
  } finally {
    ssh.dispose();
  }
}

/** What this host sees of a VM that does not answer: its QEMU, its console's last lines, the load. */
export function vmEvidence(vm: VmState, lines = 15): string {
  let console: string;
  try {
    const text = fs.readFileSync(vm.serialLog, "utf8").replace(/\r/g, "").trimEnd();
    console = text.split("\n").slice(-lines).join("\n") || "(empty)";
  } catch (err) {
    console = `(unreadable: ${err instanceof Error ? err.message : String(err)})`;
  }
  return (
    `VM '${vm.name}': QEMU PID ${vm.pid} ${isOurQemu(vm.pid, vm.stateDir) ? "runs" : "is gone"}; ` +
    `load on this host ${fs.readFileSync("/proc/loadavg", "utf8").trim()}; ` +
    `the end of its serial console (${vm.serialLog}):\n${console}`
  );
}

async function must(vm: VmState, command: string, what: string, timeoutSeconds = 120) {
  const r = await onVm(vm, command, timeoutSeconds);
  if (r.code !== 0) {
    throw new VmError(
      `${what} failed in VM '${vm.name}' (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-600)}`,
      ExitCode.labBroken,
    );
  }
  return r.stdout;
}

/**
 * What the user-data does for a two-host EC2 seat (components/seat.ts): the host-to-host key
 * authorized for the lab user. Run once, on the first VM, so both clones have it.
 */
function authorizeScript(peerPub: string, user: string): string {
  return `echo '${peerPub}' >> ~${user}/.ssh/authorized_keys`;
}

/** Gives the link's NIC (found by its MAC) the host's address. */
export function linkScript(role: Role): string {
  const me = PAIR[role];
  return [
    "set -eu",
    // `ip -o link` names a device "NAME:" or, for a veth, "NAME@PEER:".
    `dev=$(ip -o link | awk -v mac=${me.mac} '$0 ~ mac { sub(/@.*/, "", $2); sub(":", "", $2); print $2 }')`,
    `[ -n "$dev" ] || { echo "no NIC with MAC ${me.mac}" >&2; exit 1; }`,
    `ip addr replace ${me.ip}/24 dev "$dev"`,
    `ip link set "$dev" up`,
  ].join("\n");
}

async function powerOff(vm: VmState, log: (line: string) => void): Promise<void> {
  // The connection drops as the guest goes down: its error is expected.
  await onVm(vm, "sudo systemctl poweroff", 30).catch(() => undefined);
  const deadline = Date.now() + 180_000;
  while (isOurQemu(vm.pid, vm.stateDir) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1_000));
  }
  if (isOurQemu(vm.pid, vm.stateDir)) {
    log(`VM '${vm.name}' did not power off within 180 s: stopping its QEMU (PID ${vm.pid})`);
    await stopQemu(vm.pid, vm.stateDir);
  }
}

/**
 * Turns the verified VM of `first` into two hosts a and b (see the module's comment). The
 * first VM is gone afterwards; its disk stays as the read-only base of both.
 */
export async function runPair(
  opts: VmOptions,
  first: LabRun,
  log: (line: string) => void,
): Promise<PairRun> {
  const phases: PhaseTime[] = [];
  const phase = (name: string, t0: number, note?: string) => {
    const p = { name, ms: Date.now() - t0, note };
    phases.push(p);
    log(`phase ${name}: ${(p.ms / 1000).toFixed(1)} s${note ? ` (${note})` : ""}`);
  };
  const vm = first.vm;
  let t0 = Date.now();
  const peerKey = generateKey(path.join(vm.stateDir, "peer_ed25519"), "criu-lab-vm-peer");
  await must(
    vm,
    authorizeScript(peerKey.publicKeyOpenssh, vm.user),
    "authorizing the host-to-host key",
  );
  await powerOff(vm, log);
  phase("pair: host-to-host key authorized, first VM powered off", t0);

  t0 = Date.now();
  const linkPort = await freePort();
  const seedIso = path.join(vm.stateDir, "seed", "seed.iso");
  const firstDisk = vmFiles(vm.stateDir).overlay;
  const hosts = {} as Record<Role, VmState>;
  for (const role of ["a", "b"] as const) {
    const dir = pairDirOf(opts.cacheDir, opts.name, role);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const files = vmFiles(dir);
    await run(
      "qemu-img",
      overlayArgs({ disk: firstDisk, format: "qcow2" }, files.overlay),
      path.join(dir, "vm.log"),
    );
    const sshPort = await freePort();
    const pid = startQemu({
      name: `${opts.name}-${role}`,
      accel: vm.accel,
      memoryMiB: opts.memoryMiB,
      cpus: opts.cpus,
      sshPort,
      seedIso,
      base: first.base,
      ...files,
      // a listens first, so that b's connect finds it.
      link: { role: role === "a" ? "listen" : "connect", port: linkPort, mac: PAIR[role].mac },
    });
    hosts[role] = {
      ...vm,
      name: `${opts.name}-${role}`,
      pid,
      sshPort,
      stateDir: dir,
      serialLog: files.serialLog,
      knownHostsPath: path.join(dir, "known_hosts"),
      startedAt: new Date().toISOString(),
    };
    fs.writeFileSync(hosts[role].knownHostsPath, `[127.0.0.1]:${sshPort} ${vm.hostKeyPublic}\n`);
    fs.writeFileSync(path.join(dir, "state.json"), `${JSON.stringify(hosts[role], null, 2)}\n`);
    log(`host ${role}: QEMU PID ${pid}, SSH on 127.0.0.1:${sshPort}, link ${PAIR[role].ip}`);
  }
  await Promise.all(
    (["a", "b"] as const).map((role) =>
      waitForSsh(
        hosts[role].sshPort,
        () => isOurQemu(hosts[role].pid, hosts[role].stateDir),
        10 * 60_000,
      ).catch((err: unknown) => {
        throw new VmError(
          `host ${role}: ${err instanceof Error ? err.message : String(err)} (serial console: ${hosts[role].serialLog})`,
          ExitCode.unreachable,
        );
      }),
    ),
  );
  phase("pair: both hosts booted", t0, "from overlays of the first VM's disk");

  t0 = Date.now();
  await Promise.all(
    (["a", "b"] as const).map((role) =>
      must(hosts[role], `sudo sh -c ${shellQuote(linkScript(role))}`, "bringing up the link", 180),
    ),
  );
  // The peer set-up a two-host EC2 seat runs (components/peerSetup.ts), as the lab user: the
  // peer's name, its host key (both clones have the first VM's), the host-to-host key.
  await Promise.all(
    (["a", "b"] as const).map((role) => {
      const peer = PAIR[peerOf(role)];
      const script = peerSetupScript({
        peerName: peer.name,
        peerIp: peer.ip,
        // "ssh-ed25519 AAAA...": the key without its comment.
        hostKey: vm.hostKeyPublic.split(" ").slice(0, 2).join(" "),
        key: peerKey.privateKeyOpenssh,
      });
      return must(hosts[role], `bash -c ${shellQuote(script)}`, "the peer set-up");
    }),
  );
  // The path every migration takes: root on each host logs in to the lab user on the other,
  // by name, with the host-to-host key, the host key checked (StrictHostKeyChecking=yes).
  await Promise.all(
    (["a", "b"] as const).map((role) =>
      must(
        hosts[role],
        `sudo ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 ` +
          `${vm.user}@${PAIR[peerOf(role)].name} true`,
        `ssh from ${role} to ${PAIR[peerOf(role)].name}`,
      ),
    ),
  );
  phase("pair: private link up", t0, `${PAIR.a.ip} <-> ${PAIR.b.ip}, SSH both ways`);
  return { hosts, phases };
}

/** The modes `criu-lab migrate` has, each proven between the two hosts. */
export const PAIR_MODES = RAN_MODES;
export type PairMode = RanMode;

/** What `criu-lab scenario run migration --json` reports (host/criu_lab/migration.py). */
export interface MigrationReport {
  ok: boolean;
  error?: string;
  mode?: string;
  pid?: number;
  restoredPid?: number;
  lastBeforeDump?: number | null;
  firstAfterRestore?: number;
  destination?: string;
  destinationKernel?: string;
  downtimeMs?: number;
  /** Lazy: from the freeze until the process runs there; completeMs: until its last page. */
  resumeMs?: number;
  completeMs?: number;
  freezeMs?: number;
  transferMs?: number;
  restoreMs?: number;
  /** CRIU's own account; a lazy dump's is null, the reason in dumpLeftOut (common.py). */
  criu?: {
    dump: Record<string, number> | null;
    restore: Record<string, number>;
    dumpLeftOut?: string;
  };
  bytesTransferred?: number;
  /** The pair check's checks (host/criu_lab/pair.py), passed or not. */
  pairChecks?: Array<{ name: string; ok: boolean; detail: string }>;
  /** Pre-copy's rounds and why they stopped (host/criu_lab/precopy.py). */
  preCopyRounds?: Array<{
    round: number;
    pages: number;
    bytes: number;
    ms: number;
    copyMs: number;
  }>;
  preCopyStop?: "converged" | "not shrinking" | "round limit";
}

export interface PairMigration {
  from: Role;
  to: Role;
  mode: PairMode;
  exitCode: number | null;
  report: MigrationReport;
}

/**
 * Shell that puts this host's PID counter 64 ahead, run before a process to migrate starts.
 * The two hosts boot from one disk, so their PID counters run in step: the process's PID can
 * be one the peer's sshd gives the migration's own connection before the pair check asks, and
 * the check rightly refuses (the restore needs that PID free; seen in the VM bench:
 * "taken on the destination (by sshd-session)"). After the check the tool itself numbers the
 * peer's new processes above the process's PID (pair.pid_probe).
 */
export const PID_LEAD = "i=0; while [ $i -lt 64 ]; do /bin/true; i=$((i+1)); done";

/**
 * Runs the lab's migration scenario on host `from` as root: the counter moves to the lab user
 * on the peer, by the peer's name (its host key and the host-to-host key installed above), and
 * must count on there with the same PID.
 */
export async function migrateInPair(
  pair: PairRun,
  from: Role,
  mode: PairMode,
): Promise<PairMigration> {
  const to = peerOf(from);
  const r = await onVm(
    pair.hosts[from],
    `${PID_LEAD}; sudo criu-lab scenario run migration --to ${pair.hosts[to].user}@${PAIR[to].name} --mode ${mode} --json`,
    900,
  );
  let report: MigrationReport;
  try {
    report = JSON.parse(r.stdout) as MigrationReport;
  } catch {
    report = {
      ok: false,
      error: `no JSON from criu-lab (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-400)}`,
    };
  }
  return { from, to, mode, exitCode: r.code, report };
}

/** A table of the pair's migrations, for the terminal and the test's log. */
export function migrationTable(rows: PairMigration[]): string {
  const head = ["mode", "from->to", "result", "downtime", "freeze", "transfer", "restore", "sent"];
  const ms = (v: number | undefined) => (v === undefined ? "-" : `${v.toFixed(0)} ms`);
  const body = rows.map((m) => [
    m.mode,
    `${m.from}->${m.to}`,
    m.report.ok
      ? `ok, PID ${m.report.pid}, ${m.report.lastBeforeDump} -> ${m.report.firstAfterRestore}`
      : `FAILED (exit ${m.exitCode})`,
    ms(m.report.downtimeMs),
    ms(m.report.freezeMs),
    ms(m.report.transferMs),
    ms(m.report.restoreMs),
    m.report.bytesTransferred === undefined
      ? "-"
      : `${(m.report.bytesTransferred / 2 ** 20).toFixed(1)} MiB`,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  return [head, ...body]
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(width[i]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * The pair's figures against cold migration: pre-copy's downtime, and lazy's time until the
 * process runs on the peer (resumeMs), each as a ratio of cold's downtime. One run of each
 * mode, so no spread: the bench's repeated rounds give that (docs/development.md).
 */
export function pairFigures(rows: PairMigration[]): string[] {
  const first = (mode: PairMode) => rows.find((m) => m.mode === mode && m.report.ok)?.report;
  const cold = first("cold")?.downtimeMs;
  const vsCold = (ms: number | undefined) =>
    ms === undefined || cold === undefined || cold <= 0
      ? ""
      : ` = ${(ms / cold).toFixed(2)}x cold's downtime ${cold.toFixed(0)} ms`;
  const lines: string[] = [];
  const pre = first("pre-copy");
  if (pre?.downtimeMs !== undefined) {
    lines.push(
      `pre-copy: downtime ${pre.downtimeMs.toFixed(0)} ms${vsCold(pre.downtimeMs)} ` +
        `(${pre.preCopyRounds?.length ?? 0} rounds, stopped: ${pre.preCopyStop ?? "?"})`,
    );
  }
  const lazy = first("lazy");
  if (lazy?.resumeMs !== undefined) {
    lines.push(
      `lazy: running there after ${lazy.resumeMs.toFixed(0)} ms${vsCold(lazy.resumeMs)}` +
        `${lazy.completeMs === undefined ? "" : `; its last page after ${lazy.completeMs.toFixed(0)} ms`}`,
    );
  }
  return lines;
}
