/**
 * The lab's configuration: every key of the `criu-lab` namespace, read once and validated
 * before any resource exists. An invalid value is an error that names the key, the value and
 * what is allowed (the shape of aws-cdk-examples `env-validator.ts`); all problems are
 * reported together so one `pulumi up` shows everything to fix.
 *
 * Pulumi.yaml declares the same keys with the same types and defaults (project-level config,
 * https://www.pulumi.com/docs/iac/concepts/projects/project-file/#config-options); the CLI
 * hands its defaults to the program, and CONFIG_SCHEMA's defaults apply where no CLI does
 * (Pulumi mocks, the offline plan). tests/unit/config.test.ts holds the two to each other.
 */
import * as pulumi from "@pulumi/pulumi";
import type { CriuSource } from "../cloud-init/userData";
import { SCENARIOS, ScenarioName, parseScenarioNames } from "../verify/checks";
import { MIGRATION_MODES, MigrationMode } from "../verify/seats";
import { closestKey } from "./closestKey";

/** The config namespace: the project name in Pulumi.yaml. */
export const CONFIG_NAMESPACE = "criu-lab";

/** Ubuntu LTS releases the lab supports (CRIU 4.x builds and runs on both). */
export const UBUNTU_RELEASES = ["24.04", "22.04"] as const;
export type UbuntuRelease = (typeof UBUNTU_RELEASES)[number];

/** The `sshAllowedCidrs` entry that stands for the deployer's public IPv4 as a /32. */
export const AUTO_CIDR = "auto";

type ConfigType = "string" | "integer" | "boolean" | "array";

export interface ConfigKeySpec {
  type: ConfigType;
  /** As Pulumi.yaml writes it; "" means "not set" for optional strings. */
  default: string | number | boolean | string[];
  description: string;
}

/**
 * Every key, its type, default and description, in the order of the README's table.
 * Optional strings default to "" because Pulumi requires a typed key without a default
 * ("Stack 'dev' is missing configuration value").
 */
export const CONFIG_SCHEMA = {
  instanceType: {
    type: "string",
    default: "t3.small",
    description: "EC2 instance type; Graviton types (t4g, m7g...) get the arm64 image.",
  },
  ubuntuRelease: {
    type: "string",
    default: "24.04",
    description: "Ubuntu LTS release of the image: 24.04 or 22.04.",
  },
  amiId: {
    type: "string",
    default: "",
    description: "Use this AMI instead of looking up Canonical's Ubuntu image.",
  },
  sshAllowedCidrs: {
    type: "array",
    default: [AUTO_CIDR],
    description: "IPv4 CIDRs allowed to reach SSH; 'auto' is the deployer's public IPv4 as a /32.",
  },
  sshPublicKey: {
    type: "string",
    default: "",
    description: "An extra OpenSSH public key authorized for the lab user.",
  },
  rootVolumeGiB: {
    type: "integer",
    default: 16,
    description: "Size of the encrypted gp3 root volume in GiB (at least 8).",
  },
  subnetId: {
    type: "string",
    default: "",
    description: "Launch into this existing public subnet instead of creating a VPC.",
  },
  criuVersion: {
    type: "string",
    default: "v4.2",
    description: "CRIU release tag to build from source.",
  },
  criuCommit: {
    type: "string",
    default: "3c7d4fa013297b431da48eff821db7f2e8b90c27",
    description: "Commit the CRIU tag must resolve to (40 hex characters).",
  },
  criuTarballUrl: {
    type: "string",
    default: "",
    description: "Build CRIU from this release tarball instead of git (needs criuSha256).",
  },
  criuSha256: {
    type: "string",
    default: "",
    description: "SHA-256 of criuTarballUrl (64 hex characters).",
  },
  verify: {
    type: "boolean",
    default: true,
    description: "Run criu-lab check and demo on the instance as part of pulumi up.",
  },
  verifyScenarios: {
    type: "array",
    default: [],
    description: "Scenarios pulumi up also runs on the instance after the demo: training, game.",
  },
  migrationMode: {
    type: "string",
    default: "auto",
    description:
      "How pulumi up migrates a two-host seat a -> b: auto (the best the hosts can run), cold, page-server, pre-copy, lazy.",
  },
  autoStopMinutes: {
    type: "integer",
    default: 120,
    description: "Idle minutes with no SSH session before the instance powers off; 0 = never.",
  },
  seats: {
    type: "integer",
    default: 1,
    description: "Independent lab seats in this stack (a class): 1 to 50.",
  },
  hostsPerSeat: {
    type: "integer",
    default: 1,
    description: "Hosts per seat: 1, or 2 for migration between a source a and a peer b.",
  },
  budgetMonthlyUsd: {
    type: "integer",
    default: 0,
    description:
      "Monthly AWS Budgets limit in whole USD for this stack's resources; 0 = no budget.",
  },
  budgetEmail: {
    type: "string",
    default: "",
    description: "Where the budget's 80 % and 100 % alerts go (required with budgetMonthlyUsd).",
  },
} as const satisfies Record<string, ConfigKeySpec>;

