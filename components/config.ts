/**
 * The lab's configuration: every key of the `criu-lab` namespace, read once and validated
 * before any resource exists. An invalid value is an error that names the key, the value and
 * what is allowed (the shape of aws-cdk-examples `env-validator.ts`); all problems are
 * reported together so one `pulumi up` shows everything to fix.
 *
 * Pulumi.yaml is the one schema: it declares every key with its type, default and description
 * (project-level config, https://www.pulumi.com/docs/iac/concepts/projects/project-file/#config-options),
 * the Pulumi CLI enforces the types and hands the defaults to the program. This module reads the
 * same file at run time (configSchema), so its defaults also apply where no CLI does (Pulumi
 * mocks, the offline plan), and keeps only what YAML cannot say: each key's rule (allowed
 * values, ranges, patterns) in CONFIG_RULES, the rules between keys in loadConfig, and their
 * messages. A Pulumi.yaml whose keys or types are not those of CONFIG_RULES is refused.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import type { CriuSource } from "../cloud-init/userData";
import { SCENARIOS, ScenarioName, parseScenarioNames } from "../contract/checks";
import { MAX_SEATS, MIGRATION_MODES, MigrationMode } from "../contract/seats";
import { closestKey } from "./closestKey";

/** The config namespace: the project name in Pulumi.yaml. */
export const CONFIG_NAMESPACE = "criu-lab";

/**
 * Pulumi.yaml of this program: the project directory holds components/, in the repository and
 * in a packaged copy alike (package.json has no "files" list, so `npm pack` ships both;
 * tests/unit/config.test.ts checks it).
 */
export const PROJECT_FILE = join(__dirname, "..", "Pulumi.yaml");

/** Ubuntu LTS releases the lab supports (CRIU 4.x builds and runs on both). */
export const UBUNTU_RELEASES = ["24.04", "22.04"] as const;
export type UbuntuRelease = (typeof UBUNTU_RELEASES)[number];

/** The `sshAllowedCidrs` entry that stands for the deployer's public IPv4 as a /32. */
export const AUTO_CIDR = "auto";

/** The Pulumi.yaml types the lab's keys use (lists are arrays of strings). */
const CONFIG_TYPES = ["string", "integer", "boolean", "array"] as const;
export type ConfigType = (typeof CONFIG_TYPES)[number];

/** One key as Pulumi.yaml declares it. */
export interface ConfigKeySpec {
  type: ConfigType;
  /** As Pulumi.yaml writes it; "" means "not set" for optional strings. */
  default: string | number | boolean | string[];
  description: string;
}

export const MIN_ROOT_VOLUME_GIB = 8;
/** A sanity bound on budgetMonthlyUsd: a typo of a few digits is an error, not a budget. */
export const MAX_BUDGET_USD = 1_000_000;
/** EBS gp3's maximum volume size. */
export const MAX_ROOT_VOLUME_GIB = 16384;

/** Why the lab refuses CRIU before v4.2 (also cloud-init/install-criu.sh's FLOOR_WHY). */
export const CRIU_FLOOR =
  "allowed: v4.2 or later. Older CRIU hangs on Ubuntu 24.04 arm64 " +
  "(https://github.com/checkpoint-restore/criu/issues/2709, fixed in v4.2 by dcee5bd6f) and " +
  "cannot dump processes with sockets on kernels >= 6.16 (criu#2705, criu#2804)";

/** Reports a key's bad value and what is allowed; the caller knows the key. */
type Bad = (value: unknown, allowed: string) => void;

/**
 * What YAML cannot say about one key: how its text (as the CLI passes it: a string, JSON for
 * lists) becomes the typed value, and which texts are refused, with the "allowed: ..." of the
 * message. `type` is the Pulumi.yaml type the rule reads.
 */
interface Rule<T> {
  type: ConfigType;
  read(text: string, bad: Bad): T;
}

/** A string matching `pattern`, trimmed (and lower-cased with `lowerCase`). */
function matching(pattern: RegExp, allowed: string, lowerCase = false): Rule<string> {
  return {
    type: "string",
    read(text, bad) {
      const value = lowerCase ? text.trim().toLowerCase() : text.trim();
      if (!pattern.test(value)) bad(value, allowed);
      return value;
    },
  };
}

