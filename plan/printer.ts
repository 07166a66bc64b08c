/**
 * The plan as data (`--json`) and as a tree for people. Both are built from the same PlanReport,
 * in which secrets are already the text [secret] (plan/values.ts) and placeholder answers are
 * listed with the property paths they reached, so neither output can show a secret or pass a
 * placeholder off as a real value.
 */
import { basename } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { stringify as toYaml } from "yaml";
import { STACK_TYPE, PlannedLookup, PlannedResource, Severity } from "./engine";
import { UNDECRYPTED_SECRET } from "./project";
import { LOOKED_UP_AT_DEPLOY } from "./placeholders";
import { EXIT_ERROR_ALREADY_LOGGED, PlanResult } from "./runner";
import { PlanValue, SECRET, urnName } from "./values";

/** A registered resource as the report shows it. */
export interface ReportResource extends PlannedResource {
  /** Paths of inputs whose value is (or contains) a placeholder answer. */
  lookedUpAtDeploy: string[];
}

export interface ReportDiagnostic {
  severity: Exclude<Severity, "debug">;
  message: string;
  urn?: string;
}

export interface PlanReport {
  project: string;
  stack: string;
  /** The stack file the config came from (its name), or null when the stack has none. */
  stackFile: string | null;
  /** The region `pulumi up` would deploy to and where it comes from, or null when none is set. */
  region: { value: string; source: string } | null;
  /** True when the program ran to the end and every call was answered. */
  ok: boolean;
  /** The Pulumi CLI range `pulumi up` needs (the program's requirePulumiVersion), or null. */
  pulumiCli: string | null;
  /** Fully qualified config key to value ([secret] for secrets). */
  config: Record<string, { value: string; source: string }>;
  resources: ReportResource[];
  lookups: PlannedLookup[];
  /** The stack's outputs. */
  outputs: Record<string, PlanValue>;
  /** What the program logged (info, warnings, errors), as `pulumi up` shows under Diagnostics. */
  diagnostics: ReportDiagnostic[];
  /** Why the plan failed, when it did. */
  errors: string[];
}

/** Dotted paths (with [i] for lists) of every string in `value` that contains a needle. */
function pathsContaining(value: PlanValue, needles: string[], path: string): string[] {
  if (typeof value === "string") {
    return needles.some((needle) => needle !== "" && value.includes(needle)) ? [path] : [];
  }
  if (Array.isArray(value)) {
    return value.flatMap((item, i) => pathsContaining(item, needles, `${path}[${i}]`));
  }
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) =>
      pathsContaining(v, needles, path === "" ? k : `${path}.${k}`),
    );
  }
  return [];
}

/** What the runner wraps an uncaught error in (@pulumi/pulumi cmd/run/run.js). */
const RUNNER_WRAPPER = /^Running program '[^']*' failed with an unhandled exception:\n/;

/**
 * A program error as a user reads it: the error's own text, without the runner's wrapper and
 * without the stack trace and properties util.inspect appends (from the first `    at ` frame).
 */
export function programErrorText(message: string): string {
  // util.inspect marks an error that refers to itself with `<ref *1> `.
  const lines = message
    .replace(RUNNER_WRAPPER, "")
    .replace(/^<ref \*\d+> /, "")
    .split("\n");
  const frame = lines.findIndex((line) => /^\s+at\s/.test(line));
  return (frame >= 0 ? lines.slice(0, frame) : lines).join("\n").trimEnd();
}

