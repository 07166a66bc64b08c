/**
 * `npm run plan` (also `criu-lab-local plan`): what `pulumi up` would create, without a cloud
 * account, credentials or the Pulumi CLI. The program runs under @pulumi/pulumi's own runner
 * against a local engine (plan/runner.ts, plan/engine.ts).
 */
import { ExitCode } from "../contract/checks";
import { joinNegativeNumbers } from "../verify/argv";
import { parseFlagArgs, runMain, UsageError } from "../verify/cliCommon";
import {
  buildReport,
  describeRegion,
  describeStackFile,
  renderFailure,
  renderTree,
} from "./printer";
import { loadProject, PlanInputError } from "./project";
import { runPlan } from "./runner";

/** How messages name this command: a name that exists (the bin), never the host's `criu-lab`. */
const PROG = "criu-lab-local plan";

export const USAGE = `usage: npm run plan -- [options]      (or: npx criu-lab-local plan [options])

Shows what \`pulumi up\` would create, offline: the program runs under Pulumi's own Node.js
runtime against a local engine. Lookups (AMI, zones, your public IP) are answered with
placeholders marked "looked up at deploy"; secrets are shown as [secret]. To write --json to
a file, keep npm's banner out of it: npm run -s plan -- --json > plan.json

options:
  -s, --stack NAME        stack whose Pulumi.<stack>.yaml to read (default: dev)
  -c, --config KEY=VALUE  override a config value, as \`pulumi up -c\` (repeatable); keys
                          Pulumi.yaml does not declare are refused
      --config-path       KEY is a path, as \`pulumi up --config-path\`:
                          -c 'sshAllowedCidrs[0]=203.0.113.7/32'
  -C, --dir DIR           project directory with Pulumi.yaml (default: current directory)
      --json              print the plan as JSON
      --timeout SECONDS   stop the program after this long (default: 300)
  -h, --help              show this help

exit codes: 0 plan shown; 1 the program failed (its error is shown); 2 usage or bad input`;

export async function main(argv: string[]): Promise<number> {
  // Bad input in the project's files or -c values: exit 2, the message without the usage.
  const known = (e: unknown) =>
    e instanceof PlanInputError
      ? { exitCode: ExitCode.usage, message: `error: ${e.message}` }
      : undefined;
  return runMain({ name: PROG, usage: USAGE, known }, () => plan(argv));
}

async function plan(argv: string[]): Promise<number> {
  const { values } = parseFlagArgs({
    args: joinNegativeNumbers(argv, ["--timeout"]),
    options: {
      stack: { type: "string", short: "s", default: "dev" },
      config: { type: "string", short: "c", multiple: true, default: [] },
      "config-path": { type: "boolean", default: false },
      dir: { type: "string", short: "C", default: process.cwd() },
      json: { type: "boolean", default: false },
      timeout: { type: "string", default: "300" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return ExitCode.ok;
  }
  const timeoutSeconds = Number(values.timeout);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new UsageError(`--timeout '${values.timeout}': expected a whole number of seconds > 0`);
  }

  const project = loadProject({
    dir: values.dir,
    stack: values.stack,
    overrides: values.config,
    configPath: values["config-path"],
  });
  if (project.stackFile === undefined) {
    // On stderr as well as in the header, so that --json users see it too.
    const others = project.otherStackFiles;
    console.error(
      `${PROG}: warning: stack '${project.stack}' has no Pulumi.${project.stack}.yaml in ` +
        `${project.dir}: only Pulumi.yaml's defaults and --config values apply` +
        (others.length > 0 ? ` (stack files here: ${others.join(", ")})` : ""),
    );
  }

  const result = await runPlan({ project, timeoutSeconds });
  const report = buildReport(result);
  const output = [result.stdout, result.stderr].filter((s) => s.trim() !== "").join("\n");
  if (report.ok) {
    console.log(values.json ? JSON.stringify(report, null, 2) : renderTree(report));
    // What the program printed (console.log): `pulumi up` shows it too. On stderr, so that
    // --json stays parseable.
    if (output !== "") console.error(`--- program output\n${output.trimEnd()}`);
    if (values.json) {
      console.error(
        `${PROG}: stack file ${describeStackFile(report)}; region ${describeRegion(report)}`,
      );
    }
    return ExitCode.ok;
  }
  // The error first and once, on stderr, before anything else: the line the user must read.
  const [first, ...more] = report.errors;
  console.error(
    [
      `${PROG}: error: ${first ?? "the plan failed"}`,
      ...more.map((e) => `${PROG}: error: ${e}`),
      // The program's own output helps when its error is not in the diagnostics (e.g. it
      // crashed before the SDK connected).
      ...(output !== "" ? ["--- program output", output.trimEnd()] : []),
    ].join("\n"),
  );
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const partial = renderFailure(report);
    if (partial !== "") console.log(partial);
  }
  return ExitCode.labBroken;
}
