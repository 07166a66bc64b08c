/**
 * `criu-lab-verify --progress`: the class's progress through the lab, for the instructor. Every
 * seat's hosts are asked `sudo criu-lab progress --json` (the host's records and what it finds
 * in the learner's home: host/criu_lab/progress.py), at most --parallel at once, and the
 * answers become one table of seats by exercise. The exercises are the host command's own
 * table (exercises.json), so both sides name the same ones. A view, not a verdict: learners
 * who are behind exit 0; a host that cannot be asked exits 3 (unreachable, stopped, or lab
 * files older than `progress`), one whose answer is unusable 1 (docs/design.md "Contracts").
 */
import type { NodeSSH } from "node-ssh";
import table from "../host/criu_lab/exercises.json";
import { CheckOutputError, ExitCode, worstExitCode } from "../contract/checks";
import { HostKeyFormatError, parseHostKey } from "../contract/hostKey";
import { isJsonObject } from "../contract/rules";
import type { HostRole } from "../contract/seats";
import { SeatTarget, limiter } from "./seats";
import { CommandTimeoutError, VerifyError, connect, runCommand } from "./session";
import { DEFAULT_STOPPED_AFTER_SECONDS, secretScrubber, stoppedHostHint } from "./verifier";

export interface Exercise {
  id: string;
  title: string;
  /** Words of the lab guide's heading: `criu-lab guide SECTION` on the host. */
  section: string;
  /** Needs a seat's second host (migration): "-" in a one-host seat unless done there. */
  twoHosts: boolean;
}

/** The lab's exercises in the guide's order, from the host command's table. */
export const EXERCISES: readonly Exercise[] = table.exercises.map((e) => ({
  id: e.id,
  title: e.title,
  section: e.section,
  twoHosts: "twoHosts" in e && e.twoHosts === true,
}));

export const PROGRESS_COMMAND = "sudo criu-lab progress --json";
/** The command searches the learner's home and reads a few images with crit: seconds. */
const COMMAND_TIMEOUT_SECONDS = 60;
/** `--progress` without `--timeout`: how long each host may take to answer, retries included. */
export const DEFAULT_PROGRESS_TIMEOUT_SECONDS = 30;

export type HostStatus = "ok" | "unreachable" | "not available" | "fail";

/** One host's answer. */
export interface HostProgress {
  seat: string;
  role: HostRole;
  host: string;
  port: number;
  status: HostStatus;
  exitCode: ExitCode;
  /** The exercises it reported done, with when (ISO 8601) and how. */
  done: Record<string, { at: string; how: string }>;
  /** The exercises it reported (a host with an older table knows fewer). */
  known: string[];
  error?: string;
}

export type Cell = "done" | "todo" | "n/a" | "unknown";

/** One seat's row: an exercise is done when either host did it. */
export interface SeatProgress {
  seat: string;
  cells: Record<string, Cell>;
  done: number;
  /** Exercises that count for this seat (two-host ones only in two-host seats). */
  total: number;
}

export interface ProgressReport {
  ok: boolean;
  exitCode: ExitCode;
  exercises: readonly Exercise[];
  seats: SeatProgress[];
  hosts: HostProgress[];
  durationMs: number;
}

export interface ProgressOptions {
  /** Each host's deadline: connecting (with retries) and answering. */
  timeoutSeconds: number;
  stoppedAfterSeconds?: number;
  parallel: number;
  onProgress?: (line: string) => void;
}

/**
 * The host's `criu-lab progress --json` (its last JSON line): the exercises it reports done
 * and those it knows. Throws a CheckOutputError when it is not that report.
 */
