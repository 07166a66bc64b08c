import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  CheckOutputError,
  CheckResult,
  DemoResult,
  DoctorResult,
  REMOTE_CHECKS,
  RemoteCheck,
  SCENARIO_CHECKS,
  ScenarioName,
  parseCheck,
  parseDemo,
  parseDoctor,
} from "../contract/checks";

export interface LabVerificationArgs {
  /** Public address of the lab host. */
  host: pulumi.Input<string>;
  /** Login user. Default "ubuntu". */
  user?: string;
  /** OpenSSH private key of the user (secret). */
  privateKey: pulumi.Input<string>;
  /** The host's public key line: connections to any other key are refused. */
  hostPublicKey: pulumi.Input<string>;
  /** What the first command waits for (the instance, the copy of the lab's files). */
  dependsOn?: pulumi.Resource[];
  /** The checks re-run when any of these change (the user-data hash, the instance id). */
  triggers: pulumi.Input<unknown>[];
  /**
   * Which host a failure names, e.g. "seat 03 host a (criu-lab-seat-03-a)" in a class.
   * Default "the lab host".
   */
  label?: string;
  /**
   * Scenarios to run after the demo (config `verifyScenarios`), one after another, each judged
   * on the host like the demo. Default none.
   */
  scenarios?: readonly ScenarioName[];
  /** Seconds per dial attempt. Default 20. */
  perDialTimeout?: number;
  /**
   * Failed dials before giving up. Default 30: a cold boot answers SSH within a minute or
   * two, and an address the security group blocks still fails within ~10 minutes.
   */
  dialErrorLimit?: number;
}

/** What every connection to the lab host is made of (LabVerification, LabFiles). */
export type PinnedConnectionArgs = Pick<
  LabVerificationArgs,
  "host" | "user" | "privateKey" | "hostPublicKey" | "perDialTimeout" | "dialErrorLimit"
>;

/**
 * The SSH connection to the lab host, its host key pinned: @pulumi/command ignores the host
 * key unless `connection.hostKey` is set. The private key stays secret.
 */
export function pinnedConnection(
  args: PinnedConnectionArgs,
): command.types.input.remote.ConnectionArgs {
  return {
    host: args.host,
    user: args.user ?? "ubuntu",
    privateKey: pulumi.secret(args.privateKey),
    hostKey: args.hostPublicKey,
    perDialTimeout: args.perDialTimeout ?? 20,
    dialErrorLimit: args.dialErrorLimit ?? 30,
  };
}

/**
 * Proves the lab works as part of `pulumi up`: over SSH with the host key pinned, it waits
 * for cloud-init, then runs `criu-lab check`, `criu-lab doctor` (what the host can run: the
 * stack output `doctor`), `criu-lab demo` and the scenarios the stack opted in to
 * (`verifyScenarios`), the same commands and the same contracts as the node-ssh verifier
 * (contract/checks.ts). A failed check fails the deploy, its first line saying which step
 * failed and why (`remoteStep`).
 */
export class LabVerification extends pulumi.ComponentResource {
  public readonly cloudInit: command.remote.Command;
  public readonly checkCommand: command.remote.Command;
  public readonly demoCommand: command.remote.Command;
  /** `criu-lab doctor --json`: always run, after the check. */
  public readonly doctorCommand: command.remote.Command;
  /** One per scenario asked for (`scenarios`), in that order; empty when none were. */
  public readonly scenarioCommands: command.remote.Command[];
  /** Parsed `criu-lab check --json`; resolving it throws when the check failed. */
  public readonly check: pulumi.Output<CheckResult>;
  /** Parsed `criu-lab demo --json`; resolving it throws when the demo failed. */
  public readonly demo: pulumi.Output<DemoResult>;
  /** What the host can run and why not (the stack output `doctor`): plain data, no secrets. */
  public readonly doctor: pulumi.Output<DoctorResult>;

