/**
 * `criu-lab migrate --mode lazy --fault lazy-kill` between the pair's two kernels: the
 * destination's `criu lazy-pages` killed as soon as the counter runs there. What the lab must
 * do then (host/criu_lab/lazy.py): the counter running on a again, same PID, from the next
 * number; the incomplete copy on b ended by its PID; the evidence kept on both hosts; exit 1.
 */
import { expect } from "vitest";
import { shellQuote } from "../../../contract/checks";
import { LAB_USER } from "../../../vm/lab";
import { onVm, PAIR, PID_LEAD, type PairRun } from "../../../vm/pair";

/** What the fault's run reports (host/criu_lab/lazy.py, faults.py). */
interface LazyKilled {
  ok: boolean;
  error?: string;
  pid: number;
  restoredPid?: number;
  lastBeforeDump?: number;
  lazy?: {
    dumpExit: number;
    lazyPagesPid: number | null;
    lazyPagesExit: number | null;
    source: string;
    destination: string;
    evidence: Record<string, string>;
  };
  fault?: {
    name: string;
    causedAt: string | null;
    outcome: string;
    lab: string;
    processHere: string | null;
    evidence: Record<string, string>;
  };
}

const counts = (text: string) => [...text.matchAll(/^Counter: (\d+)$/gm)].map((m) => Number(m[1]));

/** Runs the fault a -> b on a counter started for it on a; checks and logs what came of it. */
export async function lazyKill(pair: PairRun, log: (line: string) => void): Promise<void> {
  const { a, b } = pair.hosts;
  const sh = (vm: typeof a, command: string, timeout = 120) =>
    onVm(vm, `sudo sh -c ${shellQuote(command)}`, timeout);
  // The counter as the guide starts it: detached, its output in a directory b does not have.
  const started = await sh(
    a,
    `${PID_LEAD}; d=$(mktemp -d /var/tmp/lazy-kill-XXXXXX); cd $d; ` +
      "setsid /usr/bin/python3 /usr/local/lib/criu-lab/counter.py --interval 0.5 " +
      "</dev/null >$d/counter.log 2>&1 & echo $! $d",
  );
  const [pidText, dir] = started.stdout.trim().split(" ");
  const pid = Number(pidText);
  expect(pid, started.stderr).toBeGreaterThan(1);
  const logFile = `${dir}/counter.log`;
  try {
    await waitFor(async () => counts((await sh(a, `cat ${logFile}`)).stdout).length >= 3);
    const run = await onVm(
      a,
      `sudo criu-lab migrate --to ${LAB_USER}@${PAIR.b.name} --pid ${pid} --mode lazy ` +
        "--fault lazy-kill --json",
      600,
    );
    let r: LazyKilled;
    try {
      r = JSON.parse(run.stdout) as LazyKilled;
    } catch {
      throw new Error(`no JSON (exit ${run.code}): ${(run.stderr || run.stdout).slice(-600)}`);
    }
    log(`lazy-kill: exit ${run.code}, ${JSON.stringify({ lazy: r.lazy, fault: r.fault })}`);
    log(`lazy-kill error: ${r.error}`);
    expect(run.code, r.error).toBe(1);
    expect(r.ok).toBe(false);
    expect(r.fault?.name).toBe("lazy-kill");
    expect(r.fault?.causedAt).toMatch(/criu lazy-pages on criu-lab-vm-b killed/);
    expect(r.fault?.outcome, r.fault?.lab).toBe("failed, resumed here");
    expect(r.fault?.processHere).toBe("running");
    expect(r.restoredPid).toBe(pid);
    // The daemon did not end as after a whole transfer: killed (128 + 9), or failed.
    expect(r.lazy?.lazyPagesExit).not.toBe(0);
    expect(r.lazy?.destination).toMatch(
      new RegExp(`^PID ${pid}(, the incomplete copy, killed| was already gone)`),
    );
    // On a: the same PID, not stopped, counting on from the next number.
    const last = r.lastBeforeDump ?? NaN;
    await waitFor(async () =>
      counts((await sh(a, `cat ${logFile}`)).stdout).some((n) => n > last + 1),
    );
    const after = counts((await sh(a, `cat ${logFile}`)).stdout).filter((n) => n > last);
    expect(after[0]).toBe(last + 1);
    const state = await sh(a, `ps -o stat= -p ${pid}`);
    expect(state.code).toBe(0);
    expect(state.stdout.trim()).not.toMatch(/^T/);
    // On b: nothing runs with the restored PID.
    expect((await sh(b, `ps -o pid= -p ${pid}`)).code).toBe(1);
    // The evidence, where the JSON says: dump.log here, restore.log and lazy-pages.log there.
    const ev = r.fault?.evidence ?? {};
    expect((await sh(a, `test -s ${ev.dumpLog}`)).code, ev.dumpLog).toBe(0);
    // The images here, moved off RAM into the run's directory once the process ran here again.
    expect(ev.imagesHere, "imagesHere").toMatch(/^\/var\/log\/criu-lab\//);
    expect((await sh(a, `test -d ${ev.imagesHere}`)).code, ev.imagesHere).toBe(0);
    for (const key of ["restoreLogThere", "lazyPagesLogThere"]) {
      const path = (ev[key] ?? "").replace(/^[^:]+:/, "");
      expect(ev[key], key).toMatch(new RegExp(`^${PAIR.b.name}:/`));
      expect((await sh(b, `test -s ${path}`)).code, ev[key]).toBe(0);
    }
    const tailLog = await sh(b, `tail -n 3 ${(ev.lazyPagesLogThere ?? "").replace(/^[^:]+:/, "")}`);
    log(`lazy-kill: the end of lazy-pages.log on b:\n${tailLog.stdout}`);
  } finally {
    // The counter ends by its PID, only while it is still the counter.
    await sh(a, `grep -q counter.py /proc/${pid}/cmdline && kill ${pid}; rm -rf ${dir}; true`);
    await sh(b, `rm -rf ${dir}; true`);
  }
}

async function waitFor(ok: () => Promise<boolean>, seconds = 60): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`not within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
