/**
 * Reads a Pulumi project the way the Pulumi CLI does before it starts the language host:
 * Pulumi.yaml (runtime options, entry point, config schema with defaults) and the stack file
 * Pulumi.<stack>.yaml, plus `--config key=value` overrides. The result is the environment
 * the Node.js language host gives `@pulumi/pulumi/cmd/run`: PULUMI_CONFIG (keys in the
 * `<namespace>:config:<name>` form the language host still writes) and
 * PULUMI_CONFIG_SECRET_KEYS (https://github.com/pulumi/pulumi, sdk/nodejs/cmd/pulumi-language-nodejs/main.go,
 * constructConfig and constructConfigSecretKeys).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { closestKey } from "../components/closestKey";

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
  /** The other stacks' files next to Pulumi.yaml (`Pulumi.<stack>.yaml` names), for hints. */
  otherStackFiles: string[];
  /** The AWS region `pulumi up` would deploy to, and where it comes from; undefined if none. */
  region?: { value: string; source: string };
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

/** A segment of a config key path: a map key or a list index. */
export type PathSegment = string | number;

/**
 * Splits a config key's name into path segments the way `pulumi config set --path` and
 * `pulumi up --config-path` do (resource.ParsePropertyPath): `a.b`, `a[0]`, `a["b.c"]`.
 */
