/**
 * A class in one stack: the `seats` stack output read strictly, and every seat's
 * hosts verified concurrently with bounded parallelism. Each host goes through verifyLab()
 * unchanged (connect, cloud-init, `criu-lab check`, `criu-lab demo`); in a two-host seat host
 * `a` then migrates the counter to its peer `b` (`criu-lab scenario run migration`), a check
 * defined here, apart from REMOTE_CHECKS, because a host may not have that command yet: such
 * a host reports "not available" instead of failing. The result is one report, a table and
 * one exit code: the worst of the seats' (see worstExitCode).
 */
import type { NodeSSH } from "node-ssh";
import { CheckOutputError, ExitCode, RemoteCheck, worstExitCode } from "../contract/checks";
import { parseHostKey } from "../contract/hostKey";
import { lastJsonObject } from "../contract/rules";
import {
  HostRole,
  MigrationMode,
  RanMode,
  SeatOutputsError,
  isInstanceId,
  migrationCheck,
  migrationFacts,
  parseSeatOutputs,
  regionOf,
  selectSeat,
} from "../contract/seats";
import { CommandTimeoutError, VerifyError, connect, runCommand } from "./session";
import { VerifyOptions, VerifyReport, VerifyTarget, secretScrubber, verifyLab } from "./verifier";

/** Concurrent SSH verifications unless told otherwise (`--parallel N`). */
export const DEFAULT_PARALLEL = 8;
export const MAX_PARALLEL = 64;

/** One host to verify, with the seat and role it belongs to. */
export interface SeatTarget extends VerifyTarget {
  seat: string;
  role: HostRole;
  /** On host `a` of a two-host seat: how `a` reaches `b` (`user@name`) for the migration. */
  peer?: string;
  /**
   * On host `a`: the migration's `--mode`, the seat's `migration.modeAsked`; absent for a
   * stack from before it, whose hosts get the scenario's default.
   */
  migrationMode?: MigrationMode;
}

/**
 * The verification targets of a stack's outputs (parsed JSON), in seat order, port 22.
 * In a two-host seat, `a`'s peer is `b` by its name: the migration runs between the hosts'
 * private addresses (the security group admits the peer ports only from itself), and the
 * infrastructure makes that name resolve on `a`.
 */
export function targetsFromStackOutputs(
  outputs: unknown,
  options: { seat?: string } = {},
): SeatTarget[] {
  const region = regionOf(outputs);
  return selectSeat(parseSeatOutputs(outputs), options.seat).flatMap((s) =>
    s.hosts.map((h) => {
      const peer = h.role === "a" ? s.hosts[1] : undefined;
      return {
        seat: s.seat,
        role: h.role,
        host: h.publicIp,
        port: 22,
        user: s.sshUser,
        privateKey: s.privateKey,
        hostKey: h.knownHostsLine,
        // What verifyLab says of a host that never answers: stopped, and how to start it.
        ...(s.autoStopMinutes === undefined
          ? {}
          : {
              autoStop: {
                minutes: s.autoStopMinutes,
                ...(isInstanceId(h.instanceId) ? { instanceId: h.instanceId } : {}),
                ...(region ? { region } : {}),
              },
            }),
        ...(peer ? { peer: `${s.sshUser}@${peer.name}` } : {}),
        ...(peer && s.migration ? { migrationMode: s.migration.modeAsked } : {}),
      };
    }),
  );
}

export type MigrationStatus = "pass" | "fail" | "not available" | "not run";

export interface MigrationReport {
  status: MigrationStatus;
  /** 0 for pass and (unless required) "not available"; else 1 or 3 (docs/design.md "Contracts"). */
  exitCode: ExitCode;
  from: string;
  to: string;
  /** The `--mode` passed (the seat's `migration.modeAsked`); absent: none, the scenario's default. */
  modeAsked?: MigrationMode;
  /** The mode that ran (or was running when it failed), from the scenario's result. */
  mode?: RanMode;
  /** The process's downtime, from the scenario's result. */
  downtimeMs?: number;
  ms: number;
  error?: string;
  /** The scenario's own JSON object, as it printed it. */
  result?: Record<string, unknown>;
}

export interface SeatHostReport {
  role: HostRole;
  report: VerifyReport;
}

