import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  CheckOutputError,
  CheckResult,
  DemoResult,
  REMOTE_CHECKS,
  RemoteCheck,
  parseCheck,
  parseDemo,
} from "../verify/checks";

export interface LabVerificationArgs {
  /** Public address of the lab host. */
  host: pulumi.Input<string>;
  /** Login user. Default "ubuntu". */
  user?: string;
  /** OpenSSH private key of the user (secret). */
  privateKey: pulumi.Input<string>;
  /** The host's public key line: connections to any other key are refused. */
  hostPublicKey: pulumi.Input<string>;
  /** What the first command waits for (the instance). */
  dependsOn?: pulumi.Resource[];
  /** The checks re-run when any of these change (the user-data hash, the instance id). */
  triggers: pulumi.Input<unknown>[];
  /** Seconds per dial attempt. Default 20. */
  perDialTimeout?: number;
  /**
   * Failed dials before giving up. Default 30: a cold boot answers SSH within a minute or
   * two, and an address the security group blocks still fails within ~10 minutes.
   */
  dialErrorLimit?: number;
}

/**
 * Proves the lab works as part of `pulumi up`: over SSH with the host key pinned, it waits
 * for cloud-init, then runs `criu-lab check` and `criu-lab demo`, the same commands and the
 * same parsers as the node-ssh verifier (verify/checks.ts). A failed check fails the deploy.
 */
export class LabVerification extends pulumi.ComponentResource {
  public readonly cloudInit: command.remote.Command;
  public readonly checkCommand: command.remote.Command;
  public readonly demoCommand: command.remote.Command;
  /** Parsed `criu-lab check --json`; resolving it throws when the check failed. */
  public readonly check: pulumi.Output<CheckResult>;
  /** Parsed `criu-lab demo --json`; resolving it throws when the demo failed. */
  public readonly demo: pulumi.Output<DemoResult>;

  constructor(name: string, args: LabVerificationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:verification:LabVerification", name, {}, opts);

    // @pulumi/command ignores the host key unless connection.hostKey is set.
    const connection: command.types.input.remote.ConnectionArgs = {
      host: args.host,
      user: args.user ?? "ubuntu",
      privateKey: pulumi.secret(args.privateKey),
      hostKey: args.hostPublicKey,
      perDialTimeout: args.perDialTimeout ?? 20,
      dialErrorLimit: args.dialErrorLimit ?? 30,
    };

    const run = (role: string, check: RemoteCheck, dependsOn: pulumi.Resource[]) =>
      new command.remote.Command(
        `${name}-${role}`,
        {
          connection,
          create: withTimeout(check),
          triggers: args.triggers,
          // stdout is the check's own status or JSON; stderr can carry raw log tails from
          // the host, so it is not streamed (a failure still shows it in the error).
          logging: "stdout",
          // sshd refuses unknown environment variables; sending them only adds warnings.
          addPreviousOutputInEnv: false,
        },
        {
          parent: this,
          dependsOn,
          customTimeouts: { create: `${check.timeoutSeconds + 300}s` },
        },
      );

    this.cloudInit = run("cloud-init", REMOTE_CHECKS.cloudInit, args.dependsOn ?? []);
    this.checkCommand = run("check", REMOTE_CHECKS.check, [this.cloudInit]);
    this.demoCommand = run("demo", REMOTE_CHECKS.demo, [this.checkCommand]);

    this.check = this.checkCommand.stdout.apply(requirePassingCheck);
    this.demo = this.demoCommand.stdout.apply(requirePassingDemo);

    // check/demo throw on a failed lab; they reach `pulumi up` through the stack outputs
    // (index.ts), so registering them here as well would only repeat the same error.
    this.registerOutputs({ stdout: this.demoCommand.stdout });
  }
}

/**
 * Runs a check under coreutils `timeout`, so a hung host cannot hang `pulumi up`, with a line
 * on stderr every minute so that a NAT between the deployer and the host does not drop the
 * silent SSH connection while cloud-init builds CRIU (the provider sends no keepalives).
 */
export function withTimeout(check: RemoteCheck): string {
  const quoted = `'${check.command.replace(/'/g, `'\\''`)}'`;
  return [
    // sleep gets no inherited output: the session ends as soon as the check does.
    `( while sleep 60 </dev/null >/dev/null 2>&1; do echo "criu-lab: ${check.name}: still running" >&2; done ) &`,
    "keepalive=$!",
    "rc=0",
    `timeout --kill-after=10 ${check.timeoutSeconds} bash -c ${quoted} || rc=$?`,
    'kill "$keepalive" 2>/dev/null || true',
    `if [ "$rc" -eq 124 ]; then echo "criu-lab: ${check.name} timed out after ${check.timeoutSeconds}s" >&2; fi`,
    'exit "$rc"',
  ].join("\n");
}

/** The parsed check; throws (failing `pulumi up`) with what failed when it did not pass. */
export function requirePassingCheck(stdout: string): CheckResult {
  const result = parsed(() => parseCheck(stdout));
  if (!result.ok) {
    throw new Error(
      `criu-lab verification failed: ${REMOTE_CHECKS.check.name} on the lab host did not pass` +
        ` (CRIU ${result.criuVersion || "?"}, kernel ${result.kernel || "?"}): ` +
        `${result.error ?? "no error given"}${result.output ? `\n${result.output}` : ""}`,
    );
  }
  return result;
}

/** The parsed demo; throws (failing `pulumi up`) with what failed when it did not pass. */
export function requirePassingDemo(stdout: string): DemoResult {
  const result = parsed(() => parseDemo(stdout));
  if (!result.ok) {
    throw new Error(
      `criu-lab verification failed: ${REMOTE_CHECKS.demo.name} on the lab host did not pass: ` +
        `${result.error ?? "no error given"}` +
        (result.imagesDir ? ` (checkpoint images kept in ${result.imagesDir} on the host)` : ""),
    );
  }
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