/** Exactly one of `values`. */
function oneOf<T extends string>(values: readonly T[], allowed: string): Rule<T> {
  return {
    type: "string",
    read(text, bad) {
      const value = text.trim();
      if (!(values as readonly string[]).includes(value)) bad(value, allowed);
      return value as T;
    },
  };
}

/** A whole number from `min` to `max` (NaN after reporting anything else). */
function integer(min: number, max: number, allowed: string): Rule<number> {
  return {
    type: "integer",
    read(text, bad) {
      const trimmed = text.trim();
      const value = /^-?\d+$/.test(trimmed) ? Number(trimmed) : NaN;
      if (!Number.isSafeInteger(value) || value < min || value > max) bad(trimmed, allowed);
      return value;
    },
  };
}

/** An optional string: "" (its Pulumi.yaml default) is unset, anything else must pass `rule`. */
function optional<T>(rule: Rule<T>): Rule<T | undefined> {
  return {
    type: rule.type,
    read: (text, bad) => (text.trim() === "" ? undefined : rule.read(text, bad)),
  };
}

/**
 * Every key's rule, one per key Pulumi.yaml declares (configSchema refuses a key either side
 * lacks). A value the CLI did not pass is Pulumi.yaml's default, read by the same rule.
 */
export const CONFIG_RULES = {
  // family.size as EC2 names them: t3.small, t4g.micro, c6gn.16xlarge, u-6tb1.metal.
  instanceType: matching(
    /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/,
    "allowed: an EC2 instance type name (family.size), e.g. t3.small, t4g.medium, c7i.large",
  ),
  ubuntuRelease: oneOf(UBUNTU_RELEASES, `allowed: ${UBUNTU_RELEASES.join(", ")}`),
  amiId: optional(
    matching(
      /^ami-([0-9a-f]{8}|[0-9a-f]{17})$/,
      "allowed: an AMI id such as ami-0123456789abcdef0, or unset",
    ),
  ),
  sshAllowedCidrs: { type: "array", read: parseCidrs },
  sshPublicKey: optional(
    matching(
      /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/,
      "allowed: one OpenSSH public key line such as 'ssh-ed25519 AAAA... me@laptop', or unset",
    ),
  ),
  rootVolumeGiB: integer(
    MIN_ROOT_VOLUME_GIB,
    MAX_ROOT_VOLUME_GIB,
    `allowed: a whole number of GiB from ${MIN_ROOT_VOLUME_GIB} to ${MAX_ROOT_VOLUME_GIB}`,
  ),
  subnetId: optional(
    matching(
      /^subnet-([0-9a-f]{8}|[0-9a-f]{17})$/,
      "allowed: a subnet id such as subnet-0123456789abcdef0, or unset",
    ),
  ),
  criuVersion: {
    type: "string",
    read(text, bad) {
      const version = text.trim();
      const release = /^v(\d+)\.(\d+)(\.\d+)?$/.exec(version);
      if (!release) {
        bad(version, "allowed: a CRIU release tag such as v4.2 or v4.2.1");
      } else if (Number(release[1]) < 4 || (Number(release[1]) === 4 && Number(release[2]) < 2)) {
        // The same floor as cloud-init/install-criu.sh (FLOOR_WHY).
        bad(version, CRIU_FLOOR);
      }
      return version;
    },
  },
  criuCommit: matching(/^[0-9a-f]{40}$/, "allowed: a full commit id of 40 hex characters", true),
  criuTarballUrl: optional({
    type: "string",
    read(text, bad) {
      const url = text.trim();
      if (!isHttpUrl(url)) {
        bad(url, "allowed: an http:// or https:// URL of a CRIU source tarball");
      }
      return url;
    },
  }),
  criuSha256: optional(
    matching(/^[0-9a-f]{64}$/, "allowed: 64 hex characters (the tarball's SHA-256)", true),
  ),
  verify: {
    type: "boolean",
    read(text, bad): boolean | undefined {
      const value = text.trim();
      if (value === "true" || value === "false") return value === "true";
      bad(value, "allowed: true, false");
      return undefined;
    },
  },
  verifyScenarios: { type: "array", read: scenarioList },
  migrationMode: oneOf(
    MIGRATION_MODES,
    `allowed: ${MIGRATION_MODES.join(", ")} (auto: of pre-copy, page-server, cold, the one the seat's hosts can run with the shortest predicted downtime)`,
  ),
  autoStopMinutes: integer(
    0,
    Number.MAX_SAFE_INTEGER,
    "allowed: a whole number of minutes >= 0 (0 = never power off)",
  ),
  seats: integer(1, MAX_SEATS, `allowed: a whole number of seats from 1 to ${MAX_SEATS}`),
  hostsPerSeat: integer(
    1,
    2,
    "allowed: 1 (one host per seat) or 2 (a source and a peer, for migration)",
  ),
  budgetMonthlyUsd: integer(
    0,
    MAX_BUDGET_USD,
    `allowed: a whole number of US dollars from 1 to ${MAX_BUDGET_USD}, or 0 for no budget`,
  ),
  budgetEmail: optional(
    matching(
      /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
      "allowed: one email address such as teacher@example.org, or unset",
    ),
  ),
} satisfies Record<string, Rule<unknown>>;

