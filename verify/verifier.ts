/**
 * The verification flow: connect, wait for cloud-init, `criu-lab check`, `criu-lab demo`, each
 * from the one definition in ./checks, judged by its one parser. Used by the CLI (./cli), the
 * local VM target (vm/) and the tests. It never throws: every outcome is a VerifyReport whose
 * exitCode follows DESIGN.md (0 ok, 1 lab broken, 2 bad input, 3 unreachable or not ready).
 */
import { posix } from "node:path";
import type { NodeSSH } from "node-ssh";
import {
  CheckOutputError,
  CheckResult,
  DemoResult,
  ExitCode,
  REMOTE_CHECKS,
  REMOTE_LOG_DIR,
  RemoteCheck,
  parseCheck,
  parseDemo,
} from "./checks";
import { HostKeyFormatError, parseHostKey } from "./hostKey";
import { CommandResult, CommandTimeoutError, VerifyError, connect, runCommand } from "./session";

export interface VerifyTarget {
  host: string;
  port: number;
  user: string;
  /** The user's private key (OpenSSH or PEM text). Kept in memory; never printed. */
  privateKey: string;
  /** OpenSSH public key "ssh-ed25519 AAAA..." to pin; undefined = not pinned (warn) */
  hostKey?: string;
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
  error?: string;
  /** On failure: remote log path -> its tail (bounded), e.g. /var/log/criu-lab/demo.log. */
  logs?: Record<string, string>;
  durationMs: number;
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
    ssh = await step(`connect ${where}`, () =>
      connect({
        ...target,
        hostKey: pinned,
        deadline,
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

    await step(checks.demo.name, async () => {
      const r = await remote(checks.demo, session, ExitCode.labBroken);
      report.demo = parseIfPresent(parseDemo, r);
      judge(checks.demo, r, report.demo);
      if (report.demo) progress(`    ${describeDemo(report.demo)}`);
    });

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
      const logs = await fetchLogs(ssh, report.demo?.imagesDir);
      report.logs = Object.fromEntries(
        Object.entries(logs).map(([path, text]) => [path, scrub(text)]),
      );
      if (report.demo?.imagesDir) {
        progress(
          `    the demo's checkpoint images are kept on the host in ${report.demo.imagesDir}`,
        );
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

/** Throws the right VerifyError unless the command exited 0 with `ok: true`. */
function judge(
  check: RemoteCheck,
  r: CommandResult,
  result: { ok: boolean; error?: string } | undefined,
) {
  if (r.code === 0 && result?.ok) return;
  // criu-lab exits 3 when the lab is not installed or not ready (DESIGN.md); a missing
  // criu-lab (sudo: "command not found", a shell: 127) is not installed either.
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

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Tails of the lab's logs, the cloud-init output, and the demo's logs (criu-lab keeps the CRIU
 * dump/restore logs beside the images: <run>/dump.log, <run>/images): path -> text. Best
 * effort and bounded: a failure to fetch is reported as an entry.
 */
async function fetchLogs(
  ssh: NodeSSH,
  imagesDir: string | undefined,
): Promise<Record<string, string>> {
  const dirs = new Set([
    REMOTE_LOG_DIR,
    ...(imagesDir ? [posix.dirname(imagesDir), imagesDir] : []),
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

/** Single-quotes a value for a POSIX shell. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
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