export function parseProgress(stdout: string): Pick<HostProgress, "done" | "known"> {
  const line = stdout
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.trim().startsWith("{"));
  let value: unknown;
  try {
    value = line === undefined ? undefined : JSON.parse(line);
  } catch {
    value = undefined;
  }
  if (!isJsonObject(value) || value.ok !== true || !Array.isArray(value.exercises)) {
    throw new CheckOutputError(
      "progress: no JSON object with ok: true and an exercises list in its output",
      stdout,
    );
  }
  const done: HostProgress["done"] = {};
  const known: string[] = [];
  for (const [i, e] of value.exercises.entries()) {
    if (!isJsonObject(e) || typeof e.id !== "string" || typeof e.done !== "boolean") {
      throw new CheckOutputError(`progress: exercises[${i}] has no id and done`, stdout);
    }
    known.push(e.id);
    if (e.done) {
      done[e.id] = {
        at: typeof e.at === "string" ? e.at : "",
        how: typeof e.how === "string" ? e.how : "",
      };
    }
  }
  return { done, known };
}

/** What the host's answer means: its exit, or argparse's refusal of an unknown command. */
export function judgeProgress(r: {
  stdout: string;
  stderr: string;
  code: number | null;
}): Pick<HostProgress, "status" | "exitCode" | "done" | "known" | "error"> {
  if (r.code === ExitCode.usage && /invalid choice: 'progress'/.test(r.stderr)) {
    return {
      status: "not available",
      exitCode: ExitCode.unreachable,
      done: {},
      known: [],
      error: "this host's criu-lab has no 'progress': its lab files are older than this verifier",
    };
  }
  try {
    if (r.code !== 0) throw new CheckOutputError(`progress exited ${r.code ?? "on a signal"}`, "");
    return { status: "ok", exitCode: ExitCode.ok, ...parseProgress(r.stdout) };
  } catch (err) {
    if (!(err instanceof CheckOutputError)) throw err;
    const stderr = r.stderr.trim().split("\n").slice(-3).join(" ");
    return {
      status: "fail",
      exitCode: ExitCode.labBroken,
      done: {},
      known: [],
      error: `'${PROGRESS_COMMAND}': ${err.message}${stderr ? `: ${stderr}` : ""}`,
    };
  }
}

async function askHost(
  target: SeatTarget,
  options: ProgressOptions,
  scrub: (t: string) => string,
): Promise<HostProgress> {
  const base = { seat: target.seat, role: target.role, host: target.host, port: target.port };
  let ssh: NodeSSH | undefined;
  try {
    const autoStop = target.autoStop;
    ssh = await connect({
      ...target,
      hostKey: target.hostKey === undefined ? undefined : parseHostKey(target.hostKey),
      deadline: Date.now() + options.timeoutSeconds * 1000,
      stopped:
        autoStop && autoStop.minutes > 0
          ? {
              // A view has a short deadline: half of it in silence says "stopped", with the
              // command that starts the host, rather than only "not reached".
              afterMs:
                Math.min(
                  options.stoppedAfterSeconds ?? DEFAULT_STOPPED_AFTER_SECONDS,
                  options.timeoutSeconds / 2,
                ) * 1000,
              message: stoppedHostHint(autoStop),
            }
          : undefined,
    });
    const r = await runCommand(ssh, PROGRESS_COMMAND, COMMAND_TIMEOUT_SECONDS);
    return { ...base, ...judgeProgress(r) };
  } catch (err) {
    const message = scrub(err instanceof Error ? err.message : String(err));
    const exitCode =
      err instanceof HostKeyFormatError
        ? ExitCode.usage
        : err instanceof VerifyError
          ? err.exitCode
          : err instanceof CommandTimeoutError
            ? ExitCode.labBroken
            : ExitCode.unreachable;
    return {
      ...base,
      status: exitCode === ExitCode.unreachable ? "unreachable" : "fail",
      exitCode,
      done: {},
      known: [],
      error:
        err instanceof CommandTimeoutError
          ? `'${PROGRESS_COMMAND}' timed out after ${err.seconds} s; it was stopped`
          : message,
    };
  } finally {
    ssh?.dispose();
  }
}