export type ConfigKey = keyof typeof CONFIG_SCHEMA;

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

export const MIN_ROOT_VOLUME_GIB = 8;
/** At most this many seats in one stack; verify/seats.ts reads the same bound. */
export const MAX_SEATS = 50;
/** A sanity bound on budgetMonthlyUsd: a typo of a few digits is an error, not a budget. */
export const MAX_BUDGET_USD = 1_000_000;
/** EBS gp3's maximum volume size. */
export const MAX_ROOT_VOLUME_GIB = 16384;

/** Reads the stack's `criu-lab:*` config through pulumi.Config. */
export function pulumiConfigReader(): ConfigReader {
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  return (key) => config.get(key);
}

/**
 * Reads, defaults and validates every key; throws ConfigError naming each bad one. `keys` are
 * the fully qualified keys the stack sets (all namespaces), checked against CONFIG_SCHEMA.
 */
export function loadConfig(
  read: ConfigReader = pulumiConfigReader(),
  keys: readonly string[] = configuredKeys(),
): LabConfig {
  const problems: string[] = undeclaredKeyProblems(keys);
  const bad = (key: ConfigKey, value: unknown, allowed: string) => {
    problems.push(`${CONFIG_NAMESPACE}:${key}: ${JSON.stringify(value)} is not valid; ${allowed}`);
  };
  const raw = (key: ConfigKey): string => {
    const value = read(key);
    if (value !== undefined) return value;
    const fallback = CONFIG_SCHEMA[key].default;
    return typeof fallback === "string" ? fallback : JSON.stringify(fallback);
  };
  const optional = (key: ConfigKey): string | undefined => {
    const value = raw(key).trim();
    return value === "" ? undefined : value;
  };
  const integer = (key: ConfigKey, min: number, max: number, allowed: string): number => {
    const text = raw(key).trim();
    const value = /^-?\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      bad(key, text, allowed);
      return Number(CONFIG_SCHEMA[key].default);
    }
    return value;
  };

  const instanceType = raw("instanceType").trim();
  // family.size as EC2 names them: t3.small, t4g.micro, c6gn.16xlarge, u-6tb1.metal.
  if (!/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/.test(instanceType)) {
    bad(
      "instanceType",
      instanceType,
      "allowed: an EC2 instance type name (family.size), e.g. t3.small, t4g.medium, c7i.large",
    );
  }

  const ubuntuRelease = raw("ubuntuRelease").trim();
  if (!(UBUNTU_RELEASES as readonly string[]).includes(ubuntuRelease)) {
    bad("ubuntuRelease", ubuntuRelease, `allowed: ${UBUNTU_RELEASES.join(", ")}`);
  }

  const amiId = optional("amiId");
  if (amiId !== undefined && !/^ami-([0-9a-f]{8}|[0-9a-f]{17})$/.test(amiId)) {
    bad("amiId", amiId, "allowed: an AMI id such as ami-0123456789abcdef0, or unset");
  }

  const sshAllowedCidrs = parseCidrs(raw("sshAllowedCidrs"), (value, allowed) =>
    bad("sshAllowedCidrs", value, allowed),
  );

  const sshPublicKey = optional("sshPublicKey");
  if (
    sshPublicKey !== undefined &&
    !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/.test(
      sshPublicKey,
    )
  ) {
    bad(
      "sshPublicKey",
      sshPublicKey,
      "allowed: one OpenSSH public key line such as 'ssh-ed25519 AAAA... me@laptop', or unset",
    );
  }

  const rootVolumeGiB = integer(
    "rootVolumeGiB",
    MIN_ROOT_VOLUME_GIB,
    MAX_ROOT_VOLUME_GIB,
    `allowed: a whole number of GiB from ${MIN_ROOT_VOLUME_GIB} to ${MAX_ROOT_VOLUME_GIB}`,
  );

  const subnetId = optional("subnetId");
  if (subnetId !== undefined && !/^subnet-([0-9a-f]{8}|[0-9a-f]{17})$/.test(subnetId)) {
    bad("subnetId", subnetId, "allowed: a subnet id such as subnet-0123456789abcdef0, or unset");
  }

  const criu = criuSource(raw, optional, bad);

  const verifyText = raw("verify").trim();
  if (verifyText !== "true" && verifyText !== "false") {
    bad("verify", verifyText, "allowed: true, false");
  }
  const verifyScenarios = scenarioList(
    raw("verifyScenarios"),
    verifyText === "false",
    (value, allowed) => bad("verifyScenarios", value, allowed),
  );

  const migrationMode = raw("migrationMode").trim();
  if (!(MIGRATION_MODES as readonly string[]).includes(migrationMode)) {
    bad(
      "migrationMode",
      migrationMode,
      `allowed: ${MIGRATION_MODES.join(", ")} (auto: the first of pre-copy, page-server, cold the seat's hosts can run)`,
    );
  }

  const autoStopMinutes = integer(
    "autoStopMinutes",
    0,
    Number.MAX_SAFE_INTEGER,
    "allowed: a whole number of minutes >= 0 (0 = never power off)",
  );

  const seats = integer(
    "seats",
    1,
    MAX_SEATS,
    `allowed: a whole number of seats from 1 to ${MAX_SEATS}`,
  );
  const hostsPerSeat = integer(
    "hostsPerSeat",
    1,
    2,
    "allowed: 1 (one host per seat) or 2 (a source and a peer, for migration)",
  ) as HostsPerSeat;
  const before = problems.length;
  const budgetMonthlyUsd = integer(
    "budgetMonthlyUsd",
    0,
    MAX_BUDGET_USD,
    `allowed: a whole number of US dollars from 1 to ${MAX_BUDGET_USD}, or 0 for no budget`,
  );
  // A bad amount is reported once: not again as "budgetEmail is set, so ...".
  const budget =
    problems.length === before
      ? budgetConfig(budgetMonthlyUsd, optional("budgetEmail"), bad)
      : undefined;

  if (problems.length > 0) throw new ConfigError(problems);

  if (sshAllowedCidrs.includes("0.0.0.0/0")) {
    // Only ever because the user wrote it: the default is the deployer's own /32.
    void pulumi.log.warn(
      `${CONFIG_NAMESPACE}:sshAllowedCidrs contains 0.0.0.0/0: SSH on the lab is open to the whole internet`,
    );
  }

  return {
    instanceType,
    ubuntuRelease: ubuntuRelease as UbuntuRelease,
    amiId,
    sshAllowedCidrs,
    sshPublicKey,
    rootVolumeGiB,
    subnetId,
    criu,
    verify: verifyText === "true",
    verifyScenarios,
    migrationMode: migrationMode as MigrationMode,
    autoStopMinutes,
    seats,
    hostsPerSeat,
    budget,
  };
}