export function buildReport(result: PlanResult): PlanReport {
  const { record, project } = result;
  const needles = record.lookups.flatMap((lookup) => lookup.placeholders);
  const resources = record.resources.map((r) => ({
    urn: r.urn,
    type: r.type,
    name: r.name,
    ...(r.parent !== undefined ? { parent: r.parent } : {}),
    custom: r.custom,
    ...(r.provider !== undefined ? { provider: r.provider } : {}),
    dependsOn: r.dependsOn,
    options: r.options,
    inputs: r.inputs,
    ...(r.outputs !== undefined && r.type !== STACK_TYPE ? { outputs: r.outputs } : {}),
    lookedUpAtDeploy: pathsContaining(r.inputs, needles, ""),
  }));
  const stack = record.resources.find((r) => r.type === STACK_TYPE);
  const diagnostics = record.logs.flatMap((log) =>
    log.severity === "debug"
      ? []
      : [
          {
            severity: log.severity,
            // The SDK colours stack traces for the CLI to render; a plan prints plain text.
            message: stripVTControlCharacters(log.message),
            ...(log.urn ? { urn: log.urn } : {}),
          },
        ],
  );
  const errors: string[] = [...record.problems];
  if (result.timedOut) {
    errors.push("the program did not finish in time and was stopped");
  }
  const programErrors = diagnostics.filter((d) => d.severity === "error");
  if (result.exitCode === EXIT_ERROR_ALREADY_LOGGED) {
    // The program's own error, once and without the runner's wrapper or a stack trace
    // (the one line the user must read); --json keeps the whole text under diagnostics.
    const texts = programErrors
      .map((d) => programErrorText(d.message))
      // A refused call is already listed (record.problems); the program's error repeats it.
      .filter((text) => !record.problems.some((problem) => text.includes(problem)));
    if (programErrors.length === 0) errors.push("the program failed (it logged no error)");
    errors.push(...texts);
  } else if (result.exitCode !== 0 && !result.timedOut) {
    errors.push(`the program exited with code ${String(result.exitCode)}`);
  }
  if (diagnostics.some((d) => d.severity === "error") && errors.length === 0) {
    errors.push("the program logged errors");
  }
  const config = Object.fromEntries(
    [...project.config].map(([key, entry]) => [
      key,
      {
        value: entry.secret ? SECRET : entry.value,
        source: entry.value === UNDECRYPTED_SECRET ? "stack (secure)" : entry.source,
      },
    ]),
  );
  return {
    project: project.name,
    stack: project.stack,
    stackFile: project.stackFile === undefined ? null : basename(project.stackFile),
    region: project.region ?? null,
    ok: result.ok,
    pulumiCli: record.pulumiVersionRange ?? null,
    config,
    resources,
    lookups: record.lookups,
    outputs: stack?.outputs ?? {},
    diagnostics,
    errors,
  };
}

/** Text values longer than this are elided in the tree (`--json` has them whole). */
const MAX_TEXT = 4000;

function elideLong(value: PlanValue): PlanValue {
  if (typeof value === "string" && value.length > MAX_TEXT) {
    return `${value.slice(0, 200)}… (${value.length} characters: see --json)`;
  }
  if (Array.isArray(value)) return value.map(elideLong);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, elideLong(v)]));
  }
  return value;
}

/** Properties as indented YAML, with a comment on each line that shows a placeholder. */
function renderProperties(values: Record<string, PlanValue>, needles: string[], indent: string) {
  if (Object.keys(values).length === 0) return [];
  const yaml = toYaml(elideLong(values), { lineWidth: 0, aliasDuplicateObjects: false });
  return yaml
    .trimEnd()
    .split("\n")
    .map((line) => {
      const marked = needles.some((needle) => needle !== "" && line.includes(needle));
      return `${indent}${line}${marked ? `  # placeholder: ${LOOKED_UP_AT_DEPLOY}` : ""}`;
    });
}

function renderDiagnostics(report: PlanReport, names: Map<string, string>): string[] {
  const shown = report.diagnostics;
  if (shown.length === 0) return [];
  const stackUrn = report.resources.find((r) => r.type === STACK_TYPE)?.urn;
  const groups = new Map<string, ReportDiagnostic[]>();
  for (const d of shown) {
    const key = d.urn ?? stackUrn ?? "";
    groups.set(key, [...(groups.get(key) ?? []), d]);
  }
  const lines = ["", "Diagnostics:"];
  for (const [urn, list] of groups) {
    const type = urn.split("::")[2]?.split("$").pop() ?? STACK_TYPE;
    lines.push(`  ${type} (${names.get(urn) ?? urnName(urn)}):`);
    for (const d of list) {
      const [first, ...rest] = d.message.trimEnd().split("\n");
      lines.push(`    ${d.severity}: ${first}`, ...rest.map((line) => `    ${line}`));
    }
  }
  return lines;
}