/** Seats in order, each exercise done, not yet, not for this seat, or unknown. */
export function seatRows(hosts: HostProgress[]): SeatProgress[] {
  const bySeat = new Map<string, HostProgress[]>();
  for (const h of hosts) bySeat.set(h.seat, [...(bySeat.get(h.seat) ?? []), h]);
  return [...bySeat]
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([seat, list]) => {
      const cells: Record<string, Cell> = {};
      let done = 0;
      let total = 0;
      for (const e of EXERCISES) {
        const forSeat = !e.twoHosts || list.length === 2;
        const cell: Cell = list.some((h) => e.id in h.done)
          ? "done"
          : !forSeat
            ? "n/a"
            : list.some((h) => h.status !== "ok" || !h.known.includes(e.id))
              ? "unknown"
              : "todo";
        cells[e.id] = cell;
        if (forSeat || cell === "done") total++;
        if (cell === "done") done++;
      }
      return { seat, cells, done, total };
    });
}

/** Asks every host, at most `parallel` at once. Never throws for a host: each is in the report. */
export async function collectProgress(
  targets: SeatTarget[],
  options: ProgressOptions,
): Promise<ProgressReport> {
  const started = Date.now();
  const scrub = secretScrubber([...new Set(targets.map((t) => t.privateKey))]);
  const limit = limiter(options.parallel);
  const hosts = await Promise.all(
    targets.map((t) =>
      limit(async () => {
        const h = await askHost(t, options, scrub);
        options.onProgress?.(
          `[seat ${t.seat} ${t.role}] ${h.status === "ok" ? `${Object.keys(h.done).length} done` : `${h.status}: ${h.error ?? ""}`}`,
        );
        return h;
      }),
    ),
  );
  const exitCode = worstExitCode(hosts.map((h) => h.exitCode));
  return {
    ok: exitCode === ExitCode.ok,
    exitCode,
    exercises: EXERCISES,
    seats: seatRows(hosts),
    hosts,
    durationMs: Date.now() - started,
  };
}

const MARK: Record<Cell, string> = { done: "\u2713", todo: "\u00b7", "n/a": "-", unknown: "?" };

/**
 * Seats by exercise (✓ done, · not yet, ? not known: the host was not reached, - not for a
 * one-host seat), how many are done, then the exercises' names, the hosts not reached and
 * the verdict.
 */
export function progressTable(report: ProgressReport): string {
  const header = ["seat", ...report.exercises.map((e) => e.id), "done"];
  const rows = report.seats.map((s) => [
    s.seat,
    ...report.exercises.map((e) => MARK[s.cells[e.id] ?? "unknown"]),
    `${s.done}/${s.total}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const problems = report.hosts
    .filter((h) => h.status !== "ok")
    .map(
      (h) =>
        `seat ${h.seat} host ${h.role} ${h.host}:${h.port}: ${h.status} (exit ${h.exitCode}): ${(h.error ?? "").split("\n")[0]}`,
    );
  const reached = report.hosts.filter((h) => h.status === "ok").length;
  // Done by every seat it is for (and by one at least: not "n/a" everywhere).
  const everyone = report.exercises.filter(
    (e) =>
      report.seats.some((s) => s.cells[e.id] === "done") &&
      report.seats.every((s) => s.cells[e.id] === "done" || s.cells[e.id] === "n/a"),
  );
  return [
    line(header),
    ...rows.map(line),
    "",
    "\u2713 done   \u00b7 not yet   ? host not reached   - needs a two-host seat",
    ...report.exercises.map(
      (e) => `  ${e.id.padEnd(Math.max(...report.exercises.map((x) => x.id.length)))}  ${e.title}`,
    ),
    ...(problems.length ? ["", ...problems] : []),
    "",
    `${reached} of ${report.hosts.length} host(s) answered; done by every seat: ` +
      `${everyone.length ? everyone.map((e) => e.id).join(", ") : "none yet"}; exit ${report.exitCode}`,
  ].join("\n");
}
