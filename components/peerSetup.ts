/**
 * A two-host seat's peer set-up: the one script that makes a lab host reach its peer by
 * name, used by `pulumi up` on EC2 (components/seat.ts) and by the local two-VM lab
 * (vm/pair.ts, `lab:vm --hosts 2`). No Pulumi here: the VM side loads it too.
 */
/** Marks the lines the peer set-up writes, so that a re-run replaces them. */
const PEER_MARK = "# criu-lab peer";

export interface PeerSetup {
  /** The peer's name (its Name tag), e.g. criu-lab-seat-03-b. */
  peerName: string;
  /** The peer's private address. */
  peerIp: string;
  /** The peer's host public key line. */
  hostKey: string;
  /** The seat's host-to-host private key (OpenSSH). */
  key: string;
}

/**
 * The shell script (run by the lab user, on stdin) that makes a seat's host reach its peer
 * by name with no trust on first use: the peer's name resolves to its private address
 * (/etc/hosts), its host key is known under that name and address (/etc/ssh/ssh_known_hosts,
 * for root's `sudo criu-lab migrate` and the user's own ssh), and the host-to-host key is
 * root's and the user's `~/.ssh/criu-lab-peer`, which ssh uses for that name
 * (/etc/ssh/ssh_config.d). The peer authorizes the key through its user-data. Idempotent:
 * lines it wrote before are replaced.
 */
export function peerSetupScript(p: PeerSetup): string {
  for (const [what, value, pattern] of [
    ["peer name", p.peerName, /^[A-Za-z0-9][A-Za-z0-9.-]*$/],
    ["peer address", p.peerIp, /^\d{1,3}(\.\d{1,3}){3}$/],
    ["peer host key", p.hostKey.trim(), /^ssh-ed25519 [A-Za-z0-9+/]+={0,3}$/],
  ] as const) {
    if (!pattern.test(value)) throw new Error(`peer set-up: bad ${what} '${value}'`);
  }
  const key = p.key.trim();
  if (
    !/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END OPENSSH PRIVATE KEY-----$/.test(
      key,
    )
  ) {
    throw new Error("peer set-up: the host-to-host key is not an OpenSSH private key");
  }
  return [
    "{",
    "set -euo pipefail",
    "umask 077",
    `peer=${p.peerName} ip=${p.peerIp} mark='${PEER_MARK}'`,
    'key="$(mktemp)"',
    'kept="$(mktemp)"',
    'trap \'rm -f "$key" "$kept"\' EXIT',
    `cat >"$key" <<'CRIU_LAB_PEER_KEY'`,
    key,
    "CRIU_LAB_PEER_KEY",
    // Root's for `sudo criu-lab migrate`, the user's for their own ssh.
    'install_key() { sudo install -d -m 700 -o "$2" -g "$3" "$1/.ssh" && sudo install -m 600 -o "$2" -g "$3" "$key" "$1/.ssh/criu-lab-peer"; }',
    'me="$(id -un)"',
    'install_key "$(getent passwd "$me" | cut -d: -f6)" "$me" "$(id -gn)"',
    "install_key /root root root",
    // Lines written before (an earlier address or key) go; cloud-init does not manage
    // /etc/hosts on Ubuntu's EC2 images (manage_etc_hosts is false), so the line stays.
    // Rewritten in place, not renamed (sed -i): /etc/hosts may be a bind mount (containers).
    "for file in /etc/hosts /etc/ssh/ssh_known_hosts; do",
    '  sudo touch "$file"',
    // The user's temporary file gets what root reads; cp then writes over the file in place.
    '  { sudo grep -v " $mark\\$" "$file" || true; } >"$kept"',
    '  sudo cp "$kept" "$file"',
    "done",
    'echo "$ip $peer $mark" | sudo tee -a /etc/hosts >/dev/null',
    `echo "$peer,$ip ${p.hostKey.trim()} $mark" | sudo tee -a /etc/ssh/ssh_known_hosts >/dev/null`,
    `printf '%s\\n' "$mark" "Host $peer $ip" '  IdentityFile ~/.ssh/criu-lab-peer' | sudo tee /etc/ssh/ssh_config.d/criu-lab-peer.conf >/dev/null`,
    "sudo chmod 644 /etc/hosts /etc/ssh/ssh_known_hosts /etc/ssh/ssh_config.d/criu-lab-peer.conf",
    'echo "criu-lab: $peer is $ip here; its host key is known; $me and root log in to it with ~/.ssh/criu-lab-peer"',
    "} </dev/null",
    "",
  ].join("\n");
}