/** The optional budget: budgetMonthlyUsd > 0 with budgetEmail, or neither (0 = no budget). */
function budgetConfig(
  monthlyUsd: number,
  email: string | undefined,
  bad: (key: ConfigKey, value: unknown, allowed: string) => void,
): BudgetConfig | undefined {
  if (email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    bad("budgetEmail", email, "allowed: one email address such as teacher@example.org, or unset");
    return undefined;
  }
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

/** The CRIU source: a tarball when criuTarballUrl is set, otherwise the pinned git tag. */
function criuSource(
  raw: (key: ConfigKey) => string,
  optional: (key: ConfigKey) => string | undefined,
  bad: (key: ConfigKey, value: unknown, allowed: string) => void,
): CriuSource {
  const url = optional("criuTarballUrl");
  const sha256 = optional("criuSha256")?.toLowerCase();
  if (url !== undefined || sha256 !== undefined) {
    if (url === undefined) {
      bad("criuTarballUrl", "", "criuSha256 is set, so criuTarballUrl must be set too");
    } else if (!isHttpUrl(url)) {
      bad("criuTarballUrl", url, "allowed: an http:// or https:// URL of a CRIU source tarball");
    }
    if (sha256 === undefined) {
      bad(
        "criuSha256",
        "",
        "criuTarballUrl is set, so criuSha256 must be its SHA-256 (64 hex characters)",
      );
    } else if (!/^[0-9a-f]{64}$/.test(sha256)) {
      bad("criuSha256", sha256, "allowed: 64 hex characters (the tarball's SHA-256)");
    }
    return { kind: "tarball", url: url ?? "", sha256: sha256 ?? "" };
  }
  const version = raw("criuVersion").trim();
  const release = /^v(\d+)\.(\d+)(\.\d+)?$/.exec(version);
  if (!release) {
    bad("criuVersion", version, "allowed: a CRIU release tag such as v4.2 or v4.2.1");
  } else if (Number(release[1]) < 4 || (Number(release[1]) === 4 && Number(release[2]) < 2)) {
    // The same floor as cloud-init/install-criu.sh (FLOOR_WHY).
    bad("criuVersion", version, CRIU_FLOOR);
  }
  const commit = raw("criuCommit").trim().toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(commit)) {
    bad("criuCommit", commit, "allowed: a full commit id of 40 hex characters");
  }
  return { kind: "git", version, commit };
}

