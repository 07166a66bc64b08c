/**
 * The floor: what the lab automates, done by hand with good choices, as the shell a person
 * would type. Each function returns that script; the bench runs it (on the source host for a
 * migration) and reads its marks, so the figures and this documentation cannot drift apart.
 *
 * Good choices: images in RAM (/dev/shm) on both ends; SSH with aes128-gcm@openssh.com (AES-NI:
 * 1.68 s for 1 GiB on loopback against chacha20-poly1305's 2.96 s, docs/design.md "Measured
 * here") over a master connection opened before the freeze, as the lab's is; CRIU's default
 * verbosity (the lab logs at -v4). Only SSH between the hosts, as the lab's security group
 * allows: the page server is reached through the master's port forward, as the lab does.
 */

export const CRIU = "/usr/local/sbin/criu";

/** How the source reaches the destination: its address and SSH's key and known_hosts. */
export interface Peer {
  address: string;
  identity: string;
  knownHosts: string;
  /** The master connection's control socket (a short path: socket names are limited). */
  control: string;
}

/** `echo mark NAME <ns>`: a point on the script's own clock (parsed by readMarks). */
const mark = (name: string) => `echo "mark ${name} $(date +%s%N)"`;

function ssh(p: Peer): string {
  return [
    "ssh -c aes128-gcm@openssh.com",
    `-i ${p.identity} -o IdentitiesOnly=yes -o BatchMode=yes`,
    `-o UserKnownHostsFile=${p.knownHosts} -o StrictHostKeyChecking=yes`,
    `-o ControlPath=${p.control}`,
  ].join(" ");
}

/** Runs COMMAND on the destination over the master connection. */
const there = (p: Peer, command: string) => `${ssh(p)} root@${p.address} '${command}'`;

/** Opened before the freeze, so no handshake happens while the process is frozen. */
const openMaster = (p: Peer) =>
  `${ssh(p)} -o ControlMaster=yes -o ControlPersist=yes -N -f root@${p.address}`;
const closeMaster = (p: Peer) => `${ssh(p)} -O exit root@${p.address} 2>/dev/null`;

/** Both "hosts" share one kernel here: the dumped PID must be reaped before the destination
 * can restore it (docs/design.md "Facts"); the lab waits for it too. Instant between machines. */
const pidFree = (pid: number) => `while [ -e /proc/${pid} ]; do sleep 0.01; done`;

/**
 * A training checkpoint: dump the job without stopping it, into RAM. With PREV (the previous
 * checkpoint's directory), an incremental one: pages unchanged since then are not written.
 */
export function checkpointByHand(pid: number, images: string, prev?: string): string {
  const incremental = prev ? ` --track-mem --prev-images-dir ${prev}` : "";
  return [
    "set -e",
    `mkdir -p ${images}`,
    mark("start"),
    `${CRIU} dump --leave-running -t ${pid} -D ${images}${incremental}`,
    mark("dumped"),
  ].join("\n");
}

/** After the dump: the images (all, or what the page server did not take) copied over SSH into
 * RAM there, and the restore there once the PID is free. */
function shipAndRestore(p: Peer, pid: number, images: string): string[] {
  return [
    mark("dumped"),
    `tar -C ${images} -cf - . | ${there(p, `tar -C ${images} -xf -`)}`,
    mark("copied"),
    pidFree(pid),
    there(p, `${CRIU} restore -d -D ${images}`),
    mark("restored"),
    closeMaster(p),
  ];
}

/** Cold migration: dump into RAM, copy the images over SSH into RAM there, restore there. */
export function coldByHand(p: Peer, pid: number, images: string): string {
  return [
    "set -e",
    openMaster(p),
    `mkdir -p ${images}`,
    there(p, `mkdir -p ${images}`),
    mark("start"),
    `${CRIU} dump -t ${pid} -D ${images}`,
    ...shipAndRestore(p, pid, images),
  ].join("\n");
}

/**
 * Page-server migration: `criu page-server` there (into RAM), the dump streams the pages to it
 * through the master's port forward, then the rest of the images is copied and restored there.
 * PORT is free on both hosts.
 */
export function pageServerByHand(p: Peer, pid: number, images: string, port: number): string {
  return [
    "set -e",
    openMaster(p),
    `mkdir -p ${images}`,
    there(
      p,
      `mkdir -p ${images} && ${CRIU} page-server -D ${images} --address 127.0.0.1 --port ${port} -d -o page-server.log`,
    ),
    `${ssh(p)} -O forward -L 127.0.0.1:${port}:127.0.0.1:${port} root@${p.address}`,
    mark("start"),
    `${CRIU} dump -t ${pid} -D ${images} --page-server --address 127.0.0.1 --port ${port}`,
    ...shipAndRestore(p, pid, images),
  ].join("\n");
}

/**
 * The marks a script printed, as ms from its first: {total, and each step: the time from the
 * mark before it}. Throws naming the output when there are fewer than two marks.
 */
export function readMarks(stdout: string): { total: number; steps: Record<string, number> } {
  const marks = [...stdout.matchAll(/^mark (\S+) (\d+)$/gm)].map((m) => ({
    name: m[1],
    ns: BigInt(m[2]),
  }));
  if (marks.length < 2) throw new Error(`the hand procedure printed no marks:\n${stdout}`);
  const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
  const steps: Record<string, number> = {};
  for (let i = 1; i < marks.length; i++) steps[marks[i].name] = ms(marks[i - 1].ns, marks[i].ns);
  return { total: ms(marks[0].ns, marks[marks.length - 1].ns), steps };
}

/**
 * The game server checkpointed and restored under its players: the server and CLIENTS
 * players started detached (this script is their parent: it reaps the dumped server, so its
 * PID is free), a second of play, the dump with --tcp-established and the network lock LOCK
 * (the doctor's choice, as the lab's), the restore at once, a second of play, then each
 * player's own report (its longest wait for a reply). Everything it started ends by PID.
 */
export function gameByHand(
  programs: { server: string; client: string },
  clients: number,
  dir: string,
  lock: string,
): string {
  const py = "/usr/bin/python3";
  return [
    "set -e",
    `mkdir -p ${dir}/images && cd ${dir}`,
    `setsid ${py} ${programs.server} --port 0 </dev/null >server.log 2>&1 & server=$!`,
    `until grep -q '^listening on' server.log; do sleep 0.05; done`,
    `port=$(sed -n 's/^listening on 127.0.0.1:\\([0-9]*\\)$/\\1/p' server.log)`,
    `players=""`,
    `for i in $(seq ${clients}); do`,
    `  setsid ${py} ${programs.client} --port $port --name player-$i </dev/null >client-$i.log 2>&1 &`,
    `  players="$players $!"`,
    `done`,
    `trap 'kill -9 $players 2>/dev/null; [ -f restored.pid ] && kill -9 $(cat restored.pid) 2>/dev/null; true' EXIT`,
    `until [ "$(grep -l '^joined' client-*.log 2>/dev/null | wc -l)" -eq ${clients} ]; do sleep 0.05; done`,
    "sleep 1",
    mark("start"),
    `${CRIU} dump -t $server -D images --tcp-established --network-lock ${lock}`,
    mark("dumped"),
    `wait $server || true`,
    `${CRIU} restore -d -D images --tcp-established --pidfile ${dir}/restored.pid`,
    mark("restored"),
    "sleep 1",
    `kill -USR1 $players`,
    `until [ "$(grep -l '^report' client-*.log | wc -l)" -eq ${clients} ]; do sleep 0.05; done`,
    `grep -h '^report' client-*.log`,
  ].join("\n");
}