export interface SeatReport {
  seat: string;
  ok: boolean;
  exitCode: ExitCode;
  hosts: SeatHostReport[];
  /** null in a one-host seat. */
  migration: MigrationReport | null;
}

export interface SeatsReport {
  ok: boolean;
  exitCode: ExitCode;
  parallel: number;
  seats: SeatReport[];
  durationMs: number;
}

export interface SeatsOptions {
  /** Each host's overall deadline (verifyLab's), and the migration's. */
  timeoutSeconds: number;
  /** A host with auto-stop that never answers counts as stopped after this (verifyLab's). */
  stoppedAfterSeconds?: number;
  /** Hosts verified at the same time (default DEFAULT_PARALLEL). */
  parallel?: number;
  /** Progress lines, prefixed `[seat 01 a]`. */
  onProgress?: (line: string) => void;
  /** For tests: replaces some of REMOTE_CHECKS, as verifyLab's option does. */
  checks?: VerifyOptions["checks"];
  /** For tests: replaces the migration check. */
  migration?: (peer: string, mode?: MigrationMode) => RemoteCheck;
  /**
   * When true, a host without the migration scenario fails its seat (3: not installed).
   * Off by default: a host set up by an older lab has no such scenario ("not available").
   */
  requireMigration?: boolean;
}