export function describeStackFile(report: PlanReport): string {
  return (
    report.stackFile ??
    `none (no Pulumi.${report.stack}.yaml: only Pulumi.yaml's defaults and --config values apply)`
  );
}

export function describeRegion(report: PlanReport): string {
  return report.region === null
    ? "none set (no aws:region, AWS_REGION or AWS_DEFAULT_REGION; the placeholders use us-east-1)"
    : `${report.region.value} (${report.region.source})`;
}

/**
 * What a failed plan shows on stdout after its error: the cloud resources the program
 * registered before it failed, if any; not the header, the config or the diagnostics, which
 * would bury the one error the user must read. --json has everything.
 */
export function renderFailure(report: PlanReport): string {
  const registered = report.resources.filter((r) => r.custom);
  if (registered.length === 0) return "";
  return [
    "Registered before the program failed:",
    ...registered.map((r) => `  + ${r.type}  ${r.name}`),
  ].join("\n");
}

/** The plan as a tree, for a terminal. */
export function renderTree(report: PlanReport): string {
  const needles = report.lookups.flatMap((lookup) => lookup.placeholders);
  const names = new Map(report.resources.map((r) => [r.urn, r.name]));
  const children = new Map<string, ReportResource[]>();
  const roots: ReportResource[] = [];
  for (const r of report.resources) {
    if (r.parent !== undefined && names.has(r.parent)) {
      children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
    } else {
      roots.push(r);
    }
  }
  const custom = report.resources.filter((r) => r.custom).length;
  const lines = [
    `Plan for project ${report.project}, stack ${report.stack}: ${report.resources.length} ` +
      `resources to create, ${custom} of them in the cloud.`,
    `Offline: no cloud, credentials or Pulumi CLI; values marked "${LOOKED_UP_AT_DEPLOY}" are ` +
      "placeholders, [secret] hides a secret.",
    `Stack file: ${describeStackFile(report)}`,
    `Region: ${describeRegion(report)}`,
    `Pulumi CLI: ${report.pulumiCli ?? "any (the program asks for no version)"}` +
      (report.pulumiCli === null ? "" : " (what `pulumi up` needs; not checked offline)"),
    "",
    "Config:",
    ...Object.entries(report.config).map(
      ([key, { value, source }]) => `  ${key}: ${JSON.stringify(value)}  (${source})`,
    ),
    ...(Object.keys(report.config).length === 0 ? ["  (none)"] : []),
    "",
    "Resources:",
  ];
  const walk = (r: ReportResource, depth: number): void => {
    const pad = "    ".repeat(depth);
    lines.push(`${pad}+ ${r.type}  ${r.name}`);
    const inner = `${pad}      `;
    lines.push(...renderProperties(r.inputs, needles, inner));
    const deps = r.dependsOn.map((urn) => names.get(urn) ?? urnName(urn));
    if (deps.length > 0) lines.push(`${inner}# depends on: ${deps.join(", ")}`);
    for (const [option, value] of Object.entries(r.options)) {
      lines.push(`${inner}# ${option}: ${JSON.stringify(value)}`);
    }
    for (const child of children.get(r.urn) ?? []) walk(child, depth + 1);
  };
  for (const root of roots) walk(root, 0);

  if (report.lookups.length > 0) {
    lines.push("", `Lookups (answered with placeholders, ${LOOKED_UP_AT_DEPLOY}):`);
    for (const lookup of report.lookups) {
      const answer = lookup.placeholders.length > 0 ? `: ${lookup.placeholders.join(", ")}` : "";
      lines.push(`  ${lookup.token}  -> ${lookup.note}${answer}`);
      lines.push(...renderProperties(lookup.args, [], "      "));
    }
  }
  if (Object.keys(report.outputs).length > 0) {
    lines.push("", "Outputs:", ...renderProperties(report.outputs, needles, "  "));
  }
  lines.push(...renderDiagnostics(report, names));
  if (report.errors.length > 0) {
    lines.push("", "The plan failed:", ...report.errors.map((e) => `  - ${e}`));
  }
  return lines.join("\n");
}
