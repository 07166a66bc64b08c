/**
 * A two-host seat's peer set-up (components/peerSetup.ts), run for real: in a
 * private mount and network namespace (this machine's /etc/hosts, /etc/ssh and /root are
 * replaced there by scratch copies), the script as `pulumi up` sends it, then a real sshd as
 * the peer on 127.0.0.1:22 of that namespace. Plain `ssh root@criu-lab-seat-09-b` must then
 * reach it by name, with the host key checked strictly and the host-to-host key picked by
 * ssh's own configuration, as `sudo criu-lab migrate --to ubuntu@criu-lab-seat-09-b` does;
 * a peer presenting another host key must be refused. A second run replaces its lines.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerSetupScript } from "../../components/peerSetup";
import { cannotRun } from "../support/requirements";
import { needSshd } from "./support/needs";

const PEER = "criu-lab-seat-09-b";

// Its own sshd as the peer, in a private network namespace (unshare, ip), reached with ssh.
const missing = cannotRun(
  "the peer set-up of a two-host seat against a real sshd",
  needSshd("sshd", "ssh", "ssh-keygen", "sudo", "unshare", "ip"),
);

describe.skipIf(missing)("peerSetupScript on a real host, against a real sshd", () => {
  let dir: string;
  const key = (name: string) => {
    const path = join(dir, name);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path]);
    return {
      path,
      pub: readFileSync(`${path}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" "),
    };
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "criulab-peer-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Runs the set-up (twice when asked) in a fresh namespace, starts sshd with `hostKey` as
   * the peer, and tries the peer by name. Returns the namespace's stdout and ssh's exit code.
   */
  function tryPeer(opts: { hostKey: string; twice?: boolean }) {
    const hostKey = key(`${opts.hostKey}-host`);
    const peerKey = key(`${opts.hostKey}-peer`);
    const presented = opts.hostKey === "wrong" ? key("impostor-host") : hostKey;
    const setup = peerSetupScript({
      peerName: PEER,
      peerIp: "127.0.0.1",
      hostKey: hostKey.pub,
      key: readFileSync(peerKey.path, "utf8"),
    });
    const scriptFile = join(dir, `${opts.hostKey}-setup.sh`);
    writeFileSync(scriptFile, setup);
    writeFileSync(join(dir, `${opts.hostKey}-authorized_keys`), `${peerKey.pub}\n`);
    const sshdConfig = join(dir, `${opts.hostKey}-sshd_config`);
    writeFileSync(
      sshdConfig,
      [
        "ListenAddress 127.0.0.1",
        "Port 22",
        `HostKey ${presented.path}`,
        `AuthorizedKeysFile ${join(dir, `${opts.hostKey}-authorized_keys`)}`,
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        `PidFile ${join(dir, `${opts.hostKey}-sshd.pid`)}`,
        "",
      ].join("\n"),
    );
    const scratch = join(dir, `${opts.hostKey}-ns`);
    // Inside the namespaces: scratch copies of what the set-up writes, lo up, the set-up,
    // sshd (ended by its PID on exit), then ssh by name with nothing but ssh's own config.
    const inside = [
      "set -euo pipefail",
      `scratch=${scratch}`,
      'mkdir -p "$scratch/root"',
      'cp /etc/hosts "$scratch/hosts" && mount --bind "$scratch/hosts" /etc/hosts',
      'cp -a /etc/ssh "$scratch/ssh" && mount --bind "$scratch/ssh" /etc/ssh',
      "rm -f /etc/ssh/ssh_known_hosts /etc/ssh/ssh_config.d/criu-lab-peer.conf",
      'mount --bind "$scratch/root" /root',
      "ip link set lo up",
      `bash -s <${scriptFile}`,
      ...(opts.twice ? [`bash -s <${scriptFile} >/dev/null`] : []),
      "mkdir -p /run/sshd",
      `/usr/sbin/sshd -D -e -f ${sshdConfig} 2>"$scratch.sshd.log" & sshd=$!`,
      'trap \'kill "$sshd" 2>/dev/null || true; wait "$sshd" 2>/dev/null || true\' EXIT',
      "for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null && break; sleep 0.1; done",
      `echo "hosts: $(grep -c ' ${PEER} ' /etc/hosts)"`,
      `echo "known: $(grep -c '^${PEER},127.0.0.1 ' /etc/ssh/ssh_known_hosts)"`,
      'echo "key mode: $(stat -c %a /root/.ssh/criu-lab-peer)"',
      "rc=0",
      `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5 root@${PEER} echo peer-ok 2>"$scratch.ssh.err" || rc=$?`,
      'echo "ssh exit: $rc"',
      'cat "$scratch.ssh.err"',
    ].join("\n");
    const run = spawnSync(
      "unshare",
      ["--mount", "--net", "--propagation", "private", "bash", "-c", inside],
      { encoding: "utf8", timeout: 60_000 },
    );
    if (run.status !== 0) {
      throw new Error(`namespace run failed (${run.status}): ${run.stderr}\n${run.stdout}`);
    }
    return run.stdout;
  }

  it("makes the peer reachable by name, key checked, with the host-to-host key", () => {
    const out = tryPeer({ hostKey: "good" });
    expect(out).toContain("hosts: 1");
    expect(out).toContain("known: 1");
    expect(out).toContain("key mode: 600");
    expect(out).toContain(`criu-lab: ${PEER} is 127.0.0.1 here`);
    expect(out).toContain("peer-ok");
    expect(out).toContain("ssh exit: 0");
  });

  it("replaces its own lines when it runs again (a replaced peer)", () => {
    const out = tryPeer({ hostKey: "again", twice: true });
    expect(out).toContain("hosts: 1");
    expect(out).toContain("known: 1");
    expect(out).toContain("ssh exit: 0");
  });

  it("refuses a peer presenting another host key: no trust on first use", () => {
    const out = tryPeer({ hostKey: "wrong" });
    expect(out).not.toContain("peer-ok");
    expect(out).toContain("ssh exit: 255");
    expect(out).toMatch(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/);
  });
});
