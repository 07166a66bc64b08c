/**
 * Runs the program the way `pulumi preview` does, minus the CLI: @pulumi/pulumi's own runner
 * (`node <project>/node_modules/@pulumi/pulumi/cmd/run`) with the arguments and environment
 * the Node.js language host gives it (pulumi/pulumi sdk/nodejs/cmd/pulumi-language-nodejs,
 * execRuntime and constructArguments): `--monitor --engine --organization --project
 * --root-directory --stack --pwd --dry-run --parallel <entry point>`, PULUMI_CONFIG,
 * PULUMI_CONFIG_SECRET_KEYS, PULUMI_NODEJS_TYPESCRIPT and PULUMI_NODEJS_TSCONFIG_PATH.
 * So the program is compiled by ts-node with the project's tsconfig, reads its config from the
 * environment and serialises its resources and lookups exactly as under `pulumi up`.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { configEnvironment, PlanProject } from "./project";
import { PlanRecord, startPlanEngine } from "./engine";

/** `pulumi up --parallel`'s default: unbounded. */
const PARALLEL_UNBOUNDED = "2147483647";
/** The organization name of the DIY (local file) backend, which needs no account. */
const ORGANIZATION = "organization";
const PRELOAD = join(__dirname, "preload.cjs");
/** The runner's exit code after it already logged the error through the engine (cmd/run). */
export const EXIT_ERROR_ALREADY_LOGGED = 32;

export interface PlanResult {
  project: PlanProject;
  record: PlanRecord;
  /** The runner's exit code (null when it was killed). */
  exitCode: number | null;
  /** Set when the runner was killed after `timeoutSeconds`. */
  timedOut: boolean;
  /** What the program and the runner printed (console.log goes here, as under the CLI). */
  stdout: string;
  stderr: string;
  /** True when the program ran to the end without errors and every call was answered. */
  ok: boolean;
}

export interface RunPlanOptions {
  project: PlanProject;
  /** Kill the runner after this long (the program may hang on an output that never settles). */
  timeoutSeconds?: number;
}

/** Environment from this process, minus variables that would change how the program runs. */
function baseEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^PULUMI_(CONFIG|NODEJS_|ENGINE|MONITOR)/.test(key)) continue;
    env[key] = value;
  }
  return env;
}

/** The runner inside the project's own @pulumi/pulumi, as the language host locates it. */
function locateRunner(dir: string): string {
  try {
    return require.resolve("@pulumi/pulumi/cmd/run", { paths: [dir] });
  } catch {
    throw new Error(
      `@pulumi/pulumi is not installed for the project in ${dir}: run npm install there first`,
    );
  }
}

export async function runPlan(options: RunPlanOptions): Promise<PlanResult> {
  const { project } = options;
  const runner = locateRunner(project.dir);
  // The region the AWS provider would use: aws:region, else AWS_REGION/AWS_DEFAULT_REGION.
  const region = project.region?.value;
  const engine = await startPlanEngine({
    project: project.name,
    stack: project.stack,
    invokeContext: { region },
  });
  try {
    const args = [
      ...project.nodeArgs,
      // Works around a Node 20.20 bug that makes printing a program error very slow: see there.
      "--require",
      PRELOAD,
      runner,
      "--monitor",
      engine.address,
      "--engine",
      engine.address,
      "--organization",
      ORGANIZATION,
      "--project",
      project.name,
      "--root-directory",
      project.dir,
      "--stack",
      project.stack,
      "--pwd",
      project.dir,
      "--dry-run",
      "--parallel",
      PARALLEL_UNBOUNDED,
      project.entryPoint,
    ];
    const env: NodeJS.ProcessEnv = { ...baseEnvironment(), ...configEnvironment(project) };
    if (project.typescript) env.PULUMI_NODEJS_TYPESCRIPT = "true";
    if (project.tsconfig !== undefined) env.PULUMI_NODEJS_TSCONFIG_PATH = project.tsconfig;

    const child = spawn(process.execPath, args, {
      cwd: project.dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        // Only the runner this call started, by its own handle (PID).
        child.kill("SIGKILL");
      },
      (options.timeoutSeconds ?? 300) * 1000,
    );
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => resolve(code));
    }).finally(() => clearTimeout(timer));

    const { record } = engine;
    const loggedError = record.logs.some((log) => log.severity === "error");
    return {
      project,
      record,
      exitCode,
      timedOut,
      stdout,
      stderr,
      ok: exitCode === 0 && !timedOut && !loggedError && record.problems.length === 0,
    };
  } finally {
    await engine.close();
  }
}
