/**
 * `criu-lab-verify` (npm run verify, criu-lab-local verify): checks a lab host over SSH for CI after `pulumi up`
 * and for users. Target from flags or from a stack's outputs (`--stack`). Progress goes to
 * stderr; the result to stdout (`--json`: exactly one JSON report). Exit codes from
 * docs/design.md "Contracts".
 */
import { readFile } from "node:fs/promises";
import { joinNegativeNumbers } from "./argv";
import { ExitCode, SCENARIOS, ScenarioName, parseScenarioNames } from "../contract/checks";
import {
  KnownError,
  StackOutputError,
  StackOutputRunner,
  UsageError,
  parseFlagArgs,
  readStackOutputs,
  runMain,
} from "./cliCommon";
import { DEFAULT_PROGRESS_TIMEOUT_SECONDS, collectProgress, progressTable } from "./progress";
import {
  DEFAULT_PARALLEL,
  MAX_PARALLEL,
  SeatTarget,
  seatsTable,
  targetsFromStackOutputs,
  verifySeats,
} from "./seats";
import { MAX_SEATS, SeatOutputsError } from "../contract/seats";
import {
  AutoStop,
  DEFAULT_STOPPED_AFTER_SECONDS,
  VerifyReport,
  VerifyTarget,
  describeDoctor,
  describeScenario,
  secretScrubber,
  verifyLab,
} from "./verifier";

const DEFAULT_TIMEOUT_SECONDS = 3600;

export const USAGE = `usage: npx criu-lab-verify --host HOST --key-file PATH [options]
       npx criu-lab-verify --stack NAME [--seat N] [--parallel N] [options]
       npx criu-lab-verify --stack NAME --progress [--seat N] [--json]
       (or: npm run verify -- [options], npx criu-lab-local verify [options])

Checks a CRIU lab host over SSH: waits for cloud-init, runs \`sudo criu-lab check --json\`,
\`sudo criu-lab doctor --json\` (what the host can run) and \`sudo criu-lab demo --json\`, then
the scenarios asked for with --scenarios.

target (from flags, or from a Pulumi stack's outputs; flags override the stack's values):
  --stack NAME          read publicIp, sshUser, privateKey and knownHostsLine from
                        \`pulumi stack output --json --show-secrets --stack NAME\`
  --host HOST           host name or address
  --port PORT           SSH port (default 22)
  --user NAME           SSH user with passwordless sudo (default ubuntu)
  --seat N              a class (the stack's \`seats\` output): verify seat N only (1..${MAX_SEATS})
  --parallel N          a class: hosts verified at once (default ${DEFAULT_PARALLEL}, at most ${MAX_PARALLEL})
  --key-file PATH       required (unless --stack): the user's PRIVATE key (OpenSSH or
                        PEM, unencrypted), e.g. lab.pem; not its .pub
  --host-key KEY        the host's public key to pin: 'ssh-ed25519 AAAA...' or a known_hosts
                        line (its host field is ignored); without it the host is not verified

options:
  --scenarios LIST      also run these scenarios after the demo, comma-separated: ${SCENARIOS.join(", ")}
                        (\`sudo criu-lab scenario run NAME --json\`); one the doctor says the host
                        cannot run is reported as skipped with its reason, not as a failure
  --timeout SECONDS     overall deadline, connection retries included (default ${DEFAULT_TIMEOUT_SECONDS})
  --stopped-after SECONDS
                        with --stack and the stack's auto-stop on: a host whose port has not
                        answered for this long looks stopped (exit 3, with the command that
                        starts it) instead of being retried until --timeout (default ${DEFAULT_STOPPED_AFTER_SECONDS})
  --progress            the class's progress instead of a verification: every host is asked
                        \`sudo criu-lab progress --json\` (what its learner completed) and the
                        answer is a table of seats by exercise (\u2713 done, \u00b7 not yet, ? host not
                        reached); --timeout defaults to ${DEFAULT_PROGRESS_TIMEOUT_SECONDS} s a host. Exit 0 however far
                        the learners are; 3 when a host cannot be asked, 1 when its answer is unusable
  --json                print one JSON report on stdout
  -h, --help            this help

A stack with more than one seat, or two hosts a seat, is a class: every host is verified,
at most --parallel at once, then in two-host seats the counter migrates from a to b in the
mode the stack asked for (its migrationMode; none from a stack older than that key: the
scenario's default); the result is a table (seat, host, cloud-init, check, demo, migration
and the mode that ran, time) or one --json report, and the exit code is the worst of the
seats' (1, then 2, then 3). --seat or
--parallel verify a one-host stack this way too. --host, --port, --user, --key-file and
--host-key take one host and do not go with a class.

exit codes: 0 the lab works; 1 the lab does not work (check, demo or scenario failed, hung);
2 usage or bad input; 3 unreachable, stopped (by the auto-stop), not ready, authentication
failed or host key mismatch`;

