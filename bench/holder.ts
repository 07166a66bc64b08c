/**
 * The process the migration case moves: it holds SIZE MiB with random bytes in every page,
 * then idles. Untouched pages are never dumped and zero pages make any mode look fast, so
 * every byte is written, from os.urandom. Started detached, cwd /, with /dev/null for its
 * standard streams: the lab carries nothing for it and the hand procedure need not either.
 * Its ready file appears once the memory is written.
 */
import * as fs from "node:fs";

/** Marks the holder's command line, so a PID is killed only while it is still a holder. */
const TAG = "criu-lab-bench-holder";

const HOLDER = `# ${TAG}
import os, sys, time
n = int(sys.argv[1]) << 20
b = bytearray(n)
chunk = 1 << 20
for i in range(0, n, chunk):
    b[i:i + chunk] = os.urandom(chunk)
open(sys.argv[2], "w").close()
while True:
    time.sleep(0.2)
`;

/** Shell that starts a holder of SIZE MiB and prints its PID; READY appears when it is full. */
export function startHolder(sizeMiB: number, ready: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `cd / && { setsid /usr/bin/python3 -c ${q(HOLDER)} ${sizeMiB} ${q(ready)} </dev/null >/dev/null 2>&1 & echo $!; }`;
}

/** Ends PID only while it is still one of our holders (a PID can be reused). */
export function killHolder(pid: number): void {
  try {
    if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(TAG)) {
      process.kill(pid, "SIGKILL");
    }
  } catch {
    // already ended
  }
}

/** Shell that ends PID only while it is still one of our holders: for a holder on another
 * host (the VM case's guests), where killHolder cannot look. */
export function killHolderScript(pid: number): string {
  return `grep -qs ${TAG} /proc/${pid}/cmdline && kill -9 ${pid}; true`;
}