  constructor(name: string, args: LabVerificationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:verification:LabVerification", name, {}, opts);
    const connection = pinnedConnection(args);

    const run = (role: string, check: RemoteCheck, dependsOn: pulumi.Resource[]) => {
      const step = remoteStep(check, args.label);
      // The host-side `timeout` inside the step is what bounds a running command; these only
      // bound the provider's work around it, dialling included. `update` too: with no
      // `update` command, an update (new triggers) re-runs `create`.
      const limit = `${check.timeoutSeconds + 300}s`;
      return new command.remote.Command(
        `${name}-${role}`,
        {
          connection,
          create: step.create,
          stdin: step.stdin,
          triggers: args.triggers,
          // stdout is the check's own status or JSON; stderr can carry raw log tails from
          // the host, so it is not streamed (a failure still shows it in the error).
          logging: "stdout",
          // sshd refuses unknown environment variables; sending them only adds warnings.
          addPreviousOutputInEnv: false,
        },
        { parent: this, dependsOn, customTimeouts: { create: limit, update: limit } },
      );
    };

    this.cloudInit = run("cloud-init", REMOTE_CHECKS.cloudInit, args.dependsOn ?? []);
    this.checkCommand = run("check", REMOTE_CHECKS.check, [this.cloudInit]);
    this.demoCommand = run("demo", REMOTE_CHECKS.demo, [this.checkCommand]);
    this.doctorCommand = run("doctor", REMOTE_CHECKS.doctor, [this.checkCommand]);
    // After the demo and the doctor, one at a time: each fills memory and disk with images.
    // The host judges each (remoteStep): a failed scenario fails its Command, and the line
    // after the provider's names the scenario and its error. A scenario the doctor says this
    // host cannot run fails too, with the doctor's reason: the stack asked for it to be proven.
    this.scenarioCommands = [];
    for (const name of args.scenarios ?? []) {
      const previous = this.scenarioCommands.at(-1);
      this.scenarioCommands.push(
        run(
          `scenario-${name}`,
          SCENARIO_CHECKS[name],
          previous ? [previous] : [this.demoCommand, this.doctorCommand],
        ),
      );
    }

    // The host judged these already (remoteStep): a Command that succeeded passed there, so
    // these parse a pass. They still throw, saying so, should the two judges ever disagree.
    this.check = this.checkCommand.stdout.apply((out) => requirePassingCheck(out, args.label));
    this.demo = this.demoCommand.stdout.apply((out) => requirePassingDemo(out, args.label));
    this.doctor = this.doctorCommand.stdout.apply((out) => requirePassingDoctor(out, args.label));

    // A failed step fails its Command, and check/demo throw on a failed lab; they reach
    // `pulumi up` through the resource and the stack outputs (index.ts), so registering any
    // of them here as well would only repeat the same error.
    this.registerOutputs({});
  }
}

/** A remote Command's `create` (short: the provider's error quotes it) and its `stdin`. */
export interface RemoteStep {
  create: string;
  stdin: string;
}

/**
 * A check as a remote Command whose failure reads well. @pulumi/command fails a Command that
 * exits non-zero with `Process exited with status N: running "<create>":` and then the
 * step's stdout and stderr as they came (provider/pkg/provider/remote/commandOutputs.go:
 * `fmt.Errorf("%w: running %q:\n%s", ...)`). So the script goes on stdin, `create` is a short
 * `bash -s` naming the step, and the script prints one line first, which step failed and why
 * (the host's JSON `error` with where the images are kept, a timeout, the first line of
 * stderr), then the raw output.
 *
 * Pass or fail is decided here, on the host, not by the program after the Command: a Command
 * that succeeds is stored as succeeded and never re-run, so output that breaks the check's
 * contract (no JSON, `ok` false, a wrong field, a restore that did not continue) exits 1 and
 * fails the Command itself, which the next `pulumi up` runs again.
 *
 * The check runs under coreutils `timeout`, so a hung host cannot hang `pulumi up`. Every
 * minute a carriage return goes to stderr, so that a NAT between the deployer and the host
 * does not drop the silent SSH connection while cloud-init builds CRIU (the provider sends no
 * keepalives): a terminal shows nothing of it, and the reason stays the first line of text.
 */