export interface Flags {
  stack?: string;
  host?: string;
  port?: number;
  user?: string;
  keyFile?: string;
  hostKey?: string;
  /** A class: only this seat (as typed: "3" or "03"). */
  seat?: string;
  /** A class: hosts verified at once. */
  parallel?: number;
  /** Scenarios to run after the demo (none unless asked). */
  scenarios: ScenarioName[];
  timeoutSeconds: number;
  /** A host of the stack with auto-stop that never answers counts as stopped after this. */
  stoppedAfterSeconds: number;
  /** The class's progress through the exercises instead of a verification. */
  progress: boolean;
  json: boolean;
  help: boolean;
}

/** Flags whose value is a number: a negative one must reach integerFlag's message. */
const NUMBER_FLAGS = ["--port", "--timeout", "--seat", "--parallel", "--stopped-after"];

/** Parses argv strictly: unknown flags, stray arguments and bad numbers are UsageErrors. */
export function parseFlags(argv: string[]): Flags {
  const { values } = parseFlagArgs({
    args: joinNegativeNumbers(argv, NUMBER_FLAGS),
    options: {
      stack: { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      user: { type: "string" },
      "key-file": { type: "string" },
      "host-key": { type: "string" },
      seat: { type: "string" },
      parallel: { type: "string" },
      scenarios: { type: "string" },
      timeout: { type: "string" },
      "stopped-after": { type: "string" },
      progress: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const nonEmpty = (flag: string, value: string | undefined) => {
    if (value !== undefined && value.trim() === "") {
      throw new UsageError(`--${flag}: must not be empty`);
    }
    return value;
  };
  return {
    stack: nonEmpty("stack", values.stack),
    host: nonEmpty("host", values.host),
    port: values.port === undefined ? undefined : integerFlag("port", values.port, 1, 65535),
    user: nonEmpty("user", values.user),
    keyFile: nonEmpty("key-file", values["key-file"]),
    hostKey: nonEmpty("host-key", values["host-key"]),
    seat: nonEmpty("seat", values.seat),
    parallel:
      values.parallel === undefined
        ? undefined
        : integerFlag("parallel", values.parallel, 1, MAX_PARALLEL),
    scenarios: values.scenarios === undefined ? [] : scenariosFlag(values.scenarios),
    timeoutSeconds:
      values.timeout === undefined
        ? values.progress
          ? DEFAULT_PROGRESS_TIMEOUT_SECONDS
          : DEFAULT_TIMEOUT_SECONDS
        : integerFlag("timeout", values.timeout, 1, 24 * 3600, " of seconds"),
    stoppedAfterSeconds:
      values["stopped-after"] === undefined
        ? DEFAULT_STOPPED_AFTER_SECONDS
        : integerFlag("stopped-after", values["stopped-after"], 1, 24 * 3600, " of seconds"),
    progress: values.progress,
    json: values.json,
    help: values.help,
  };
}

/** `--scenarios training,game`: every name known and runnable on one host, or a UsageError. */
function scenariosFlag(value: string): ScenarioName[] {
  const names = value.split(",").map((n) => n.trim());
  if (names.every((n) => n === "")) {
    throw new UsageError(
      `--scenarios: '${value}' names no scenario; allowed: ${SCENARIOS.join(", ")}`,
    );
  }
  const parsed = parseScenarioNames(names.filter((n) => n !== ""));
  if ("problems" in parsed) throw new UsageError(`--scenarios: ${parsed.problems.join("; ")}`);
  return parsed.scenarios;
}

function integerFlag(flag: string, value: string, min: number, max: number, unit = ""): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${flag}: '${value}' is not a whole number${unit} from ${min} to ${max}`,
    );
  }
  return n;
}

/** What `--stack` needs from the stack outputs (names from docs/design.md "Contracts"). */
export interface StackTarget {
  host: string;
  user: string;
  privateKey: string;
  hostKey?: string;
  /** From the `seats` output (seat 01's host a) and `region`; absent in stacks before seats. */
  autoStop?: AutoStop;
}

/**
 * The one-host target in the stack outputs (readStackOutputs): seat 01's host a of the `seats`
 * output, read as every reader reads it (contract/seats.ts parseSeatOutputs). Outputs that are
 * not a lab's are bad input to --stack (2); messages name the output, never its value when it
 * is a secret.
 */
export function parseStackOutputs(stack: string, outputs: unknown): StackTarget {
  let first: SeatTarget | undefined;
  try {
    first = targetsFromStackOutputs(outputs)[0];
  } catch (err) {
    if (err instanceof SeatOutputsError) throw new UsageError(`--stack ${stack}: ${err.message}`);
    throw err;
  }
  if (!first) throw new UsageError(`--stack ${stack}: the stack has no host`);
  return {
    host: first.host,
    user: first.user,
    privateKey: first.privateKey,
    hostKey: first.hostKey,
    ...(first.autoStop ? { autoStop: first.autoStop } : {}),
  };
}

/**
 * The key type when `text` is an OpenSSH public key (a `.pub` file or an authorized_keys
 * line: `ssh-ed25519 AAAA... comment`), the usual mistake for --key-file.
 */
export function publicKeyType(text: string): string | undefined {
  const m = /^\s*((?:ssh|ecdsa-sha2|sk-ssh|sk-ecdsa-sha2)-[\w@.-]+)\s+AAAA[\w+/=]+/.exec(text);
  return m?.[1];
}

/** A stack's outputs by its name (readStackOutputs, read once). */
export type StackOutputs = (stack: string) => Promise<unknown>;

/** Builds the target from flags and, with --stack, the stack's outputs. */
export async function resolveTarget(flags: Flags, outputsOf: StackOutputs): Promise<VerifyTarget> {
  const fromStack = flags.stack
    ? parseStackOutputs(flags.stack, await outputsOf(flags.stack))
    : undefined;
  const host = flags.host ?? fromStack?.host;
  if (!host) throw new UsageError("--host is required (or --stack NAME)");
  let privateKey = fromStack?.privateKey;
  if (flags.keyFile) {
    try {
      privateKey = await readFile(flags.keyFile, "utf8");
    } catch (err) {
      throw new UsageError(
        `--key-file ${flags.keyFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
    const publicKey = publicKeyType(privateKey);
    if (publicKey !== undefined) {
      const privateFile = flags.keyFile.replace(/\.pub$/, "");
      throw new UsageError(
        `--key-file ${flags.keyFile}: this is a public key (${publicKey}); --key-file takes ` +
          `the private key` +
          (privateFile !== flags.keyFile ? `, e.g. ${privateFile}` : " (the file without .pub)"),
      );
    }
  }
  if (!privateKey) throw new UsageError("--key-file is required (or --stack NAME)");
  return {
    host,
    port: flags.port ?? 22,
    user: flags.user ?? fromStack?.user ?? "ubuntu",
    privateKey,
    hostKey: flags.hostKey ?? fromStack?.hostKey,
    // The stack's host only: another --host is not the instance the outputs name.
    autoStop: flags.host === undefined ? fromStack?.autoStop : undefined,
  };
}

export interface CliDeps {
  /** Runs `pulumi stack output` (default: the pulumi CLI). Tests inject their own. */
  readStack?: StackOutputRunner;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

/** Flags that name one host: they do not go with a class. */
const ONE_HOST_FLAGS = ["host", "port", "user", "keyFile", "hostKey"] as const;

/**
 * The class's hosts when `--stack` names a class (more than one seat, or two hosts a seat)
 * or `--seat`/`--parallel` ask for one; undefined for one host (today's report and summary).
 * Outputs that do not match the contract are SeatOutputsErrors (3), a bad --seat one (2).
 */
export async function classTargets(
  flags: Flags,
  outputsOf: StackOutputs,
): Promise<SeatTarget[] | undefined> {
  const asked = flags.seat !== undefined || flags.parallel !== undefined;
  if (!flags.stack) {
    if (asked) throw new UsageError("--seat and --parallel need --stack NAME (a class's outputs)");
    return undefined;
  }
  const oneHost = ONE_HOST_FLAGS.filter((f) => flags[f] !== undefined);
  if (asked && oneHost.length > 0) {
    throw new UsageError(
      `--${oneHost[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} takes one host and ` +
        "does not go with --seat or --parallel (a class's hosts come from the stack)",
    );
  }
  if (oneHost.length > 0) return undefined;
  const outputs = await outputsOf(flags.stack);
  const all = targetsFromStackOutputs(outputs);
  // One seat of one host gets the one-host report (and --scenarios); a class the table.
  const isClass = all.some((t) => t.seat !== "01" || t.role !== "a");
  if (!asked && !isClass) return undefined;
  return targetsFromStackOutputs(outputs, { seat: flags.seat });
}

/**
 * The verifier's errors besides a UsageError: a stack that cannot be read is bad input to the
 * verifier (2, with the usage); outputs that are not a lab's are 3, a --seat the stack does not
 * have 2 (with the usage).
 */
function knownError(e: unknown): KnownError | undefined {
  if (e instanceof StackOutputError) return { exitCode: ExitCode.usage, usage: true };
  if (e instanceof SeatOutputsError) {
    return { exitCode: e.exitCode, usage: e.exitCode === ExitCode.usage };
  }
  return undefined;
}

export async function main(argv: string[], deps: CliDeps = {}): Promise<number> {
  const out = deps.out ?? ((text: string) => process.stdout.write(`${text}\n`));
  const err = deps.err ?? ((text: string) => process.stderr.write(`${text}\n`));
  // Read once: classTargets and resolveTarget may both want the outputs.
  const read = new Map<string, Promise<unknown>>();
  const outputsOf: StackOutputs = (stack) => {
    const outputs = read.get(stack) ?? readStackOutputs(stack, deps.readStack);
    read.set(stack, outputs);
    return outputs;
  };
  return runMain({ name: "criu-lab-verify", usage: USAGE, known: knownError, err }, async () => {
    const flags = parseFlags(argv);
    if (flags.help) {
      out(USAGE);
      return ExitCode.ok;
    }
    if (flags.progress) return await showProgress(flags, outputsOf, out, err);
    const seats = await classTargets(flags, outputsOf);
    if (seats !== undefined && flags.scenarios.length > 0) {
      // verifySeats runs the lab's own steps and the migration, not scenarios (yet).
      throw new UsageError(
        "--scenarios verifies one host: it does not go with a class (a stack of several " +
          "seats or two-host seats, or --seat/--parallel); use --host with a seat's address",
      );
    }
    if (seats !== undefined) return await verifyClass(seats, flags, out, err);
    const target = await resolveTarget(flags, outputsOf);
    const report = await verifyLab(target, {
      timeoutSeconds: flags.timeoutSeconds,
      stoppedAfterSeconds: flags.stoppedAfterSeconds,
      scenarios: flags.scenarios,
      onProgress: (line) => err(`[verify] ${line}`),
    });
    // The report is scrubbed by verifyLab; this second pass guards fields added later.
    const scrub = secretScrubber([target.privateKey]);
    out(scrub(flags.json ? JSON.stringify(report, null, 2) : summary(report)));
    return report.exitCode;
  });
}

/**
 * `--progress`: every host of the stack (or the one host of the flags, as seat 01) asked what
 * its learner completed; the table or one JSON report on stdout.
 */
async function showProgress(
  flags: Flags,
  outputsOf: StackOutputs,
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  if (flags.scenarios.length > 0) {
    throw new UsageError("--scenarios runs scenarios; --progress only asks: give one or the other");
  }
  // classTargets answers a class, --seat and --parallel (or refuses them); else one host.
  const targets: SeatTarget[] = (await classTargets(flags, outputsOf)) ?? [
    { ...(await resolveTarget(flags, outputsOf)), seat: "01", role: "a" },
  ];
  const report = await collectProgress(targets, classRunOptions(flags, err, "progress"));
  out(scrubbed(targets, flags.json ? JSON.stringify(report, null, 2) : progressTable(report)));
  return report.exitCode;
}

/** What a run over a class's hosts takes from the flags; its progress on stderr, tagged. */
function classRunOptions(flags: Flags, err: (text: string) => void, tag: string) {
  return {
    timeoutSeconds: flags.timeoutSeconds,
    stoppedAfterSeconds: flags.stoppedAfterSeconds,
    parallel: flags.parallel ?? DEFAULT_PARALLEL,
    onProgress: (line: string) => err(`[${tag}] ${line}`),
  };
}

/** `text` with every target's private key scrubbed, whatever field it came in. */
function scrubbed(targets: SeatTarget[], text: string): string {
  return secretScrubber([...new Set(targets.map((t) => t.privateKey))])(text);
}

/** Verifies a class: progress on stderr, the table or one JSON report on stdout. */
async function verifyClass(
  targets: SeatTarget[],
  flags: Flags,
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  const report = await verifySeats(targets, classRunOptions(flags, err, "verify"));
  // verifySeats scrubs its report; this second pass guards fields added later.
  out(scrubbed(targets, flags.json ? JSON.stringify(report, null, 2) : seatsTable(report)));
  return report.exitCode;
}

/**
 * The human-readable result: the verdict line; then the doctor's line and a line per scenario
 * when scenarios were asked for; on failure the error and the log tails.
 */
export function summary(report: VerifyReport): string {
  const where = `${report.target.user}@${report.target.host}:${report.target.port}`;
  const lines: string[] = [];
  if (report.ok) {
    const d = report.demo;
    lines.push(
      `criu-lab-verify: OK: ${where}: CRIU ${report.check?.criuVersion ?? "?"}, kernel ${report.check?.kernel ?? "?"}` +
        (d
          ? `; checkpoint/restore of PID ${d.pid}: dump ${d.dumpMs} ms, restore ${d.restoreMs} ms, frozen ${d.frozenUs} us, ${d.imageBytes} bytes of images`
          : ""),
    );
  } else {
    lines.push(
      `criu-lab-verify: FAILED (exit ${report.exitCode}): ${where}: ${report.error ?? ""}`,
    );
  }
  if (report.scenarios) {
    if (report.doctor) lines.push(describeDoctor(report.doctor));
    for (const s of report.scenarios) {
      const what =
        s.status === "pass" && s.result
          ? describeScenario(s.name, s.result)
          : `${s.name}: ${(s.error ?? "").split("\n")[0] ?? ""}`;
      lines.push(`  ${s.status.padEnd(7)} ${what}`);
    }
  }
  if (report.ok) return lines.join("\n");
  if (report.demo?.imagesDir) {
    lines.push(`checkpoint images kept on the host in ${report.demo.imagesDir}`);
  }
  for (const s of report.scenarios ?? []) {
    if (s.status === "fail" && s.imagesDir) {
      lines.push(`${s.name}: images and logs kept on the host in ${s.imagesDir}`);
    }
  }
  for (const [path, text] of Object.entries(report.logs ?? {})) {
    lines.push(`--- ${path} (tail)`, text.trimEnd());
  }
  return lines.join("\n");
}
