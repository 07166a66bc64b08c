/**
 * The verification flow: connect, wait for cloud-init, `criu-lab check`, `criu-lab doctor`,
 * `criu-lab demo`, then the scenarios asked for (`criu-lab scenario run NAME`), each from the
 * one definition in ./checks, judged by its one parser. Used by the CLI (./cli), the
 * local VM target (vm/) and the tests. It never throws: every outcome is a VerifyReport whose
 * exitCode (docs/design.md "Contracts"): 0 ok, 1 lab broken, 2 bad input, 3 unreachable/not ready.
 */
import { posix } from "node:path";
import type { NodeSSH } from "node-ssh";
import {
  CheckOutputError,
  CheckResult,
  DemoResult,
  DoctorResult,
  ExitCode,
  REMOTE_CHECKS,
  REMOTE_LOG_DIR,
  RemoteCheck,
  SCENARIO_CHECKS,
  ScenarioName,
  ScenarioResult,
  parseCheck,
  parseDemo,
  parseDoctor,
  parseScenario,
  worstExitCode,
  shellQuote,
} from "../contract/checks";
import { HostKeyFormatError, parseHostKey } from "../contract/hostKey";
import { CommandResult, CommandTimeoutError, VerifyError, connect, runCommand } from "./session";

export interface VerifyTarget {
  host: string;
  port: number;
  user: string;
  /** The user's private key (OpenSSH or PEM text). Kept in memory; never printed. */
  privateKey: string;
  /** OpenSSH public key "ssh-ed25519 AAAA..." to pin; undefined = not pinned (warn) */
  hostKey?: string;
  /**
   * From the stack's outputs: the host powers itself off after `minutes` without an SSH
   * session (0: never), and where to start it. Undefined for a host named by flags.
   */
  autoStop?: AutoStop;
}

/** A host's auto-stop, as the stack's outputs describe it. */
export interface AutoStop {
  /** Idle minutes before the host powers off; 0 = never. */
  minutes: number;
  /** The EC2 instance id, when the outputs give one. */
  instanceId?: string;
  /** The stack's AWS region (the `region` output), when it has one. */
  region?: string;
}

/** Seconds without any answer on its port after which an auto-stopping host counts as stopped. */
export const DEFAULT_STOPPED_AFTER_SECONDS = 180;

/**
 * What a host that never answered is told about: it looks powered off by the auto-stop, and
 * how to start it (`pulumi up` starts stopped hosts too: components/instance.ts).
 */
export function stoppedHostHint(autoStop: AutoStop): string {
  const start =
    autoStop.instanceId && autoStop.region
      ? `start it: aws ec2 start-instances --instance-ids ${autoStop.instanceId} --region ${autoStop.region}`
      : "start it: run `pulumi up`, which starts stopped hosts";
  return (
    `the host looks stopped by the auto-stop (it powers off after ${autoStop.minutes} idle ` +
    `minutes); ${start}, then verify again`
  );
}

export interface VerifyOptions {
  /** Overall deadline for everything, connection retries included. */
  timeoutSeconds: number;
  /** Progress lines as steps start and end (the CLI prints them to stderr). */
  onProgress?: (line: string) => void;
  /**
   * Replaces some of REMOTE_CHECKS (same parsers, same judgement). For tests that need a
   * command that hangs or fails on purpose; production callers leave it unset.
   */
  checks?: Partial<Record<keyof typeof REMOTE_CHECKS, RemoteCheck>>;
  /**
   * Scenarios to run after the demo, in this order (`--scenarios`). Each runs even when an
   * earlier one failed; one the doctor says this host cannot run is skipped with its reason.
   */
  scenarios?: readonly ScenarioName[];
  /**
   * With the target's auto-stop on: give up after this many seconds without any answer on the
   * host's port, saying it looks stopped and how to start it (`--stopped-after`; default
   * DEFAULT_STOPPED_AFTER_SECONDS), instead of retrying until the deadline.
   */
  stoppedAfterSeconds?: number;
}

