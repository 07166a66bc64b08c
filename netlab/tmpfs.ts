/**
 * RAM of its own for each lab host (netns.ts): a tmpfs mounted at one path on each host, in
 * that host's sshd's own mount namespace, so each end sees its own RAM there, as two machines
 * do. The namespace hosts otherwise share the machine's /dev/shm, and a migration's placement
 * rightly puts the images on disk then (docs/design.md "Where a migration's images live"):
 * CRIU_LAB_RAM_DIR pointed at this path lets them sit in RAM on both ends. Shared by the host
 * tests and the bench.
 */
import type { Ran } from "./run";

/** Runs a shell script on one host (e.g. `(s) => pair.source.ssh(s)`). */
export type HostShell = (script: string) => Ran;

/**
 * A tmpfs of SIZE (mount's `size=`, e.g. "256m") at DIR on each of ENDS; throws, unmounting
 * what it mounted, when one fails. Returns the unmount, for a `finally`.
 */
export function ownTmpfs(ends: HostShell[], dir: string, size: string): () => void {
  if (!/^[1-9]\d*[kmg]$/.test(size)) {
    throw new Error(`tmpfs size '${size}': expected a whole number with k, m or g (e.g. 256m)`);
  }
  const mounted: HostShell[] = [];
  const unmount = () => {
    for (const ssh of mounted.splice(0)) ssh(`umount '${dir}'`);
  };
  for (const ssh of ends) {
    const ran = ssh(`mkdir -p '${dir}' && mount -t tmpfs -o size=${size} clmig-ram '${dir}'`);
    if (ran.code !== 0) {
      unmount();
      throw new Error(`mounting a tmpfs at ${dir} exited ${ran.code}: ${ran.stderr}`);
    }
    mounted.push(ssh);
  }
  return unmount;
}
