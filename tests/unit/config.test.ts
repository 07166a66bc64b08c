/**
 * loadConfig: defaults, every validation error (key, value and what is allowed in the
 * message), and Pulumi.yaml as the one schema: its keys are exactly those with a rule in
 * components/config.ts, and its defaults are the program's, the README's and the package's.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse, stringify } from "yaml";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  CONFIG_RULES,
  ConfigKeySpec,
  PROJECT_FILE,
  configSchema,
  readConfigSchema,
  ConfigError,
  ConfigKey,
  LabConfig,
  ipv4CidrProblem,
  loadConfig,
  undeclaredKeyProblems,
} from "../../components/config";
import { scratchDir } from "./support/scratch";

/** loadConfig over a plain map, as the CLI would pass the values (strings, JSON for lists). */
const load = (values: Partial<Record<ConfigKey, string>> = {}): LabConfig =>
  loadConfig((key) => values[key]);

/** The ConfigError loadConfig throws for these values. */
function errorFor(values: Partial<Record<ConfigKey, string>>): ConfigError {
  try {
    load(values);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(values)}`);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("loadConfig defaults", () => {
  it("match docs/design.md when nothing is set", () => {
    expect(load()).toEqual({
      instanceType: "t3.small",
      ubuntuRelease: "24.04",
      amiId: undefined,
      sshAllowedCidrs: ["auto"],
      sshPublicKey: undefined,
      rootVolumeGiB: 16,
      subnetId: undefined,
      criu: {
        kind: "git",
        version: "v4.2",
        commit: "3c7d4fa013297b431da48eff821db7f2e8b90c27",
      },
      verify: true,
      verifyScenarios: [],
      migrationMode: "auto",
      autoStopMinutes: 120,
      seats: 1,
      hostsPerSeat: 1,
      budget: undefined,
    });
  });

  it("treat the CLI's empty-string defaults of optional keys as unset", () => {
    const config = load({ amiId: "", subnetId: "", sshPublicKey: "", criuTarballUrl: "" });
    expect(config.amiId).toBeUndefined();
    expect(config.subnetId).toBeUndefined();
    expect(config.sshPublicKey).toBeUndefined();
    expect(config.criu.kind).toBe("git");
  });

  it("read values as the CLI passes them", () => {
    const config = load({
      instanceType: "t4g.medium",
      ubuntuRelease: "22.04",
      amiId: "ami-0123456789abcdef0",
      sshAllowedCidrs: '["203.0.113.7/32","10.0.0.0/8"]',
      sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0 me@laptop",
      rootVolumeGiB: "32",
      subnetId: "subnet-0123456789abcdef0",
      verify: "false",
      autoStopMinutes: "0",
      criuCommit: "3C7D4FA013297B431DA48EFF821DB7F2E8B90C27",
    });
    expect(config).toMatchObject({
      instanceType: "t4g.medium",
      ubuntuRelease: "22.04",
      amiId: "ami-0123456789abcdef0",
      sshAllowedCidrs: ["203.0.113.7/32", "10.0.0.0/8"],
      rootVolumeGiB: 32,
      subnetId: "subnet-0123456789abcdef0",
      verify: false,
      autoStopMinutes: 0,
      // Lower-cased: cloud-init/userData.ts wants the lowercase commit id.
      criu: { kind: "git", commit: "3c7d4fa013297b431da48eff821db7f2e8b90c27" },
    });
  });

  it("switches to the tarball source when criuTarballUrl and criuSha256 are set", () => {
    const config = load({
      criuTarballUrl: "https://deb.example.org/criu_4.2.1.orig.tar.xz",
      criuSha256: "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
    });
    expect(config.criu).toEqual({
      kind: "tarball",
      url: "https://deb.example.org/criu_4.2.1.orig.tar.xz",
      sha256: "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9",
    });
  });

  it("reads a class and its budget", () => {
    expect(
      load({
        seats: "20",
        hostsPerSeat: "2",
        budgetMonthlyUsd: "60",
        budgetEmail: "t@example.org",
      }),
    ).toMatchObject({
      seats: 20,
      hostsPerSeat: 2,
      budget: { monthlyUsd: 60, email: "t@example.org" },
    });
    expect(load({ seats: "50" }).seats).toBe(50);
  });

  it("reads migrationMode: each mode criu-lab's migration scenario takes", () => {
    for (const mode of ["auto", "cold", "page-server", "pre-copy", "lazy"]) {
      expect(load({ seats: "3", hostsPerSeat: "2", migrationMode: mode }).migrationMode).toBe(mode);
    }
  });

  it("reads the stack's criu-lab namespace through pulumi.Config by default", () => {
    pulumi.runtime.setAllConfig({ "criu-lab:instanceType": "m7g.large" });
    try {
      expect(loadConfig().instanceType).toBe("m7g.large");
    } finally {
      pulumi.runtime.setAllConfig({});
    }
  });
});

describe("loadConfig rejects bad input naming key, value and what is allowed", () => {
  interface Case {
    values: Partial<Record<ConfigKey, string>>;
    key: ConfigKey;
    value: string;
    allowed: string;
  }
  /** KEY set to GIVEN alone: the error names KEY, VALUE (GIVEN unless said) and ALLOWED. */
  const bad = (key: ConfigKey, given: string, allowed: string, value = given): Case => ({
    values: { [key]: given },
    key,
    value,
    allowed,
  });
  const cases: Case[] = [
    bad("instanceType", "t3small", "t3.small"),
    bad("instanceType", "T3.Small", "family.size"),
    bad("ubuntuRelease", "20.04", "24.04, 22.04"),
    bad("amiId", "ami-xyz", "ami-0123456789abcdef0"),
    bad("sshAllowedCidrs", '["10.0.0.300/8"]', "IPv4 CIDR", "10.0.0.300/8"),
    bad("sshAllowedCidrs", '["203.0.113.7"]', "a.b.c.d/n", "203.0.113.7"),
    bad("sshAllowedCidrs", '["10.0.0.1/8"]', "10.0.0.0/8", "10.0.0.1/8"),
    bad(
      "sshAllowedCidrs",
      "203.0.113.7/32",
      "pulumi config set --path 'criu-lab:sshAllowedCidrs[0]'",
    ),
    bad("sshAllowedCidrs", "[]", "a list of IPv4 CIDRs"),
    bad("sshPublicKey", "not a key", "OpenSSH public key"),
    bad("rootVolumeGiB", "7", "from 8"),
    bad("rootVolumeGiB", "big", "whole number"),
    bad("subnetId", "sn-1", "subnet-0123456789abcdef0"),
    bad("criuVersion", "4.2", "v4.2"),
    // Below the v4.2 floor: named with the reason (criu#2709 on Ubuntu 24.04 arm64).
    bad("criuVersion", "v4.1.1", "criu#2705"),
    bad("criuVersion", "v4.1", "v4.2 or later"),
    bad("criuVersion", "v3.19", "issues/2709"),
    bad("criuCommit", "3c7d4fa", "40 hex characters"),
    {
      values: { criuTarballUrl: "https://example.org/criu.tar.xz" },
      key: "criuSha256",
      value: "",
      allowed: "criuTarballUrl is set",
    },
    {
      values: { criuSha256: "a".repeat(64) },
      key: "criuTarballUrl",
      value: "",
      allowed: "criuSha256 is set",
    },
    {
      values: { criuTarballUrl: "ftp://example.org/c.tar.xz", criuSha256: "a".repeat(64) },
      key: "criuTarballUrl",
      value: "ftp://example.org/c.tar.xz",
      allowed: "https://",
    },
    {
      values: { criuTarballUrl: "https://example.org/c.tar.xz", criuSha256: "abc" },
      key: "criuSha256",
      value: "abc",
      allowed: "64 hex characters",
    },
    bad("verify", "yes", "true, false"),
    bad(
      "verifyScenarios",
      "training",
      "pulumi config set --path 'criu-lab:verifyScenarios[0]' training",
    ),
    bad(
      "migrationMode",
      "warm",
      "allowed: auto, cold, page-server, pre-copy, lazy (auto: of pre-copy, page-server, cold, the one",
    ),
    bad("migrationMode", "", "auto, cold"),
    bad("migrationMode", "Cold", "cold"),
    bad("autoStopMinutes", "-1", ">= 0"),
    // A class: seats and hosts per seat.
    bad("seats", "0", "from 1 to 50"),
    bad("seats", "51", "from 1 to 50"),
    bad("seats", "2.5", "a whole number"),
    bad("seats", "ten", "from 1 to 50"),
    bad("hostsPerSeat", "3", "1 (one host"),
    bad("hostsPerSeat", "0", "or 2"),
    {
      values: { budgetMonthlyUsd: "-5", budgetEmail: "t@example.org" },
      key: "budgetMonthlyUsd",
      value: "-5",
      allowed: "a whole number of US dollars",
    },
    {
      values: { budgetMonthlyUsd: "12.5", budgetEmail: "t@example.org" },
      key: "budgetMonthlyUsd",
      value: "12.5",
      allowed: "or 0 for no budget",
    },
    {
      values: { budgetMonthlyUsd: "50" },
      key: "budgetEmail",
      value: "",
      allowed: "budgetMonthlyUsd is set, so budgetEmail must be",
    },
    {
      values: { budgetEmail: "t@example.org" },
      key: "budgetMonthlyUsd",
      value: "0",
      allowed: "budgetEmail is set, so budgetMonthlyUsd must be",
    },
    {
      values: { budgetMonthlyUsd: "50", budgetEmail: "teacher" },
      key: "budgetEmail",
      value: "teacher",
      allowed: "one email address",
    },
  ];

  for (const { values, key, value, allowed } of cases) {
    it(`${key} = ${JSON.stringify(Object.values(values)[0])}`, () => {
      const err = errorFor(values);
      expect(err.problems).toHaveLength(1);
      const [problem] = err.problems;
      expect(problem).toContain(`criu-lab:${key}`);
      expect(problem).toContain(JSON.stringify(value));
      expect(problem).toContain(allowed);
      expect(err.message).toContain(problem);
    });
  }

  it("verifyScenarios: known names, in the verifier's order, once each; only with verify", () => {
    expect(load({ verifyScenarios: '["game","training","game"]' }).verifyScenarios).toEqual([
      "training",
      "game",
    ]);
    expect(load({ verifyScenarios: "[]", verify: "false" }).verifyScenarios).toEqual([]);
    // The list as the user wrote it, the name that is wrong, and what is allowed.
    const [chess] = errorFor({ verifyScenarios: '["training","chess"]' }).problems;
    expect(chess).toMatch(
      /^criu-lab:verifyScenarios: \["training","chess"\] is not valid; 'chess' is not a scenario; allowed: training, game; set with pulumi config set --path/,
    );
    const [migration] = errorFor({ verifyScenarios: '["migration"]' }).problems;
    expect(migration).toContain(
      "criu-lab:verifyScenarios: [\"migration\"] is not valid; 'migration' cannot run on one host: it needs a second host",
    );
    const [problem] = errorFor({ verifyScenarios: '["game"]', verify: "false" }).problems;
    expect(problem).toContain('criu-lab:verifyScenarios: ["game"] is not valid');
    expect(problem).toContain("criu-lab:verify false turns off");
  });

  it("accepts CRIU v4.2 and later (the floor is v4.2, not a pin)", () => {
    for (const version of ["v4.2", "v4.2.1", "v4.10", "v5.0"]) {
      expect(load({ criuVersion: version }).criu).toMatchObject({ kind: "git", version });
    }
  });

  it("reports every bad key at once", () => {
    const err = errorFor({ instanceType: "x", ubuntuRelease: "18.04", autoStopMinutes: "-5" });
    expect(err.problems.map((p) => p.split(":")[1])).toEqual([
      "instanceType",
      "ubuntuRelease",
      "autoStopMinutes",
    ]);
    expect(err.message).toMatch(/^invalid configuration \(3 problems\)/);
  });

  it("warns, but allows, 0.0.0.0/0 when the user writes it", () => {
    const warn = vi.spyOn(pulumi.log, "warn").mockResolvedValue(undefined);
    expect(load({ sshAllowedCidrs: '["0.0.0.0/0"]' }).sshAllowedCidrs).toEqual(["0.0.0.0/0"]);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining("0.0.0.0/0"));
  });

  it("does not warn about the default", () => {
    const warn = vi.spyOn(pulumi.log, "warn").mockResolvedValue(undefined);
    load();
    expect(warn).not.toHaveBeenCalled();
  });
});

describe("keys Pulumi.yaml does not declare", () => {
  const errorForKeys = (keys: string[]): ConfigError => {
    try {
      loadConfig(() => undefined, keys);
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error(`no ConfigError for ${keys.join(", ")}`);
  };

  it.each([
    ["criu-lab:instanceTyp", "instanceType"],
    ["criu-lab:instancetype", "instanceType"],
    ["criu-lab:sshAllowedCidr", "sshAllowedCidrs"],
    ["criu-lab:autostopMinutes", "autoStopMinutes"],
    ["criu-lab:rootVolumeGb", "rootVolumeGiB"],
    ["criu-lab:ami", "amiId"],
  ])("refuses %s, suggesting %s", (key, closest) => {
    const err = errorForKeys(["aws:region", key]);
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toContain(`${key} is not a key of this project`);
    expect(err.problems[0]).toContain(`did you mean criu-lab:${closest}?`);
    expect(err.problems[0]).toContain("instanceType, ubuntuRelease, amiId");
  });

  it("accepts every declared key and leaves other namespaces alone", () => {
    const keys = [
      ...Object.keys(configSchema()).map((k) => `criu-lab:${k}`),
      "aws:region",
      "aws:profile",
      "other-project:instanceTyp",
    ];
    expect(undeclaredKeyProblems(keys)).toEqual([]);
    expect(() => loadConfig(() => undefined, keys)).not.toThrow();
  });

  it("reports an undeclared key together with bad values", () => {
    let error: unknown;
    try {
      loadConfig((key) => (key === "ubuntuRelease" ? "20.04" : undefined), ["criu-lab:verfy"]);
    } catch (err) {
      error = err;
    }
    expect((error as ConfigError).problems.map((p) => p.split(/[: ]/)[1])).toEqual([
      "verfy",
      "ubuntuRelease",
    ]);
  });

  it("reads the keys the stack sets from Pulumi's runtime config by default", () => {
    pulumi.runtime.setAllConfig({ "criu-lab:instanceTyp": "t4g.small" });
    try {
      expect(() => loadConfig()).toThrow(
        /criu-lab:instanceTyp .*did you mean criu-lab:instanceType\?/,
      );
    } finally {
      pulumi.runtime.setAllConfig({});
    }
  });
});

describe("ConfigError", () => {
  it("is a RunError, which `pulumi up` prints as its message alone, without a stack trace", () => {
    const err = errorFor({ instanceType: "t3 small" });
    expect(pulumi.RunError.isInstance(err)).toBe(true);
    expect(err).toBeInstanceOf(pulumi.RunError);
    expect(err.message).toMatch(
      /^invalid configuration \(1 problem\):\n {2}- criu-lab:instanceType/,
    );
  });
});

describe("ipv4CidrProblem", () => {
  it("accepts network-form CIDRs", () => {
    for (const cidr of ["0.0.0.0/0", "203.0.113.7/32", "10.0.0.0/8", "192.168.4.0/22"]) {
      expect(ipv4CidrProblem(cidr)).toBeUndefined();
    }
  });
  it("rejects the rest, suggesting the network for host bits", () => {
    expect(ipv4CidrProblem("192.168.5.0/22")).toContain("192.168.4.0/22");
    for (const bad of ["1.2.3.4", "1.2.3.4/33", "256.0.0.0/8", "::/0", "a.b.c.d/8"]) {
      expect(ipv4CidrProblem(bad)).toBeDefined();
    }
  });
});

describe("Pulumi.yaml", () => {
  const project = parse(
    fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8"),
  ) as {
    name: string;
    runtime: { name: string; options: { typescript: boolean } };
    config: Record<
      string,
      { type: string; default: unknown; description: string; items?: unknown }
    >;
  };

  it("is the criu-lab project on the TypeScript nodejs runtime", () => {
    expect(project.name).toBe("criu-lab");
    expect(project.runtime).toEqual({ name: "nodejs", options: { typescript: true } });
  });

  it("declares exactly the keys that have a rule in components/config.ts, each of its rule's type", () => {
    const schema = configSchema();
    expect(Object.keys(schema).sort()).toEqual(Object.keys(CONFIG_RULES).sort());
    for (const [key, rule] of Object.entries(CONFIG_RULES)) {
      expect({ key, type: schema[key as ConfigKey].type }).toEqual({ key, type: rule.type });
    }
    // The program's schema is the file's, key for key.
    expect(schema).toEqual(project.config);
  });

  it("gives every key a description", () => {
    for (const [key, declared] of Object.entries(project.config)) {
      expect(declared.description.trim(), key).not.toBe("");
    }
  });

  it("gives every key a default, so none is required in a new stack", () => {
    for (const [key, declared] of Object.entries(project.config)) {
      expect(declared.default, key).not.toBeUndefined();
    }
  });

  it("has defaults that pass validation exactly as the CLI hands them over", () => {
    const asCli = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
    const values = Object.fromEntries(
      Object.entries(project.config).map(([k, d]) => [k, asCli(d.default)]),
    ) as Record<ConfigKey, string>;
    expect(load(values)).toEqual(load());
  });

  it("has a dev stack in the original lab's region", () => {
    const stack = parse(
      fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.dev.yaml"), "utf8"),
    ) as { config: Record<string, unknown> };
    expect(stack.config["aws:region"]).toBe("ap-southeast-1");
  });
});

describe("a Pulumi.yaml that does not match components/config.ts", () => {
  const tmp = scratchDir("criulab-schema");
  const original = parse(fs.readFileSync(PROJECT_FILE, "utf8")) as {
    config: Record<string, unknown>;
  };

  /** readConfigSchema's error for a copy of Pulumi.yaml whose `config:` is `edit`'s. */
  function schemaError(
    name: string,
    edit: (config: Record<string, unknown>) => Record<string, unknown>,
  ): string {
    const file = path.join(tmp, `${name}.yaml`);
    fs.writeFileSync(file, stringify({ ...original, config: edit({ ...original.config }) }));
    try {
      readConfigSchema(file);
    } catch (err) {
      expect(pulumi.RunError.isInstance(err)).toBe(true);
      return (err as Error).message;
    }
    throw new Error(`${name}: no error`);
  }

  it("is refused when it declares a key with no rule, naming the key and where its rule goes", () => {
    const message = schemaError("added", (config) => ({
      ...config,
      spotPrice: { type: "string", default: "", description: "A spot price." },
    }));
    expect(message).toBe(
      `${path.join(tmp, "added.yaml")} does not match components/config.ts:\n` +
        "  - criu-lab:spotPrice has no rule in components/config.ts: add one to CONFIG_RULES " +
        "(and read it in loadConfig)",
    );
  });

  it("is refused when a key with a rule is not declared, naming the key", () => {
    const message = schemaError("removed", (config) => {
      delete config.autoStopMinutes;
      return config;
    });
    expect(message).toContain(
      "  - criu-lab:autoStopMinutes has a rule in components/config.ts but is not declared: " +
        "add it under config: with its type, default and description",
    );
  });

  it("is refused when a key's type is not its rule's, or its default is missing or of another type", () => {
    const message = schemaError("types", (config) => ({
      ...config,
      seats: { type: "string", default: "1", description: "Seats." },
      verify: { type: "boolean", description: "Verify." },
      rootVolumeGiB: { type: "integer", default: "16", description: "GiB." },
      sshAllowedCidrs: { type: "array", default: ["auto"], description: "CIDRs." },
      subnetId: "subnet-0123456789abcdef0",
      criuVersion: { type: "object", default: {}, description: "CRIU." },
      budgetEmail: { type: "string", default: "" },
    }));
    expect(message.split("\n").slice(1)).toEqual([
      "  - criu-lab:sshAllowedCidrs is an array without `items: {type: string}`",
      "  - criu-lab:rootVolumeGiB has a default that is not of its type integer",
      "  - criu-lab:subnetId is not a map of type, default and description",
      '  - criu-lab:criuVersion has type "object"; the lab\'s keys are string, integer, boolean, array',
      "  - criu-lab:verify has no default",
      "  - criu-lab:seats has type string, but its rule in components/config.ts reads integer",
      "  - criu-lab:budgetEmail has no description",
    ]);
  });

  it("is refused when its project is not the config namespace", () => {
    const file = path.join(tmp, "renamed.yaml");
    fs.writeFileSync(file, stringify({ ...original, name: "criu-lab-2" }));
    expect(() => readConfigSchema(file)).toThrow(
      `${file} does not match components/config.ts:\n` +
        "  - its project name is not criu-lab (the config namespace)",
    );
  });

  it("is refused when it is missing, naming the file", () => {
    const file = path.join(tmp, "none.yaml");
    expect(() => readConfigSchema(file)).toThrow(`cannot read the config schema ${file}`);
  });
});

describe("Pulumi.yaml's defaults elsewhere", () => {
  it("are the README's: its table has every key, in order, with Pulumi.yaml's type and default", () => {
    const schema = configSchema();
    const readme = fs.readFileSync(path.join(path.dirname(PROJECT_FILE), "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("\n## Configuration\n"));
    const rows = [...section.matchAll(/^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|/gm)]
      .map((m) => m.slice(1, 4).map((cell) => cell.trim()))
      .filter(([key]) => Object.hasOwn(schema, key));
    const typeName = {
      string: "string",
      integer: "integer",
      boolean: "boolean",
      array: "list of strings",
    };
    const shown = (spec: ConfigKeySpec): string =>
      spec.default === ""
        ? "(unset)"
        : Array.isArray(spec.default)
          ? `\`[${spec.default.join(", ")}]\``
          : `\`${String(spec.default)}\``;
    expect(rows).toEqual(
      Object.entries(schema).map(([key, spec]) => [key, typeName[spec.type], shown(spec)]),
    );
  });

  it("ship with the program: npm pack puts Pulumi.yaml where components/config.ts reads it", () => {
    const root = path.dirname(PROJECT_FILE);
    const [pack] = JSON.parse(
      execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }),
    ) as Array<{ files: Array<{ path: string }> }>;
    const files = pack.files.map((f) => f.path);
    expect(files).toContain(path.relative(root, PROJECT_FILE));
    expect(files).toContain("components/config.ts");
  });
});
