/**
 * Lab "hosts" made of network namespaces: two namespaces with their own
 * addresses on a veth link, each with its own sshd. An sshd may run in a mount namespace of
 * its own where some paths are hidden (an empty tmpfs over them) or replaced (a bind mount),
 * so the destination does not see the source's files and a missing carry would fail.
 *
 * Each sshd is entered with `nsenter --net=` (not `ip netns exec`: docs/design.md "Facts") and runs
 * in a private copy of the machine's mount namespace, so a host's processes and the CRIU that
 * dumps them share one: run both over that host's ssh (CRIU refuses to dump a process in
 * another mount namespace than its own, "doesn't have a proper root mount"). Each sshd runs under a
 * small subreaper: this machine's PID 1 reaps no orphans, and a zombie would hold the PID a
 * restore needs. Everything is named `clmig-<pid>-*`, so parallel runs do not collide, and
 * removed afterwards (processes by PID, namespaces and links by name).
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { generateKey, type KeyPair } from "../vm/keys";
import { run, type Ran, waitFor } from "./run";

/** PR_SET_CHILD_SUBREAPER, then runs argv and reaps every child (and orphan) until none is
 * left; SIGTERM goes on to argv. A Python program: `python3 -c REAPER ARGV...`. */
export const REAPER = `
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1)
main = os.fork()
if main == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: os.kill(main, signal.SIGTERM))
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        pass
`;

export interface SshdSpec {
  /** Port inside the host's namespace (each namespace has its own ports). */
  port: number;
  /** Paths this sshd (and what it starts) sees as empty directories. */
  hide?: string[];
  /** The target shows FILE instead (bind mount); keepOriginalAt: a path where the target's
   * original stays reachable (bound there first), e.g. for a wrapper that calls it. */
  replace?: Array<{ file: string; target: string; keepOriginalAt?: string }>;
}

export interface LabHost {
  name: string;
  netns: string;
  address: string;
  /** `ADDRESS ssh-ed25519 AAAA...`, for a known_hosts file. */
  knownHostsLine: string;
  /** Runs a shell script on this host over one of its sshds (root, port 22 by default). */
  ssh(script: string, user?: string, port?: number): Ran;
  /** Another sshd on this host (same network namespace, its own mount namespace). */
  addSshd(spec: SshdSpec): Promise<void>;
}

export interface LabPair {
  dir: string;
  source: LabHost;
  destination: LabHost;
  /** The key root (and the extra user, if any) logs in with on both hosts. */
  key: KeyPair;
  /** A known_hosts file with both hosts' keys. */
  knownHosts: string;
  remove(): Promise<void>;
}

const SUBNET = "10.77.0";

/**
 * Two hosts on one veth link: `source` (10.77.0.1) and `destination` (10.77.0.2), each with
 * an sshd on port 22 that lets root (and `users`) in with one generated key. `hide` is what
 * the destination's sshd must not see; `replace` what both sshds see replaced (e.g. a
 * machine's slow shell start-up files, which no lab host has, out of a benchmark's figures).
 */