export interface VerifyStep {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface VerifyReport {
  ok: boolean;
  exitCode: ExitCode;
  target: { host: string; port: number; user: string };
  /** The pinned host key's fingerprint (SHA256:...), or undefined when nothing was pinned. */
  hostKeyFingerprint?: string;
  steps: VerifyStep[];
  check?: CheckResult;
  demo?: DemoResult;
  /** What the host can run and why not (`criu-lab doctor --json`). */
  doctor?: DoctorResult;
  /** The scenarios asked for, in order; absent when none were. */
  scenarios?: ScenarioReport[];
  error?: string;
  /** On failure: remote log path -> its tail (bounded), e.g. /var/log/criu-lab/demo.log. */
  logs?: Record<string, string>;
  durationMs: number;
}

/** One scenario's outcome: `skipped` when the doctor says the host cannot run it. */
export interface ScenarioReport {
  name: ScenarioName;
  status: "pass" | "fail" | "skipped";
  /** 0 for a pass or a skip. */
  exitCode: ExitCode;
  ms: number;
  /** Why it failed (fail), or the doctor's reason and fix (skipped). */
  error?: string;
  /** Where the scenario kept its images and logs on the host. */
  imagesDir?: string;
  /** The scenario's JSON as the host printed it (`criu-lab scenario run NAME --json`). */
  result?: Record<string, unknown>;
}

/** How much of a command's stderr goes into an error message. */
const STDERR_TAIL_CHARS = 2_000;
/** Bounds on the logs fetched after a failure. */
const LOG_TAIL_BYTES = 16_384;
const MAX_LOG_FILES = 24;
const LOG_FETCH_TIMEOUT_SECONDS = 30;
const LOG_MARKER = "=== criu-lab-verify log: ";

export async function verifyLab(
  target: VerifyTarget,
  options: VerifyOptions,
): Promise<VerifyReport> {
  const started = Date.now();
  const deadline = started + options.timeoutSeconds * 1000;
  const scrub = secretScrubber([target.privateKey]);
  const progress = (line: string) => options.onProgress?.(scrub(line));
  const checks = { ...REMOTE_CHECKS, ...options.checks };
  const report: VerifyReport = {
    ok: false,
    exitCode: ExitCode.ok,
    target: { host: target.host, port: target.port, user: target.user },
    steps: [],
    durationMs: 0,
  };

  /** Runs one step, recording its outcome; a failure propagates as a VerifyError. */
  const step = async <T>(name: string, body: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    progress(`... ${name}`);
    try {
      const value = await body();
      const ms = Date.now() - t0;
      report.steps.push({ name, ok: true, ms });
      progress(`ok  ${name} (${seconds(ms)})`);
      return value;
    } catch (err) {
      const ms = Date.now() - t0;
      const failure =
        err instanceof VerifyError
          ? err
          : new VerifyError(err instanceof Error ? err.message : String(err), ExitCode.labBroken);
      const message = scrub(failure.message);
      report.steps.push({ name, ok: false, ms, error: message });
      progress(`FAIL ${name} (${seconds(ms)}): ${message}`);
      throw failure;
    }
  };

  /** Runs a remote check within both its own timeout and the overall deadline. */
  const remote = async (check: RemoteCheck, ssh: NodeSSH, timeoutExit: ExitCode) => {
    const left = Math.floor((deadline - Date.now()) / 1000);
    if (left <= 0) {
      throw new VerifyError(
        `the overall deadline (${options.timeoutSeconds} s) passed before '${check.name}' could run`,
        timeoutExit,
      );
    }
    const limit = Math.min(check.timeoutSeconds, left);
    try {
      return await runCommand(ssh, check.command, limit);
    } catch (err) {
      if (err instanceof CommandTimeoutError) {
        const which =
          limit < check.timeoutSeconds
            ? `the overall deadline (--timeout ${options.timeoutSeconds} s)`
            : `its timeout (${check.timeoutSeconds} s)`;
        throw new VerifyError(
          `'${check.command}' timed out: it ran ${limit} s, ${which}; it was stopped`,
          timeoutExit,
        );
      }
      // The connection dropped: the host went away (stopped, rebooted, network).
      throw new VerifyError(
        `'${check.command}': ${err instanceof Error ? err.message : String(err)}`,
        ExitCode.unreachable,
      );
    }
  };

  /**
   * Runs one scenario as a step, or skips it on the doctor's word (not a failure: the host
   * lacks what the exercise needs, and the doctor says what and how to fix it). Never throws:
   * the outcome goes into the report, so that the next scenario still runs.
   */
  const runScenario = async (name: ScenarioName, ssh: NodeSSH): Promise<ScenarioReport> => {
    const check = SCENARIO_CHECKS[name];
    const verdict = report.doctor?.exercises[check.exercise];
    if (verdict && !verdict.ok) {
      const reason =
        `the doctor says this host cannot run ${check.exercise}: ${verdict.reason || "no reason given"}` +
        (verdict.fix ? `; ${verdict.fix}` : "");
      progress(`skip ${check.name}: ${reason}`);
      return { name, status: "skipped", exitCode: ExitCode.ok, ms: 0, error: scrub(reason) };
    }
    const t0 = Date.now();
    let parsed: ScenarioResult | undefined;
    try {
      await step(check.name, async () => {
        const r = await remote(check, ssh, ExitCode.labBroken);
        throwIfOlderLab(check, r, `scenario run ${name}`);
        parsed = parseIfPresent((out) => parseScenario(name, out), r);
        judge(check, r, parsed);
        if (parsed) progress(`    ${describeScenario(name, parsed.result)}`);
      });
      return {
        name,
        status: "pass",
        exitCode: ExitCode.ok,
        ms: Date.now() - t0,
        imagesDir: parsed?.imagesDir,
        result: parsed?.result,
      };
    } catch (err) {
      const failure =
        err instanceof VerifyError
          ? err
          : new VerifyError(err instanceof Error ? err.message : String(err), ExitCode.labBroken);
      return {
        name,
        status: "fail",
        exitCode: failure.exitCode,
        ms: Date.now() - t0,
        error: scrub(failure.message),
        imagesDir: parsed?.imagesDir,
        result: parsed?.result,
      };
    }
  };

  let ssh: NodeSSH | undefined;
  try {
    let pinned;
    try {
      pinned = target.hostKey === undefined ? undefined : parseHostKey(target.hostKey);
    } catch (err) {
      if (err instanceof HostKeyFormatError) throw new VerifyError(err.message, ExitCode.usage);
      throw err;
    }
    report.hostKeyFingerprint = pinned?.fingerprint;
    progress(
      pinned
        ? `host key pinned: ${pinned.type} ${pinned.fingerprint}`
        : "warning: no host key given; the server's host key is NOT verified",
    );

    const where = `${target.user}@${target.host}:${target.port}`;
    const autoStop = target.autoStop;
    ssh = await step(`connect ${where}`, () =>
      connect({
        ...target,
        hostKey: pinned,
        deadline,
        stopped:
          autoStop && autoStop.minutes > 0
            ? {
                afterMs: (options.stoppedAfterSeconds ?? DEFAULT_STOPPED_AFTER_SECONDS) * 1000,
                message: stoppedHostHint(autoStop),
              }
            : undefined,
        onRetry: (attempt, reason, waitMs) =>
          progress(`    attempt ${attempt} failed (${reason}); retrying in ${seconds(waitMs)}`),
      }),
    );
    const session = ssh;

    await step(checks.cloudInit.name, async () => {
      // Still running after the deadline means not ready (3), not broken.
      const r = await remote(checks.cloudInit, session, ExitCode.unreachable);
      if (r.code !== 0) {
        throw new VerifyError(
          failedCommand(checks.cloudInit, r),
          r.code === ExitCode.unreachable ? ExitCode.unreachable : ExitCode.labBroken,
        );
      }
    });

    await step(checks.check.name, async () => {
      const r = await remote(checks.check, session, ExitCode.labBroken);
      report.check = parseIfPresent(parseCheck, r);
      judge(checks.check, r, report.check);
      if (report.check) {
        progress(`    CRIU ${report.check.criuVersion} on kernel ${report.check.kernel}`);
      }
    });

    await step(checks.doctor.name, async () => {
      const r = await remote(checks.doctor, session, ExitCode.labBroken);
      throwIfOlderLab(checks.doctor, r, "doctor");
      report.doctor = parseIfPresent(parseDoctor, r);
      judge(checks.doctor, r, report.doctor);
      if (report.doctor) progress(`    ${describeDoctor(report.doctor)}`);
    });

    await step(checks.demo.name, async () => {
      const r = await remote(checks.demo, session, ExitCode.labBroken);
      report.demo = parseIfPresent(parseDemo, r);
      judge(checks.demo, r, report.demo);
      if (report.demo) progress(`    ${describeDemo(report.demo)}`);
    });

    if (options.scenarios?.length) {
      report.scenarios = [];
      for (const name of options.scenarios) {
        report.scenarios.push(await runScenario(name, session));
      }
      const failed = report.scenarios.filter((s) => s.status === "fail");
      if (failed.length > 0) {
        // Every scenario ran and is in the report; the verdict is the worst of them.
        throw new VerifyError(
          failed.map((s) => s.error).join("\n"),
          worstExitCode(failed.map((s) => s.exitCode)),
        );
      }
    }

    report.ok = true;
  } catch (err) {
    const failure =
      err instanceof VerifyError
        ? err
        : new VerifyError(err instanceof Error ? err.message : String(err), ExitCode.labBroken);
    report.exitCode = failure.exitCode;
    report.error = scrub(failure.message);
    if (ssh?.isConnected()) {
      progress("... fetching remote logs");
      const logs = await fetchLogs(ssh, [
        report.demo?.imagesDir,
        ...(report.scenarios ?? []).filter((s) => s.status === "fail").map((s) => s.imagesDir),
      ]);
      report.logs = Object.fromEntries(
        Object.entries(logs).map(([path, text]) => [path, scrub(text)]),
      );
      if (report.demo?.imagesDir) {
        progress(
          `    the demo's checkpoint images are kept on the host in ${report.demo.imagesDir}`,
        );
      }
      for (const s of report.scenarios ?? []) {
        if (s.status === "fail" && s.imagesDir) {
          progress(
            `    the ${s.name} scenario's images and logs are kept on the host in ${s.imagesDir}`,
          );
        }
      }
    }
  } finally {
    ssh?.dispose();
    report.durationMs = Date.now() - started;
  }
  return report;
}

/** Parses a check's JSON when there is any (a failing check still prints its result). */
function parseIfPresent<T>(parse: (stdout: string) => T, r: CommandResult): T | undefined {
  try {
    return parse(r.stdout);
  } catch (err) {
    if (!(err instanceof CheckOutputError)) throw err;
    // A non-zero exit is reported from its stderr; a zero exit must come with a result.
    if (r.code !== 0) return undefined;
    throw new VerifyError(
      `${err.message}; it printed: ${tailOf(r.stdout) || "nothing"}`,
      ExitCode.labBroken,
    );
  }
}

/**
 * argparse's "invalid choice" (exit 2): the host's criu-lab has no COMMAND, its lab files are
 * older than this verifier (set up before the command existed). Not ready (3), not broken: the
 * lab may work, and setting the host up again with these lab files gives it the command.
 */
function throwIfOlderLab(check: RemoteCheck, r: CommandResult, command: string): void {
  if (r.code !== ExitCode.usage || !/invalid choice/.test(r.stderr)) return;
  throw new VerifyError(
    `${check.name}: this host's criu-lab has no '${command}'; its lab files are older than ` +
      "this verifier (set the host up again: a new instance, or `sudo npm run setup:host` there)",
    ExitCode.unreachable,
  );
}

/** Throws the right VerifyError unless the command exited 0 with `ok: true`. */
function judge(
  check: RemoteCheck,
  r: CommandResult,
  result: { ok: boolean; error?: string } | undefined,
) {
  if (r.code === 0 && result?.ok) return;
  // criu-lab exits 3 when the lab is not installed or not ready (docs/design.md "Contracts");
  // a missing criu-lab (sudo: "command not found", a shell: 127) is not installed either.
  const notInstalled =
    r.code === ExitCode.unreachable || r.code === 127 || /command not found/.test(r.stderr);
  const exitCode = notInstalled ? ExitCode.unreachable : ExitCode.labBroken;
  if (result && !result.ok) {
    const tail = r.code === 0 || result.error ? "" : `\n${tailOf(r.stderr)}`;
    throw new VerifyError(
      `${check.name} failed: ${result.error ?? "no reason given"}${tail}`,
      exitCode,
    );
  }
  throw new VerifyError(failedCommand(check, r), exitCode);
}

function failedCommand(check: RemoteCheck, r: CommandResult): string {
  const how = r.code === null ? `was killed by signal ${r.signal ?? "?"}` : `exited ${r.code}`;
  const stderr = tailOf(r.stderr);
  return `'${check.command}' ${how}${stderr ? `; stderr ends with:\n${stderr}` : " with no stderr"}`;
}

function tailOf(text: string): string {
  const trimmed = text.trim();
  return trimmed.length > STDERR_TAIL_CHARS ? `...${trimmed.slice(-STDERR_TAIL_CHARS)}` : trimmed;
}

function describeDemo(d: DemoResult): string {
  return (
    `PID ${d.pid} checkpointed at ${d.lastBeforeDump} and restored as PID ${d.restoredPid} ` +
    `counting on from ${d.firstAfterRestore}; dump ${d.dumpMs} ms, restore ${d.restoreMs} ms, ` +
    `frozen ${d.frozenUs} us, images ${d.imageBytes} bytes in ${d.imagesDir}`
  );
}

/** The doctor's verdict in one line: the CRIU, the kernel, what cannot run here and why. */
export function describeDoctor(d: DoctorResult): string {
  const no = Object.entries(d.exercises).filter(([, v]) => !v.ok);
  const yes = Object.keys(d.exercises).filter((k) => d.exercises[k]?.ok);
  return (
    `doctor: CRIU ${d.criuVersion} on kernel ${d.kernel}, network lock ${d.networkLock ?? "none"}; ` +
    `can run: ${yes.join(", ") || "nothing"}` +
    (no.length ? `; cannot: ${no.map(([k, v]) => `${k} (${v.reason})`).join(", ")}` : "")
  );
}

/** A scenario's figures in one line (its JSON fields, as criu-lab printed them). */
export function describeScenario(name: ScenarioName, r: Record<string, unknown>): string {
  if (name === "training") {
    return (
      `training: PID ${String(r.pid)} checkpointed ${String(r.checkpoints)} times ` +
      `(${r.incremental ? "incremental" : "full"}), killed at step ${String(r.crashedAtStep)}, ` +
      `restored as PID ${String(r.restoredPid)} at step ${String(r.resumedAtStep)} ` +
      `(the latest checkpoint's: ${String(r.lastCheckpointStep)}), ${String(r.lostSteps)} steps lost, ` +
      `state ${r.stateMatches ? "matches" : "DIFFERS"}, overhead ${String(r.overheadPercent)} %`
    );
  }
  return (
    `game: ${String(r.clientsStillConnected)}/${String(r.clients)} players kept their connection ` +
    `through the server's restore (PID ${String(r.pid)} -> ${String(r.restoredPid)}, ` +
    `--network-lock ${String(r.networkLock)}), scores ${r.scoresPreserved ? "preserved" : "NOT preserved"}, ` +
    `longest pause ${String(r.pauseMs)} ms`
  );
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Tails of the lab's logs, the cloud-init output, and the demo's and failed scenarios' logs
 * (criu-lab keeps the CRIU dump/restore logs beside the images: <run>/dump.log, <run>/images):
 * path -> text. Best
 * effort and bounded: a failure to fetch is reported as an entry.
 */
async function fetchLogs(
  ssh: NodeSSH,
  imagesDirs: Array<string | undefined>,
): Promise<Record<string, string>> {
  const dirs = new Set([
    REMOTE_LOG_DIR,
    ...imagesDirs.flatMap((d) => (d ? [posix.dirname(d), d] : [])),
  ]);
  const script = [
    `for f in /var/log/cloud-init-output.log ${[...dirs].map((d) => `${shellQuote(d)}/*.log`).join(" ")}; do`,
    '  [ -f "$f" ] || continue',
    `  printf '\\n${LOG_MARKER}%s\\n' "$f"`,
    `  tail -c ${LOG_TAIL_BYTES} "$f"`,
    `done | head -c ${LOG_TAIL_BYTES * MAX_LOG_FILES}`,
  ].join("\n");
  try {
    // -n: never wait for a sudo password that nobody will type.
    const r = await runCommand(
      ssh,
      `sudo -n sh -c ${shellQuote(script)}`,
      LOG_FETCH_TIMEOUT_SECONDS,
    );
    const logs = parseLogSections(r.stdout);
    if (r.code !== 0) logs["(fetch)"] = `fetching logs exited ${r.code}: ${tailOf(r.stderr)}`;
    return logs;
  } catch (err) {
    return {
      "(fetch)": `could not fetch logs: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/** Splits the log fetcher's output at its markers into path -> text. */
export function parseLogSections(stdout: string): Record<string, string> {
  const logs: Record<string, string> = {};
  const parts = stdout.split(`\n${LOG_MARKER}`);
  for (const part of parts.slice(1)) {
    const newline = part.indexOf("\n");
    const path = newline === -1 ? part : part.slice(0, newline);
    logs[path] = newline === -1 ? "" : part.slice(newline + 1);
  }
  return logs;
}

/**
 * A function that removes secrets from text bound for output: each secret as a whole, and each
 * of its lines long enough to be key material (a PEM body can surface line by line).
 */
export function secretScrubber(secrets: string[]): (text: string) => string {
  const pieces = new Set<string>();
  for (const secret of secrets) {
    if (secret.trim().length >= 8) pieces.add(secret.trim());
    for (const line of secret.split(/\r?\n/)) {
      const t = line.trim();
      if (t.length >= 16 && !t.startsWith("-----")) pieces.add(t);
    }
  }
  const ordered = [...pieces].sort((a, b) => b.length - a.length);
  return (text: string) => {
    let out = text;
    for (const piece of ordered) out = out.split(piece).join("[redacted]");
    return out;
  };
}
