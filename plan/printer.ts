/**
 * The plan as data (`--json`) and as a tree for people. Both are built from the same PlanReport,
 * in which secrets are already the text [secret] (plan/values.ts) and placeholder answers are
 * listed with the property paths they reached, so neither output can show a secret or pass a
 * placeholder off as a real value.
 */
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
  /** True when the program ran to the end and every call was answered. */
  ok: boolean;
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
  if (result.exitCode === EXIT_ERROR_ALREADY_LOGGED) {
    errors.push("the program failed: its error is under Diagnostics");
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
    ok: result.ok,
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