export function parseKeyPath(name: string): PathSegment[] {
  const first = /^[^.[\]"]+/.exec(name);
  if (first === null) throw new PlanInputError(`invalid config key path '${name}'`);
  const segments: PathSegment[] = [first[0]];
  let rest = name.slice(first[0].length);
  while (rest !== "") {
    const m = /^\.([^.[\]"]+)/.exec(rest) ?? /^\[(\d+)\]/.exec(rest) ?? /^\["([^"]*)"\]/.exec(rest);
    if (m === null) {
      throw new PlanInputError(
        `invalid config key path '${name}' at '${rest}': expected .key, [index] or ["key"]`,
      );
    }
    segments.push(m[0].startsWith("[") && !m[0].startsWith('["') ? Number(m[1]) : m[1]);
    rest = rest.slice(m[0].length);
  }
  return segments;
}

/** A path's leaf value as Pulumi stores it: "true"/"false" as booleans, integers as numbers. */
function pathLeaf(value: string): unknown {
  if (value === "true" || value === "false") return value === "true";
  if (/^[+-]?\d+$/.test(value) && !(value.length > 1 && value.startsWith("0"))) {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
  }
  return value;
}

/** Sets `leaf` at `path` inside `container` (a copy), creating lists and maps as Pulumi does. */
function setAtPath(container: unknown, path: PathSegment[], leaf: unknown, key: string): unknown {
  if (path.length === 0) return leaf;
  const [segment, ...rest] = path;
  if (typeof segment === "number") {
    if (container !== undefined && container !== null && !Array.isArray(container)) {
      throw new PlanInputError(`--config ${key}: a list was expected for index ${segment}`);
    }
    const list = Array.isArray(container) ? [...(container as unknown[])] : [];
    if (segment > list.length) {
      throw new PlanInputError(
        `--config ${key}: index ${segment} is out of range (the list has ${list.length} ` +
          `item(s); ${list.length} appends)`,
      );
    }
    list[segment] = setAtPath(list[segment], rest, leaf, key);
    return list;
  }
  if (container !== undefined && container !== null && !isRecord(container)) {
    throw new PlanInputError(`--config ${key}: a map was expected for key "${segment}"`);
  }
  const map: Record<string, unknown> = { ...((container as Record<string, unknown>) ?? {}) };
  map[segment] = setAtPath(map[segment], rest, leaf, key);
  return map;
}

/** Where the AWS provider takes its region from: `aws:region`, then AWS_REGION/AWS_DEFAULT_REGION. */
function resolveRegion(
  config: Map<string, ConfigValue>,
  stackFileName: string,
  env: NodeJS.ProcessEnv,
): { value: string; source: string } | undefined {
  const entry = config.get("aws:region");
  if (entry !== undefined && entry.value !== "") {
    const where = {
      stack: `aws:region in ${stackFileName}`,
      override: "aws:region from --config",
      project: "aws:region in Pulumi.yaml",
      default: "aws:region default in Pulumi.yaml",
    }[entry.source];
    return { value: entry.value, source: where };
  }
  for (const name of ["AWS_REGION", "AWS_DEFAULT_REGION"]) {
    const value = env[name];
    if (value !== undefined && value !== "") return { value, source: `environment ${name}` };
  }
  return undefined;
}

export interface LoadProjectOptions {
  dir: string;
  stack: string;
  /** `key=value` texts from `--config`. */
  overrides?: string[];
  /** Keys of `overrides` are paths (`pulumi up --config-path`): `sshAllowedCidrs[0]=...`. */
  configPath?: boolean;
  /** Where AWS_REGION/AWS_DEFAULT_REGION are read (default: process.env). */
  env?: NodeJS.ProcessEnv;
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
    const colon = key.indexOf(":");
    const keyName = key.slice(colon + 1);
    const looksLikePath = /[.[\]]/.test(keyName);
    if (!options.configPath || !looksLikePath) {
      if (looksLikePath && !config.has(key) && !schemas.has(key)) {
        const top = /^[^.[\]]*/.exec(keyName)?.[0] ?? keyName;
        const whole =
          keyName === `${top}[0]` ? `-c '${top}=${JSON.stringify([value])}'` : `-c '${top}=<JSON>'`;
        throw new PlanInputError(
          `--config '${text}': '${keyName}' is a path into '${top}': add --config-path (as ` +
            `\`pulumi up --config-path\` and \`pulumi config set --path\` read it), or set ` +
            `the whole value: ${whole}`,
        );
      }
      config.set(key, { value, secret: schemas.get(key)?.secret ?? false, source: "override" });
      continue;
    }
    // `pulumi up --config-path`: the path is set inside the stack's own value (not the
    // project default), as config.Map.Set does (sdk/go/common/resource/config/map.go).
    const [top, ...path] = parseKeyPath(keyName);
    const topKey = `${key.slice(0, colon)}:${String(top)}`;
    const existing = config.get(topKey);
    let base: unknown;
    if (existing !== undefined && existing.source !== "default" && existing.source !== "project") {
      try {
        const parsed: unknown = JSON.parse(existing.value);
        base = typeof parsed === "object" ? parsed : undefined;
      } catch {
        base = undefined;
      }
    }
    const updated = setAtPath(base, path, pathLeaf(value), text.slice(0, text.indexOf("=")));
    config.set(topKey, {
      value: configString(updated),
      secret: schemas.get(topKey)?.secret ?? false,
      source: "override",
    });
  }

  // The program refuses a key of its own namespace that Pulumi.yaml does not declare (a typo
  // would otherwise be ignored); the plan refuses it first, as exit 2.
  if (isRecord(doc.config)) {
    const declared = Object.keys(projectConfig).map((k) => qualify(name, k));
    const shortNames = declared.map((k) => k.slice(name.length + 1));
    for (const [key, entry] of config) {
      if (!key.startsWith(`${name}:`) || declared.includes(key)) continue;
      const shortName = key.slice(name.length + 1);
      const where = entry.source === "override" ? "--config" : `Pulumi.${options.stack}.yaml`;
      const closest = closestKey(shortName, shortNames);
      throw new PlanInputError(
        `${where}: '${key}' is not a config key of ${name}` +
          (closest !== undefined ? `; did you mean '${closest}'?` : "") +
          ` (Pulumi.yaml declares: ${shortNames.join(", ")})`,
      );
    }
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
    otherStackFiles: readdirSync(dir)
      .filter((f) => /^Pulumi\.[^.]+\.ya?ml$/.test(f) && f !== `Pulumi.${options.stack}.yaml`)
      .sort(),
    region: resolveRegion(config, `Pulumi.${options.stack}.yaml`, options.env ?? process.env),
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
