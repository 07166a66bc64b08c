/**
 * Reads a Pulumi project the way the Pulumi CLI does before it starts the language host:
 * Pulumi.yaml (runtime options, entry point, config schema with defaults) and the stack file
 * Pulumi.<stack>.yaml, plus `--config key=value` overrides. The result is the environment
 * the Node.js language host gives `@pulumi/pulumi/cmd/run`: PULUMI_CONFIG (keys in the
 * `<namespace>:config:<name>` form the language host still writes) and
 * PULUMI_CONFIG_SECRET_KEYS (https://github.com/pulumi/pulumi, sdk/nodejs/cmd/pulumi-language-nodejs/main.go,
 * constructConfig and constructConfigSecretKeys).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

/** Bad input to the plan (project files, flags): reported with exit code 2, nothing run. */
export class PlanInputError extends Error {
  override name = "PlanInputError";
}

/**
 * What stands in for a `secure:` stack value: it is encrypted with the stack's secrets provider,
 * which an offline plan has no access to. The program receives it as a secret, so it is never
 * printed (it is shown as [secret] like any other secret).
 */
export const UNDECRYPTED_SECRET = "(encrypted in the stack file: not decrypted offline)";

export interface ConfigValue {
  value: string;
  secret: boolean;
  /** Where the value comes from, for the plan's header. */
  source: "default" | "project" | "stack" | "override";
}

export interface PlanProject {
  /** Absolute directory of Pulumi.yaml. */
  dir: string;
  name: string;
  stack: string;
  /** Entry point handed to the runner: Pulumi.yaml `main`, or "." (package.json `main`). */
  entryPoint: string;
  /** `runtime.options.typescript` (the language host's default is true). */
  typescript: boolean;
  /** `runtime.options.tsconfig`, when set. */
  tsconfig?: string;
  /** `runtime.options.nodeargs`, split on whitespace. */
  nodeArgs: string[];
  /** Fully qualified key (`namespace:name`) to value. */
  config: Map<string, ConfigValue>;
  /** The stack file that was read, if there is one. */
  stackFile?: string;
}

type SchemaType = "string" | "integer" | "boolean" | "array" | "object";