export function remoteStep(check: RemoteCheck, where = LAB_HOST): RemoteStep {
  const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
  // The host's own judge (`criu-lab judge`, host/criu_lab/judge.py) reads the check's
  // rules from the lab's files (rules.json, contract/rules.ts); without criu-lab there is
  // nothing to judge by, and the step fails saying so, with what the check printed.
  const firstReason = [
    '  reason="$(grep -m1 -v "^[[:space:]]*$" "$err" || true)"',
    '  [ -n "$reason" ] || reason="$(grep -v "^[[:space:]]*$" "$out" | tail -n 1 || true)"',
  ];
  const judge = check.contract
    ? [
        "if command -v criu-lab >/dev/null 2>&1; then",
        `  criu-lab judge ${check.contract} "$rc" "$out" "$err" >"$verdict" 2>&1 || failed=1`,
        "else",
        "  failed=1",
        ...firstReason,
        '  echo "no criu-lab command on the host to judge its output: ${reason:-no output}" >"$verdict"',
        "fi",
      ]
    : [
        'if [ "$rc" -ne 0 ]; then',
        "  failed=1",
        ...firstReason,
        '  echo "${reason:-no output}" >"$verdict"',
        "fi",
      ];
  const script = [
    // One compound command: bash reads all of it before it runs any of it, so nothing the
    // step runs can read the rest of the script from stdin.
    "{",
    `step=${quote(check.name)}`,
    // sleep gets no inherited output: the session ends as soon as the check does. Started
    // before the EXIT trap exists: a subshell killed before it has reset the traps it
    // inherited runs that trap, and removed the verdict before it was read (seen here, about
    // 1 run in 40, when the check ends at once).
    "( while sleep 60 </dev/null >/dev/null 2>&1; do printf '\\r' >&2; done ) &",
    "keepalive=$!",
    'out="$(mktemp)" err="$(mktemp)" verdict="$(mktemp)"',
    'trap \'rm -f "$out" "$err" "$verdict"\' EXIT',
    "rc=0 failed=0",
    `timeout --kill-after=10 ${check.timeoutSeconds} bash -c ${quote(check.command)} >"$out" 2>"$err" </dev/null || rc=$?`,
    'kill "$keepalive" 2>/dev/null || true',
    ...judge,
    'if [ "$rc" -eq 124 ]; then',
    `  failed=1; echo "timed out after ${check.timeoutSeconds}s" >"$verdict"`,
    "fi",
    'if [ "$failed" -eq 0 ]; then cat "$out"; cat "$err" >&2; exit 0; fi',
    'exited=""; if [ "$rc" -ne 0 ]; then exited=" (exit $rc)"; fi',
    `echo "criu-lab: $step failed on ${where.replace(/["$`\\]/g, "")}: $(head -n 1 "$verdict")$exited"`,
    'tail -n +2 "$verdict"',
    'echo "--- stdout of $step:"; cat "$out"',
    'echo "--- stderr of $step:"; cat "$err"',
    'if [ "$rc" -ne 0 ]; then exit "$rc"; fi',
    "exit 1",
    "} </dev/null",
    "",
  ].join("\n");
  return {
    create: `bash -s  # criu-lab: ${check.name} (script on stdin; on failure the next line says why)`,
    stdin: script,
  };
}

/** Who a failure names by default: the one host of a single-seat lab. */
const LAB_HOST = "the lab host";

/**
 * Throws (failing `pulumi up`) unless `result` passed, naming the check, the host and its
 * error; `about` follows "did not pass", `after` the error.
 */
function requirePassed(
  result: { ok: boolean; error?: string },
  check: string,
  where: string,
  about = "",
  after = "",
): void {
  if (!result.ok) {
    throw new Error(
      `criu-lab verification failed: ${check} on ${where} did not pass${about}: ` +
        `${result.error ?? "no error given"}${after}`,
    );
  }
}

/** The parsed check; throws (failing `pulumi up`) with what failed when it did not pass. */
export function requirePassingCheck(stdout: string, where = LAB_HOST): CheckResult {
  const result = parsed(() => parseCheck(stdout));
  const versions = ` (CRIU ${result.criuVersion || "?"}, kernel ${result.kernel || "?"})`;
  requirePassed(
    result,
    REMOTE_CHECKS.check.name,
    where,
    versions,
    result.output ? `\n${result.output}` : "",
  );
  return result;
}

/** The parsed demo; throws (failing `pulumi up`) with what failed when it did not pass. */
export function requirePassingDemo(stdout: string, where = LAB_HOST): DemoResult {
  const result = parsed(() => parseDemo(stdout));
  const kept = result.imagesDir
    ? ` (checkpoint images kept in ${result.imagesDir} on the host)`
    : "";
  requirePassed(result, REMOTE_CHECKS.demo.name, where, "", kept);
  return result;
}

/** The parsed doctor; throws (failing `pulumi up`) with what failed when it did not pass. */
export function requirePassingDoctor(stdout: string, where = LAB_HOST): DoctorResult {
  const result = parsed(() => parseDoctor(stdout));
  requirePassed(result, REMOTE_CHECKS.doctor.name, where);
  return result;
}

/** Output that breaks the contract fails the deploy too, quoting the start of what came back. */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof CheckOutputError)) throw err;
    throw new Error(
      `criu-lab verification failed: ${err.message}; the host printed: ${JSON.stringify(err.raw.slice(0, 500))}`,
    );
  }
}