/** A semaphore: at most `n` bodies run at once. */
function limiter(n: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(body: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await body();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/**
 * Verifies every target, at most `parallel` hosts at once, and in two-host seats the
 * migration from `a` to `b` once both pass. Never throws for a host's failure: every
 * outcome is in the report; the others still run and report. Bad options or targets
 * (none, duplicates, a seat with `b` but no `a`) throw a SeatOutputsError (2).
 */
export async function verifySeats(
  targets: SeatTarget[],
  options: SeatsOptions,
): Promise<SeatsReport> {
  const started = Date.now();
  const parallel = options.parallel ?? DEFAULT_PARALLEL;
  if (!Number.isSafeInteger(parallel) || parallel < 1 || parallel > MAX_PARALLEL) {
    throw new SeatOutputsError(
      `--parallel: '${parallel}' is not a whole number from 1 to ${MAX_PARALLEL}`,
      ExitCode.usage,
    );
  }
  const bySeat = groupTargets(targets);
  const scrub = secretScrubber([...new Set(targets.map((t) => t.privateKey))]);
  const limit = limiter(parallel);

  const seats = await Promise.all(
    [...bySeat].map(async ([seat, hosts]): Promise<SeatReport> => {
      const reports = await Promise.all(
        hosts.map(async (target): Promise<SeatHostReport> => {
          const prefix = `[seat ${seat} ${target.role}] `;
          const report = await limit(() =>
            verifyLab(target, {
              timeoutSeconds: options.timeoutSeconds,
              stoppedAfterSeconds: options.stoppedAfterSeconds,
              onProgress: options.onProgress && ((l) => options.onProgress?.(prefix + l)),
              checks: options.checks,
            }),
          );
          return { role: target.role, report };
        }),
      );
      const a = hosts[0];
      let migration: MigrationReport | null = null;
      if (hosts.length === 2 && a) {
        const to = a.peer ?? `${a.user}@${hosts[1]?.host ?? "?"}`;
        const from = `${a.user}@${a.host}:${a.port}`;
        if (reports.every((r) => r.report.ok)) {
          const check = (options.migration ?? migrationCheck)(to, a.migrationMode);
          migration = await limit(() =>
            runMigration(a, check, { from, to, modeAsked: a.migrationMode }, options, (l) =>
              options.onProgress?.(scrub(`[seat ${seat} a->b] ${l}`)),
            ),
          );
        } else {
          migration = {
            status: "not run",
            exitCode: ExitCode.ok,
            from,
            to,
            ms: 0,
            error: "not run: a host of the seat failed its checks",
          };
        }
      }
      const exitCode = worstExitCode([
        ...reports.map((r) => r.report.exitCode),
        ...(migration ? [migration.exitCode] : []),
      ]);
      return { seat, ok: exitCode === ExitCode.ok, exitCode, hosts: reports, migration };
    }),
  );
  const exitCode = worstExitCode(seats.map((s) => s.exitCode));
  // The host reports are scrubbed by verifyLab; this pass covers the migration's output.
  return JSON.parse(
    scrub(
      JSON.stringify({
        ok: exitCode === ExitCode.ok,
        exitCode,
        parallel,
        seats,
        durationMs: Date.now() - started,
      } satisfies SeatsReport),
    ),
  ) as SeatsReport;
}

/** Targets grouped per seat in seat order, `a` before `b`; rejects what cannot be a class. */
function groupTargets(targets: SeatTarget[]): Map<string, SeatTarget[]> {
  if (targets.length === 0) {
    throw new SeatOutputsError("no seats to verify", ExitCode.usage);
  }
  const bySeat = new Map<string, SeatTarget[]>();
  for (const t of [...targets].sort(
    (x, y) => Number(x.seat) - Number(y.seat) || x.role.localeCompare(y.role),
  )) {
    const list = bySeat.get(t.seat) ?? [];
    if (list.some((o) => o.role === t.role)) {
      throw new SeatOutputsError(`seat ${t.seat} has two hosts '${t.role}'`, ExitCode.usage);
    }
    list.push(t);
    bySeat.set(t.seat, list);
  }
  for (const [seat, list] of bySeat) {
    if (list[0]?.role !== "a") {
      throw new SeatOutputsError(`seat ${seat} has a host 'b' but no host 'a'`, ExitCode.usage);
    }
  }
  return bySeat;
}

async function runMigration(
  a: SeatTarget,
  check: RemoteCheck,
  { from, to, modeAsked }: { from: string; to: string; modeAsked?: MigrationMode },
  options: SeatsOptions,
  progress: (line: string) => void,
): Promise<MigrationReport> {
  const t0 = Date.now();
  const base = { from, to, ...(modeAsked ? { modeAsked } : {}) };
  progress(`... ${check.name} to ${to}`);
  let ssh: NodeSSH | undefined;
  let report: MigrationReport;
  try {
    ssh = await connect({
      ...a,
      hostKey: a.hostKey === undefined ? undefined : parseHostKey(a.hostKey),
      deadline: Date.now() + options.timeoutSeconds * 1000,
    });
    const limit = Math.min(check.timeoutSeconds, options.timeoutSeconds);
    const r = await runCommand(ssh, check.command, limit);
    const judged = classifyMigration(r, options.requireMigration ?? false);
    const { mode, downtimeMs } = judged.result
      ? migrationFacts(judged.result)
      : { mode: null, downtimeMs: null };
    report = {
      ...base,
      ...(mode ? { mode } : {}),
      ...(downtimeMs === null ? {} : { downtimeMs }),
      ...judged,
      ms: 0,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    report = {
      ...base,
      status: "fail",
      ms: 0,
      // A hung migration is a broken lab (1); a lost connection, a host gone away (3).
      exitCode:
        err instanceof CommandTimeoutError
          ? ExitCode.labBroken
          : err instanceof VerifyError
            ? err.exitCode
            : ExitCode.unreachable,
      error:
        err instanceof CommandTimeoutError
          ? `'${check.command}' timed out after ${err.seconds} s; it was stopped`
          : `'${check.command}': ${message}`,
    };
  } finally {
    ssh?.dispose();
  }
  report.ms = Date.now() - t0;
  progress(
    report.status === "pass"
      ? `ok  ${check.name}${report.mode ? ` ${report.mode}` : ""} (${(report.ms / 1000).toFixed(1)} s)`
      : `${report.status === "fail" ? "FAIL" : "n/a "} ${check.name}: ${report.error ?? ""}`,
  );
  return report;
}

/**
 * Judges the migration command's result. argparse's "invalid choice" of `scenario` or
 * `migration` (exit 2) means the host's criu-lab has no such scenario yet: "not available", not
 * a failure. Otherwise its last JSON
 * object must say `ok: true` with exit 0; the scenario's exit 3 (peer not reachable, not
 * installed) stays 3, anything else is a broken lab (1).
 */
export function classifyMigration(
  r: { stdout: string; stderr: string; code: number | null; signal?: string | null },
  required: boolean,
): Omit<MigrationReport, "from" | "to" | "ms"> {
  // Not `--mode`'s invalid choice: a host without the mode asked for fails, saying so.
  if (r.code === ExitCode.usage && /invalid choice: '(scenario|migration)'/.test(r.stderr)) {
    return {
      status: "not available",
      exitCode: required ? ExitCode.unreachable : ExitCode.ok,
      error: "this host's criu-lab has no 'scenario run migration'",
    };
  }
  let result: Record<string, unknown> | undefined;
  try {
    result = lastJsonObject("migration", r.stdout);
  } catch (err) {
    if (!(err instanceof CheckOutputError)) throw err;
  }
  if (r.code === 0 && result?.ok === true) return { status: "pass", exitCode: ExitCode.ok, result };
  const reason =
    typeof result?.error === "string"
      ? result.error
      : r.code === 0
        ? "it printed no JSON object with ok: true"
        : `it exited ${r.code ?? `on signal ${r.signal ?? "?"}`}${r.stderr.trim() ? `: ${tail(r.stderr)}` : ""}`;
  return {
    status: "fail",
    exitCode: r.code === ExitCode.unreachable ? ExitCode.unreachable : ExitCode.labBroken,
    error: `migration failed: ${reason}`,
    ...(result ? { result } : {}),
  };
}

function tail(text: string): string {
  const t = text.trim();
  return t.length > 1000 ? `...${t.slice(-1000)}` : t;
}

const STEP_COLUMNS = [
  ["cloud-init", "cloud-init"],
  ["check", "criu check"],
  ["demo", "checkpoint/restore demo"],
] as const;

/** A step's cell: ok, FAIL, or "-" when it was not reached; "no ssh" when connecting failed. */
function stepCell(report: VerifyReport, stepName: string): string {
  const step = report.steps.find((s) => s.name === stepName);
  if (step) return step.ok ? "ok" : "FAIL";
  const connect = report.steps.find((s) => s.name.startsWith("connect "));
  return stepName === "cloud-init" && connect && !connect.ok ? "no ssh" : "-";
}

/** ok, FAIL, n/a or "not run", then the mode that ran (or failed) when the scenario said. */
function migrationCell(m: MigrationReport): string {
  const status = { pass: "ok", fail: "FAIL", "not available": "n/a", "not run": "not run" }[
    m.status
  ];
  return m.mode ? `${status} ${m.mode}` : status;
}

/**
 * The table (seat, host, cloud-init, check, demo, migration, time, exit), then one line per
 * failure naming the seat, the host and the step, then the verdict. Migration is "-" in a
 * one-host seat; in a two-host seat it is on host a's row, with the mode that ran
 * ("ok page-server").
 */
export function seatsTable(report: SeatsReport): string {
  const rows: string[][] = [
    ["seat", "host", "cloud-init", "check", "demo", "migration", "time", "exit"],
  ];
  const failures: string[] = [];
  for (const s of report.seats) {
    for (const h of s.hosts) {
      const r = h.report;
      const where = `${h.role} ${r.target.host}:${r.target.port}`;
      rows.push([
        s.seat,
        where,
        ...STEP_COLUMNS.map(([, step]) => stepCell(r, step)),
        s.migration === null ? "-" : h.role === "a" ? migrationCell(s.migration) : "",
        `${(r.durationMs / 1000).toFixed(1)} s`,
        String(r.exitCode),
      ]);
      if (!r.ok) {
        const failed = r.steps.find((st) => !st.ok)?.name ?? "verification";
        failures.push(
          `seat ${s.seat} host ${where}: ${failed} failed (exit ${r.exitCode}): ${firstLine(r.error)}`,
        );
      }
    }
    const m = s.migration;
    if (m && m.exitCode !== ExitCode.ok) {
      failures.push(
        `seat ${s.seat} migration ${m.from} -> ${m.to}: ${m.status} (exit ${m.exitCode}): ${firstLine(m.error)}`,
      );
    }
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const lines = rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
  const passed = report.seats.filter((s) => s.ok).length;
  return [
    ...lines,
    ...(failures.length ? ["", ...failures] : []),
    "",
    `${passed} of ${report.seats.length} seat(s) pass; exit ${report.exitCode}`,
  ].join("\n");
}

function firstLine(text: string | undefined): string {
  return (text ?? "no reason given").split("\n")[0] ?? "";
}