export type ConfigKey = keyof typeof CONFIG_RULES;

/** A key's value as its rule reads it. */
type ConfigValue<K extends ConfigKey> = ReturnType<(typeof CONFIG_RULES)[K]["read"]>;

/** Pulumi.yaml's declaration of every key, in its order (the README's table's). */
export type ConfigSchema = Record<ConfigKey, ConfigKeySpec>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `spec` (one entry of Pulumi.yaml's `config:`) is not a declaration the lab can use. */
function specProblem(spec: unknown): string | undefined {
  if (!isRecord(spec)) return "is not a map of type, default and description";
  const { type, default: value, description } = spec;
  if (!(CONFIG_TYPES as readonly unknown[]).includes(type)) {
    return `has type ${JSON.stringify(type)}; the lab's keys are ${CONFIG_TYPES.join(", ")}`;
  }
  // Without a default, Pulumi would require the key in every stack.
  if (value === undefined || value === null) return "has no default";
  const typed =
    type === "integer"
      ? Number.isSafeInteger(value)
      : type === "array"
        ? Array.isArray(value) && value.every((v) => typeof v === "string")
        : typeof value === type;
  if (!typed) return `has a default that is not of its type ${String(type)}`;
  if (type === "array" && !(isRecord(spec.items) && spec.items.type === "string")) {
    return "is an array without `items: {type: string}`";
  }
  if (typeof description !== "string" || description.trim() === "") return "has no description";
  return undefined;
}

/**
 * Reads `file`'s config schema and holds it to CONFIG_RULES: the same keys, each of the type
 * its rule reads. Throws a RunError (the message alone, no stack trace) naming every mismatch.
 */
export function readConfigSchema(file: string = PROJECT_FILE): ConfigSchema {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, "utf8"));
  } catch (err) {
    throw new pulumi.RunError(
      `cannot read the config schema ${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const declared = isRecord(doc) && isRecord(doc.config) ? doc.config : {};
  const problems: string[] = [];
  if (!isRecord(doc) || doc.name !== CONFIG_NAMESPACE) {
    problems.push(`its project name is not ${CONFIG_NAMESPACE} (the config namespace)`);
  }
  for (const [key, spec] of Object.entries(declared)) {
    const where = `${CONFIG_NAMESPACE}:${key}`;
    if (!Object.hasOwn(CONFIG_RULES, key)) {
      problems.push(
        `${where} has no rule in components/config.ts: add one to CONFIG_RULES (and read it in loadConfig)`,
      );
      continue;
    }
    const problem = specProblem(spec);
    const ruleType = CONFIG_RULES[key as ConfigKey].type;
    if (problem !== undefined) problems.push(`${where} ${problem}`);
    else if ((spec as ConfigKeySpec).type !== ruleType) {
      problems.push(
        `${where} has type ${(spec as ConfigKeySpec).type}, but its rule in components/config.ts reads ${ruleType}`,
      );
    }
  }
  for (const key of Object.keys(CONFIG_RULES)) {
    if (!Object.hasOwn(declared, key)) {
      problems.push(
        `${CONFIG_NAMESPACE}:${key} has a rule in components/config.ts but is not declared: add it under config: with its type, default and description`,
      );
    }
  }
  if (problems.length > 0) {
    throw new pulumi.RunError(
      `${file} does not match components/config.ts:\n` + problems.map((p) => `  - ${p}`).join("\n"),
    );
  }
  return declared as ConfigSchema;
}

let programSchema: ConfigSchema | undefined;

/** This program's Pulumi.yaml schema (read once). */
export function configSchema(): ConfigSchema {
  programSchema ??= readConfigSchema();
  return programSchema;
}

/** The validated configuration. Optional keys left at "" are undefined here. */
export interface LabConfig {
  instanceType: string;
  ubuntuRelease: UbuntuRelease;
  amiId?: string;
  /** IPv4 CIDRs in network form, possibly with AUTO_CIDR still to be resolved. */
  sshAllowedCidrs: string[];
  sshPublicKey?: string;
  rootVolumeGiB: number;
  subnetId?: string;
  criu: CriuSource;
  verify: boolean;
  /** Scenarios the post-deploy verification runs after the demo (none by default). */
  verifyScenarios: ScenarioName[];
  /** The `--mode` of a two-host seat's post-deploy migration a -> b (default auto). */
  migrationMode: MigrationMode;
  autoStopMinutes: number;
  /** Independent seats in the stack (1..MAX_SEATS). */
  seats: number;
  /** Hosts per seat: 1, or 2 (a source `a` and its peer `b`). */
  hostsPerSeat: HostsPerSeat;
  /** An AWS Budgets budget for the stack's resources, when budgetMonthlyUsd is set. */
  budget?: BudgetConfig;
}

export type HostsPerSeat = 1 | 2;

export interface BudgetConfig {
  /** The monthly limit in whole USD (> 0). */
  monthlyUsd: number;
  /** Who gets the 80 % and 100 % alerts. */
  email: string;
}

/** Reads one raw config value (as the CLI passes it: a string, JSON for arrays). */
export type ConfigReader = (key: ConfigKey) => string | undefined;

/**
 * Every invalid key at once; `problems` holds one line per key. A RunError, which Pulumi's
 * runner prints as the message alone (no stack trace, no dump of the object).
 */
export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: string[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** Reads the stack's `criu-lab:*` config through pulumi.Config. */
export function pulumiConfigReader(): ConfigReader {
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  return (key) => config.get(key);
}

/**
 * Reads, defaults and validates every key; throws ConfigError naming each bad one. `keys` are
 * the fully qualified keys the stack sets (all namespaces), checked against Pulumi.yaml.
 */
export function loadConfig(
  read: ConfigReader = pulumiConfigReader(),
  keys: readonly string[] = configuredKeys(),
): LabConfig {
  const schema = configSchema();
  const problems: string[] = undeclaredKeyProblems(keys);
  const reported = new Set<ConfigKey>();
  const bad = (key: ConfigKey, value: unknown, allowed: string) => {
    reported.add(key);
    problems.push(`${CONFIG_NAMESPACE}:${key}: ${JSON.stringify(value)} is not valid; ${allowed}`);
  };
  // A key the CLI did not pass has Pulumi.yaml's default, as the CLI would pass it.
  const raw = (key: ConfigKey): string => {
    const value = read(key);
    if (value !== undefined) return value;
    const fallback = schema[key].default;
    return typeof fallback === "string" ? fallback : JSON.stringify(fallback);
  };
  const value = <K extends ConfigKey>(key: K): ConfigValue<K> =>
    CONFIG_RULES[key].read(raw(key), (v, allowed) => bad(key, v, allowed)) as ConfigValue<K>;
  const isSet = (key: ConfigKey): boolean => raw(key).trim() !== "";

  const instanceType = value("instanceType");
  const ubuntuRelease = value("ubuntuRelease");
  const amiId = value("amiId");
  const sshAllowedCidrs = value("sshAllowedCidrs");
  const sshPublicKey = value("sshPublicKey");
  const rootVolumeGiB = value("rootVolumeGiB");
  const subnetId = value("subnetId");

  // The CRIU source: a tarball when either of its keys is set (then both are needed),
  // otherwise the pinned git tag, whose keys are read only then.
  let criu: CriuSource;
  if (isSet("criuTarballUrl") || isSet("criuSha256")) {
    const url = value("criuTarballUrl");
    if (url === undefined) {
      bad("criuTarballUrl", "", "criuSha256 is set, so criuTarballUrl must be set too");
    }
    const sha256 = value("criuSha256");
    if (sha256 === undefined) {
      bad(
        "criuSha256",
        "",
        "criuTarballUrl is set, so criuSha256 must be its SHA-256 (64 hex characters)",
      );
    }
    criu = { kind: "tarball", url: url ?? "", sha256: sha256 ?? "" };
  } else {
    criu = { kind: "git", version: value("criuVersion"), commit: value("criuCommit") };
  }

  const verify = value("verify");
  const verifyScenarios = value("verifyScenarios");
  if (verify === false && verifyScenarios.length > 0) {
    bad(
      "verifyScenarios",
      // The list as the user wrote it (scenarioList has parsed it already).
      JSON.parse(raw("verifyScenarios")),
      `scenarios run as part of the verification, which ${CONFIG_NAMESPACE}:verify false turns off`,
    );
  }

  const migrationMode = value("migrationMode");
  const autoStopMinutes = value("autoStopMinutes");
  const seats = value("seats");
  const hostsPerSeat = value("hostsPerSeat") as HostsPerSeat;

  // The budget's two keys are held to each other only when each is valid on its own: a bad
  // value is reported once, not again as "budgetEmail is set, so ...".
  const budgetMonthlyUsd = value("budgetMonthlyUsd");
  const budgetEmail = reported.has("budgetMonthlyUsd") ? undefined : value("budgetEmail");
  const budget =
    reported.has("budgetMonthlyUsd") || reported.has("budgetEmail")
      ? undefined
      : budgetConfig(budgetMonthlyUsd, budgetEmail, bad);

  if (problems.length > 0) throw new ConfigError(problems);

  if (sshAllowedCidrs.includes("0.0.0.0/0")) {
    // Only ever because the user wrote it: the default is the deployer's own /32.
    void pulumi.log.warn(
      `${CONFIG_NAMESPACE}:sshAllowedCidrs contains 0.0.0.0/0: SSH on the lab is open to the whole internet`,
    );
  }

  return {
    instanceType,
    ubuntuRelease,
    amiId,
    sshAllowedCidrs,
    sshPublicKey,
    rootVolumeGiB,
    subnetId,
    criu,
    verify: verify === true,
    verifyScenarios,
    migrationMode,
    autoStopMinutes,
    seats,
    hostsPerSeat,
    budget,
  };
}

/** The configuration of a stack that sets nothing: Pulumi.yaml's defaults, validated. */
export function defaultConfig(): LabConfig {
  return loadConfig(() => undefined, []);
}

/** The optional budget: budgetMonthlyUsd > 0 with budgetEmail, or neither (0 = no budget). */
function budgetConfig(
  monthlyUsd: number,
  email: string | undefined,
  bad: (key: ConfigKey, value: unknown, allowed: string) => void,
): BudgetConfig | undefined {
  if (monthlyUsd === 0) {
    if (email !== undefined) {
      bad(
        "budgetMonthlyUsd",
        "0",
        "budgetEmail is set, so budgetMonthlyUsd must be the monthly limit (a whole number of USD from 1)",
      );
    }
    return undefined;
  }
  if (email === undefined) {
    bad(
      "budgetEmail",
      "",
      "budgetMonthlyUsd is set, so budgetEmail must be the address for the budget's alerts",
    );
    return undefined;
  }
  return { monthlyUsd, email };
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** How to set the scenario list from the CLI (list config needs --path). */
export const SET_SCENARIOS_HINT = `pulumi config set --path '${CONFIG_NAMESPACE}:verifyScenarios[0]' training`;

/**
 * Parses `verifyScenarios` (the JSON list the CLI passes): names the verifier knows
 * (contract/checks.ts SCENARIOS) and none that needs a second host. That they need `verify` is
 * loadConfig's (a rule between keys).
 */
function scenarioList(text: string, bad: Bad): ScenarioName[] {
  const allowed = `allowed: a list of ${SCENARIOS.join(", ")} (or []), set with ${SET_SCENARIOS_HINT}`;
  const value = jsonList(text, bad, allowed, { emptyAllowed: true });
  if (value === undefined) return [];
  const names: string[] = [];
  for (const entry of value) {
    if (typeof entry === "string") names.push(entry);
    else bad(entry, allowed);
  }
  const parsed = parseScenarioNames(names);
  if ("problems" in parsed) {
    for (const problem of parsed.problems) bad(value, `${problem}; set with ${SET_SCENARIOS_HINT}`);
    return [];
  }
  return parsed.scenarios;
}

/**
 * The JSON list the CLI passes for a list key (`pulumi config set --path`), or undefined after
 * reporting `text` as bad: not JSON, not a list, or (unless `emptyAllowed`) an empty one.
 */
function jsonList(
  text: string,
  bad: Bad,
  allowed: string,
  { emptyAllowed }: { emptyAllowed: boolean },
): unknown[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    bad(text, allowed);
    return undefined;
  }
  if (!Array.isArray(value) || (!emptyAllowed && value.length === 0)) {
    bad(text, allowed);
    return undefined;
  }
  return value;
}

/** How to set the CIDR list from the CLI (list config needs --path). */
export const SET_CIDR_HINT = `pulumi config set --path '${CONFIG_NAMESPACE}:sshAllowedCidrs[0]' 203.0.113.7/32`;

/** Parses the JSON list the CLI passes and checks every entry; returns the normalised list. */
function parseCidrs(text: string, bad: Bad): string[] {
  const allowed = `allowed: a list of IPv4 CIDRs (a.b.c.d/n) or '${AUTO_CIDR}', set with ${SET_CIDR_HINT}`;
  const value = jsonList(text, bad, allowed, { emptyAllowed: false });
  if (value === undefined) return [];
  const cidrs: string[] = [];
  for (const entry of value) {
    if (typeof entry !== "string") {
      bad(entry, allowed);
      continue;
    }
    const cidr = entry.trim();
    if (cidr === AUTO_CIDR) {
      cidrs.push(cidr);
      continue;
    }
    const problem = ipv4CidrProblem(cidr);
    if (problem) bad(cidr, `${problem}; ${allowed}`);
    else cidrs.push(cidr);
  }
  return [...new Set(cidrs)];
}

/** Why `text` is not an IPv4 CIDR in network form, or undefined when it is. */
export function ipv4CidrProblem(text: string): string | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!match) return "it is not an IPv4 CIDR";
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return "it is not an IPv4 CIDR";
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  if (address % size !== 0) {
    const network = Math.floor(address / size) * size;
    const parts = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256);
    return `host bits are set (did you mean ${parts.join(".")}/${prefix}?)`;
  }
  return undefined;
}

/** True when `text` is a dotted-quad IPv4 address. */
export function isIpv4(text: string): boolean {
  return ipv4CidrProblem(`${text}/32`) === undefined;
}

/** The fully qualified keys of every namespace the stack sets, as the CLI hands them over. */
export function configuredKeys(): string[] {
  return Object.keys(pulumi.runtime.allConfig());
}

/**
 * One problem per key of the `criu-lab` namespace that Pulumi.yaml does not declare: Pulumi
 * would pass a typo such as `criu-lab:instanceTyp` to the program, which would never read it.
 */
export function undeclaredKeyProblems(keys: readonly string[]): string[] {
  const declared = Object.keys(configSchema());
  const prefix = `${CONFIG_NAMESPACE}:`;
  return keys
    .filter((key) => key.startsWith(prefix) && !declared.includes(key.slice(prefix.length)))
    .sort()
    .map((key) => {
      const closest = closestKey(key.slice(prefix.length), declared);
      return (
        `${key} is not a key of this project; ` +
        (closest
          ? `did you mean ${prefix}${closest}? Set that one instead and remove `
          : "Remove ") +
        `this one (pulumi config rm ${key}). Declared keys: ` +
        declared.join(", ")
      );
    });
}