/** Why the lab refuses CRIU before v4.2 (also cloud-init/install-criu.sh's FLOOR_WHY). */
export const CRIU_FLOOR =
  "allowed: v4.2 or later. Older CRIU hangs on Ubuntu 24.04 arm64 " +
  "(https://github.com/checkpoint-restore/criu/issues/2709, fixed in v4.2 by dcee5bd6f) and " +
  "cannot dump processes with sockets on kernels >= 6.16 (criu#2705, criu#2804)";

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
 * (verify/checks.ts SCENARIOS), none that needs a second host, and only with `verify` on.
 */
function scenarioList(
  text: string,
  verifyOff: boolean,
  bad: (value: unknown, allowed: string) => void,
): ScenarioName[] {
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
  if (verifyOff && parsed.scenarios.length > 0) {
    bad(
      value,
      `scenarios run as part of the verification, which ${CONFIG_NAMESPACE}:verify false turns off`,
    );
  }
  return parsed.scenarios;
}

/**
 * The JSON list the CLI passes for a list key (`pulumi config set --path`), or undefined after
 * reporting `text` as bad: not JSON, not a list, or (unless `emptyAllowed`) an empty one.
 */
function jsonList(
  text: string,
  bad: (value: unknown, allowed: string) => void,
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
function parseCidrs(text: string, bad: (value: unknown, allowed: string) => void): string[] {
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
 * One problem per key of the `criu-lab` namespace that CONFIG_SCHEMA (and so Pulumi.yaml,
 * which tests/unit/config.test.ts holds to it) does not declare: Pulumi would pass a typo
 * such as `criu-lab:instanceTyp` to the program, which would never read it.
 */
export function undeclaredKeyProblems(keys: readonly string[]): string[] {
  const declared = Object.keys(CONFIG_SCHEMA);
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