interface KeySchema {
  type?: SchemaType;
  hasDefault: boolean;
  defaultValue?: unknown;
  secret: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function readYaml(path: string): unknown {
  try {
    return parseYaml(readFileSync(path, "utf8"));
  } catch (err) {
    throw new PlanInputError(
      `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** `name` → `project:name`; `aws:region` stays as it is. */
function qualify(project: string, key: string): string {
  return key.includes(":") ? key : `${project}:${key}`;
}

/** Config values reach the program as strings; structured values as JSON, like the CLI does. */
function configString(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * A project `config:` entry is a schema when it is an object with schema fields
 * (https://www.pulumi.com/docs/iac/concepts/projects/project-file/#config-options);
 * anything else is a plain project-level value.
 */
function schemaOf(entry: unknown): KeySchema | undefined {
  if (!isRecord(entry)) return undefined;
  const schemaFields = ["type", "default", "description", "secret", "items", "value"];
  if (!Object.keys(entry).some((k) => schemaFields.includes(k))) return undefined;
  const type = entry.type;
  if (
    type !== undefined &&
    !["string", "integer", "boolean", "array", "object"].includes(type as string)
  ) {
    throw new PlanInputError(
      `Pulumi.yaml: config type '${String(type)}' is not one of string, integer, boolean, array, object`,
    );
  }
  const hasValue = "value" in entry;
  return {
    type: type as SchemaType | undefined,
    hasDefault: hasValue || "default" in entry,
    defaultValue: hasValue ? entry.value : entry.default,
    secret: entry.secret === true,
  };
}

/** Checks a value against its schema type the way the CLI does before it runs the program. */
function checkType(stack: string, key: string, value: string, type: SchemaType | undefined): void {
  if (type === undefined || type === "string") return;
  const ok =
    type === "integer"
      ? /^-?\d+$/.test(value)
      : type === "boolean"
        ? value === "true" || value === "false"
        : (() => {
            try {
              const parsed: unknown = JSON.parse(value);
              return type === "array" ? Array.isArray(parsed) : isRecord(parsed);
            } catch {
              return false;
            }
          })();
  if (!ok) {
    throw new PlanInputError(
      `Stack '${stack}' with configuration key '${key}' must be of type '${type}' (got '${value}')`,
    );
  }
}

/** Parses `key=value` from `--config`; the key may omit the project namespace. */
export function parseOverride(project: string, text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new PlanInputError(
      `--config '${text}': expected key=value (e.g. instanceType=t3.medium)`,
    );
  }
  return [qualify(project, text.slice(0, eq).trim()), text.slice(eq + 1)];
}

export interface LoadProjectOptions {
  dir: string;
  stack: string;
  /** `key=value` texts from `--config`. */
  overrides?: string[];
}

export function loadProject(options: LoadProjectOptions): PlanProject {
  const dir = resolve(options.dir);
  const projectFile = join(dir, "Pulumi.yaml");
  if (!existsSync(projectFile)) {
    throw new PlanInputError(`no Pulumi.yaml in ${dir} (use --dir to point at the project)`);
  }
  const doc = readYaml(projectFile);
  if (!isRecord(doc) || typeof doc.name !== "string" || doc.name === "") {
    throw new PlanInputError(`${projectFile}: 'name' is missing`);
  }
  const name = doc.name;
  const runtime = doc.runtime;
  const runtimeName = isRecord(runtime) ? runtime.name : runtime;
  if (runtimeName !== "nodejs") {
    throw new PlanInputError(
      `${projectFile}: runtime is '${String(runtimeName)}'; the offline plan runs nodejs programs only`,
    );
  }
  const runtimeOptions = isRecord(runtime) && isRecord(runtime.options) ? runtime.options : {};
  if (!/^[A-Za-z0-9_.-]+$/.test(options.stack)) {
    throw new PlanInputError(
      `--stack '${options.stack}': a stack name has letters, digits, '-', '_' or '.' only`,
    );
  }

  const config = new Map<string, ConfigValue>();
  const schemas = new Map<string, KeySchema>();
  const projectConfig = isRecord(doc.config) ? doc.config : {};
  for (const [rawKey, entry] of Object.entries(projectConfig)) {
    const key = qualify(name, rawKey);
    const schema = schemaOf(entry);
    if (schema === undefined) {
      config.set(key, { value: configString(entry), secret: false, source: "project" });
      continue;
    }
    schemas.set(key, schema);
    if (schema.hasDefault) {
      config.set(key, {
        value: configString(schema.defaultValue),
        secret: schema.secret,
        source: "default",
      });
    }
  }

  const stackFile = join(dir, `Pulumi.${options.stack}.yaml`);
  const hasStackFile = existsSync(stackFile);
  if (hasStackFile) {
    const stackDoc = readYaml(stackFile);
    const stackConfig = isRecord(stackDoc) && isRecord(stackDoc.config) ? stackDoc.config : {};
    for (const [rawKey, value] of Object.entries(stackConfig)) {
      const key = qualify(name, rawKey);
      const secure = isRecord(value) && typeof value.secure === "string";
      config.set(key, {
        value: secure ? UNDECRYPTED_SECRET : configString(value),
        secret: secure || (schemas.get(key)?.secret ?? false),
        source: "stack",
      });
    }
  }

  for (const text of options.overrides ?? []) {
    const [key, value] = parseOverride(name, text);
    config.set(key, { value, secret: schemas.get(key)?.secret ?? false, source: "override" });
  }

  for (const [key, schema] of schemas) {
    const entry = config.get(key);
    if (entry === undefined) {
      throw new PlanInputError(
        `Stack '${options.stack}' is missing configuration value '${key}' (set it with --config ${key}=...)`,
      );
    }
    if (entry.value !== UNDECRYPTED_SECRET) checkType(options.stack, key, entry.value, schema.type);
  }

  return {
    dir,
    name,
    stack: options.stack,
    entryPoint: typeof doc.main === "string" && doc.main !== "" ? doc.main : ".",
    typescript: runtimeOptions.typescript !== false,
    tsconfig: typeof runtimeOptions.tsconfig === "string" ? runtimeOptions.tsconfig : undefined,
    nodeArgs:
      typeof runtimeOptions.nodeargs === "string"
        ? runtimeOptions.nodeargs.split(/\s+/).filter(Boolean)
        : [],
    config,
    stackFile: hasStackFile ? stackFile : undefined,
  };
}

/** PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS as the Node.js language host sets them. */
export function configEnvironment(project: PlanProject): Record<string, string> {
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, entry] of project.config) {
    const colon = key.indexOf(":");
    values[`${key.slice(0, colon)}:config:${key.slice(colon + 1)}`] = entry.value;
    if (entry.secret) secretKeys.push(key);
  }
  return {
    PULUMI_CONFIG: JSON.stringify(values),
    PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(secretKeys),
  };
}
