/**
 * `criu-lab plan` (npm run plan): what `pulumi up` would create, without a cloud account,
 * credentials or the Pulumi CLI. The program runs under @pulumi/pulumi's own runner against a
 * local engine (plan/runner.ts, plan/engine.ts). Issue 6.
 */
import { parseArgs } from "node:util";
import { ExitCode } from "../verify/checks";
import { buildReport, renderTree } from "./printer";
import { loadProject, PlanInputError } from "./project";
import { runPlan } from "./runner";

const USAGE = `usage: criu-lab plan [options]

Shows what \`pulumi up\` would create, offline: the program runs under Pulumi's own Node.js
runtime against a local engine. Lookups (AMI, zones, your public IP) are answered with
placeholders marked "looked up at deploy"; secrets are shown as [secret].

options:
  -s, --stack NAME        stack whose Pulumi.<stack>.yaml to read (default: dev)
  -c, --config KEY=VALUE  override a config value, as \`pulumi up -c\` (repeatable)
  -C, --dir DIR           project directory with Pulumi.yaml (default: current directory)
      --json              print the plan as JSON
      --timeout SECONDS   stop the program after this long (default: 300)
  -h, --help              show this help

exit codes: 0 plan shown; 1 the program failed (its error is shown); 2 usage or bad input`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        stack: { type: "string", short: "s", default: "dev" },
        config: { type: "string", short: "c", multiple: true, default: [] },
        dir: { type: "string", short: "C", default: process.cwd() },
        json: { type: "boolean", default: false },
        timeout: { type: "string", default: "300" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`criu-lab plan: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return ExitCode.usage;
  }
  if (values.help) {
    console.log(USAGE);
    return ExitCode.ok;
  }
  const timeoutSeconds = Number(values.timeout);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds <= 0) {
    console.error(
      `criu-lab plan: --timeout '${values.timeout}': expected a whole number of seconds > 0`,
    );
    return ExitCode.usage;
  }

  let project;
  try {
    project = loadProject({ dir: values.dir, stack: values.stack, overrides: values.config });
  } catch (err) {
    if (!(err instanceof PlanInputError)) throw err;
    console.error(`criu-lab plan: error: ${err.message}`);
    return ExitCode.usage;
  }

  const result = await runPlan({ project, timeoutSeconds });
  const report = buildReport(result);
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    console.log(renderTree(report));
  }
  const output = [result.stdout, result.stderr].filter((s) => s.trim() !== "").join("\n");
  if (report.ok) {
    // What the program printed (console.log): `pulumi up` shows it too. On stderr, so that
    // --json stays parseable.
    if (output !== "") console.error(`--- program output\n${output.trimEnd()}`);
    return ExitCode.ok;
  }
  // The program's own output helps when its error is not in the diagnostics (e.g. it crashed
  // before the SDK connected).
  const firstError = report.diagnostics.find((d) => d.severity === "error")?.message;
  console.error(
    [
      `criu-lab plan: the plan failed: ${report.errors.join("; ")}`,
      ...(firstError !== undefined && values.json ? [`error: ${firstError}`] : []),
      ...(output !== "" ? ["--- program output", output.trimEnd()] : []),
    ].join("\n"),
  );
  return ExitCode.labBroken;
}
