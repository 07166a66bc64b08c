/** What a host suite needs of this machine, for cannotRun (tests/support/requirements.ts). */
import { needCommand, needRoot } from "../../support/requirements";
import { HOST } from "./lab-helpers";

const SETUP = "run `sudo npm run setup:host` first";

/** cannotRun's problems for a suite that needs root and what `setup:host` installs (TOOLS). */
export function needLabHost(...tools: Array<keyof typeof HOST>): Array<string | undefined> {
  return [needRoot(), ...tools.map((t) => needCommand(HOST[t], SETUP))];
}

/** cannotRun's problems for a suite that types into terminals: tmux, and sudo as the guide types it. */
export function needPanes(): Array<string | undefined> {
  return [needCommand("tmux"), needCommand("sudo")];
}

/**
 * The sshd prerequisites: every command a test sshd (and what reaches it) needs here, with
 * where it comes from. The one table: each suite that starts an sshd names what it uses of it
 * through needSshd.
 */
const SSHD_COMMANDS = {
  sshd: ["/usr/sbin/sshd", "apt-get install openssh-server"],
  ssh: ["ssh", "apt-get install openssh-client"],
  "ssh-keygen": ["ssh-keygen", "apt-get install openssh-client"],
  scp: ["scp", "apt-get install openssh-client"],
  sudo: ["sudo", "apt-get install sudo"],
  visudo: ["visudo", "apt-get install sudo"],
  useradd: ["useradd", "apt-get install passwd"],
  nsenter: ["nsenter", "apt-get install util-linux"],
  unshare: ["unshare", "apt-get install util-linux"],
  ip: ["ip", "apt-get install iproute2"],
} as const;

/** The ways the tests start an sshd, and what of the table each uses. */
const SSHD_STARTS = {
  /** startSshd (sshd.ts): our own sshd on 127.0.0.1 with a generated host key. */
  loopback: ["sshd", "ssh-keygen"],
  /** createTestUser (sshd.ts): a user with a generated key and passwordless sudo. */
  user: ["useradd", "sudo", "visudo", "ssh-keygen"],
  /** createLabPair (netlab/netns.ts): a host per network namespace (ip), its sshd entered
   * with nsenter in a mount namespace of its own (unshare), reached with ssh. */
  netns: ["sshd", "ssh-keygen", "ssh", "ip", "nsenter", "unshare"],
} as const;

/** cannotRun's problems for a suite of two migration hosts (migration-hosts.ts): the lab's
 * CRIU and crit, the pair's sshds and, with `user`, a test user. */
export function needMigrationHosts({ user = false } = {}): Array<string | undefined> {
  return [...needLabHost("criu", "crit"), ...needSshd("netns", ...(user ? ["user" as const] : []))];
}

export type SshdNeed = keyof typeof SSHD_COMMANDS | keyof typeof SSHD_STARTS;

/** cannotRun's problems for a suite that starts an sshd: root, and the table's commands that
 * NEEDS name (a way of starting one, or a command of the table). */
export function needSshd(...needs: SshdNeed[]): Array<string | undefined> {
  const commands = new Set<keyof typeof SSHD_COMMANDS>(
    needs.flatMap((n): ReadonlyArray<keyof typeof SSHD_COMMANDS> =>
      n in SSHD_STARTS
        ? SSHD_STARTS[n as keyof typeof SSHD_STARTS]
        : [n as keyof typeof SSHD_COMMANDS],
    ),
  );
  return [
    needRoot(),
    ...[...commands].map((c) => {
      const [command, hint] = SSHD_COMMANDS[c];
      return needCommand(command, hint);
    }),
  ];
}