export async function createLabPair(options: {
  dir: string;
  hide: string[];
  users?: string[];
  replace?: SshdSpec["replace"];
}): Promise<LabPair> {
  const { dir } = options;
  const tag = `clmig-${process.pid}`;
  const link = `cm${process.pid}`;
  const sshds: Array<{ child: ChildProcess; exited: Promise<void> }> = [];
  const netnsNames = [`${tag}-src`, `${tag}-dst`];
  const remove = async () => {
    for (const s of sshds) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill("SIGTERM");
        const timer = setTimeout(() => s.child.kill("SIGKILL"), 10_000);
        await s.exited;
        clearTimeout(timer);
      }
    }
    for (const ns of netnsNames) run("ip", ["netns", "del", ns]);
    run("ip", ["link", "del", `${link}a`]); // only left in the root namespace by a failed set-up
  };
  try {
    for (const ns of netnsNames) must(run("ip", ["netns", "add", ns]), `ip netns add ${ns}`);
    must(
      run("ip", ["link", "add", `${link}a`, "type", "veth", "peer", "name", `${link}b`]),
      "ip link add",
    );
    const key = generateKey(path.join(dir, "root_ed25519"), "root_ed25519");
    const hosts: LabHost[] = [];
    for (const [i, role] of (["src", "dst"] as const).entries()) {
      const netns = `${tag}-${role}`;
      const ifname = `${link}${i === 0 ? "a" : "b"}`;
      const address = `${SUBNET}.${i + 1}`;
      must(run("ip", ["link", "set", ifname, "netns", netns]), `ip link set ${ifname}`);
      const nsenter = (argv: string[]) => run("nsenter", [`--net=/run/netns/${netns}`, ...argv]);
      must(nsenter(["ip", "addr", "add", `${address}/24`, "dev", ifname]), "ip addr add");
      must(nsenter(["ip", "link", "set", ifname, "up"]), "ip link set up");
      must(nsenter(["ip", "link", "set", "lo", "up"]), "ip link set lo up");
      const hostDir = path.join(dir, role);
      fs.mkdirSync(path.join(hostDir, "authorized_keys"), { recursive: true, mode: 0o755 });
      for (const user of ["root", ...(options.users ?? [])]) {
        fs.writeFileSync(path.join(hostDir, "authorized_keys", user), `${key.publicKeyOpenssh}\n`, {
          mode: 0o644,
        });
      }
      const hostKey = generateKey(path.join(hostDir, "ssh_host_ed25519_key"), "host");
      const host: LabHost = {
        name: role,
        netns,
        address,
        knownHostsLine: `${address} ${hostKey.publicKeyOpenssh}`,
        ssh: (script, user = "root", port = 22) =>
          run("nsenter", [
            `--net=/run/netns/${netns}`,
            "ssh",
            ...sshOptions(key.path, path.join(dir, "known_hosts")),
            "-p",
            String(port),
            `${user}@${address}`,
            script,
          ]),
        addSshd: async (spec) => {
          sshds.push(
            await startSshd(netns, hostDir, hostKey.path, spec, ["root", ...(options.users ?? [])]),
          );
        },
      };
      hosts.push(host);
    }
    const knownHosts = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHosts, hosts.map((h) => `${h.knownHostsLine}\n`).join(""));
    await hosts[0].addSshd({ port: 22, replace: options.replace });
    await hosts[1].addSshd({ port: 22, hide: options.hide, replace: options.replace });
    return {
      dir,
      source: hosts[0],
      destination: hosts[1],
      key,
      knownHosts,
      remove,
    };
  } catch (e) {
    await remove();
    throw e;
  }
}

export function sshOptions(identity: string, knownHosts: string): string[] {
  return [
    "-i",
    identity,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
  ];
}

function must(ran: Ran, what: string): void {
  if (ran.code !== 0) throw new Error(`${what} exited ${ran.code}: ${ran.stderr}`);
}

async function startSshd(
  netns: string,
  hostDir: string,
  hostKey: string,
  spec: SshdSpec,
  users: string[],
): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const config = path.join(hostDir, `sshd_config_${spec.port}`);
  fs.writeFileSync(
    config,
    [
      `Port ${spec.port}`,
      "ListenAddress 0.0.0.0",
      `HostKey ${hostKey}`,
      `PidFile ${path.join(hostDir, `sshd_${spec.port}.pid`)}`,
      `AuthorizedKeysFile ${hostDir}/authorized_keys/%u`,
      "StrictModes no",
      "UsePAM no",
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      `AllowUsers ${users.join(" ")}`,
      // scp speaks SFTP (OpenSSH 9): a lab host's sshd serves it, so these do too.
      "Subsystem sftp internal-sftp",
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  execFileSync("/usr/sbin/sshd", ["-t", "-f", config]);
  // Mounts happen in a private mount namespace of this sshd only (unshare --propagation
  // private): the machine's mounts are untouched.
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const mounts = [
    ...(spec.hide ?? []).map((p) => `mount -t tmpfs -o mode=755 clmig ${q(p)}`),
    ...(spec.replace ?? []).flatMap((r) => [
      ...(r.keepOriginalAt
        ? [`: > ${q(r.keepOriginalAt)}`, `mount --bind ${q(r.target)} ${q(r.keepOriginalAt)}`]
        : []),
      `mount --bind ${q(r.file)} ${q(r.target)}`,
    ]),
  ];
  const script = [
    "set -e",
    ...mounts,
    `exec /usr/bin/python3 -c ${q(REAPER)} /usr/sbin/sshd -D -e -f ${q(config)}`,
  ].join("\n");
  const log = fs.openSync(path.join(hostDir, `sshd_${spec.port}.log`), "a");
  const child = spawn(
    "nsenter",
    [
      `--net=/run/netns/${netns}`,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      script,
    ],
    { stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitFor(`sshd on ${netns}:${spec.port}`, () => {
    if (child.exitCode !== null) {
      throw new Error(`sshd on ${netns}:${spec.port} exited; see ${hostDir}/sshd_${spec.port}.log`);
    }
    const ss = run("nsenter", [
      `--net=/run/netns/${netns}`,
      "ss",
      "-Hltn",
      `sport = :${spec.port}`,
    ]);
    return ss.stdout.trim() ? true : undefined;
  });
  return { child, exited };
}
