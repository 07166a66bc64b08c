/**
 * The contract layer (contract/, docs/design.md "Layout"): what every other part imports, and
 * that imports nothing of theirs; its rules as data (rules.json), which the host's judge reads
 * from the same file; and the lists it keeps once (migration modes, the seat bound).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { LAB_FILES, labFilesArchive } from "../../cloud-init/userData";
import { CONTRACTS, ContractName, brokenRules } from "../../contract/rules";
import { MAX_SEATS, MIGRATION_MODES, RAN_MODES, isSeatId, seatId } from "../../contract/seats";

const ROOT = join(__dirname, "..", "..");

/** Every .ts file under `dir` (relative to the repository), node_modules left out. */
function tsFiles(dir: string): string[] {
  const full = join(ROOT, dir);
  if (statSync(full).isFile()) return [dir];
  return readdirSync(full).flatMap((name) =>
    name === "node_modules" ? [] : tsFiles(join(dir, name)).filter((f) => f.endsWith(".ts")),
  );
}

/** The modules a file imports (static and dynamic), as written. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const found = [
    ...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms),
    ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
    ...text.matchAll(/\brequire\(\s*"([^"]+)"\s*\)/g),
    ...text.matchAll(/^\s*import\s+"([^"]+)"/gm),
  ];
  return found.map((m) => m[1]!);
}

/** A relative import as a path from the repository's root; a package stays as it is. */
function resolved(file: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  return relative(ROOT, join(ROOT, file, "..", spec));
}

/** [file, import] pairs of `dirs` whose import `bad` refuses. */
function offending(dirs: string[], bad: (target: string) => boolean): string[] {
  return dirs
    .flatMap(tsFiles)
    .flatMap((f) => importsOf(f).map((spec) => [f, resolved(f, spec)] as const))
    .filter(([, target]) => bad(target))
    .map(([f, target]) => `${f} imports ${target}`);
}

const under = (target: string, ...dirs: string[]) =>
  dirs.some((d) => target === d || target.startsWith(`${d}/`));

describe("the layers", () => {
  it("finds the imports it judges (the scan is not blind)", () => {
    expect(importsOf("components/seat.ts")).toContain("../contract/seats");
    expect(importsOf("verify/seats.ts")).toContain("../contract/seats");
  });

  it("contract/ imports nothing of the project but itself, and no I/O", () => {
    const io = /^(node:)?(fs|fs\/promises|child_process|net|http|https|dgram|os|process)$/;
    const problems = offending(["contract"], (t) =>
      t.startsWith("contract/")
        ? false
        : !t.includes("/") && !t.startsWith("@")
          ? io.test(t)
          : true,
    );
    expect(problems).toEqual([]);
    expect(offending(["contract"], (t) => t.startsWith("@") || t === "node-ssh")).toEqual([]);
  });

  it("the Pulumi program never imports the verifier, the CLIs or the local targets", () => {
    const outside = ["verify", "handout", "vm", "plan", "bench", "cli", "tests"];
    expect(offending(["components", "index.ts"], (t) => under(t, ...outside))).toEqual([]);
  });

  it("the CLIs and local targets take the contract from contract/, not through verify/", () => {
    // What verify/ still offers them is SSH verification, its CLI and the CLIs' shared main.
    const allowed = [
      "verify/cli",
      "verify/cliCommon",
      "verify/argv",
      "verify/session",
      "verify/verifier",
    ];
    const problems = offending(["handout", "vm", "plan", "cli.ts", "bench"], (t) =>
      under(t, "verify") ? !allowed.includes(t) : false,
    );
    expect(problems).toEqual([]);
  });
});

describe("rules.json", () => {
  const names = Object.keys(CONTRACTS) as ContractName[];

  it("is well formed: typed fields, rules over declared fields, messages naming fields", () => {
    const types = ["string", "number", "boolean", "object", "array"];
    for (const name of names) {
      const { fields, requires } = CONTRACTS[name];
      expect(fields.ok, name).toBe("boolean");
      for (const type of Object.values(fields)) expect(types, name).toContain(type);
      for (const rule of requires) {
        expect(["==", ">="], name).toContain(rule.is);
        expect(Object.keys(fields), `${name}: ${rule.field}`).toContain(rule.field);
        if ("field" in rule.than) expect(Object.keys(fields)).toContain(rule.than.field);
        else expect(["number", "boolean", "string"]).toContain(typeof rule.than.value);
        for (const [, key] of rule.message.matchAll(/\{(\w+)\}/g)) {
          expect(Object.keys(fields), `${name}: {${key}}`).toContain(key);
        }
      }
    }
  });

  it("is the file the host package ships: one file, linked, in the lab's archive", () => {
    const hostRules = join(ROOT, "host", "criu_lab", "rules.json");
    expect(realpathSync(hostRules)).toBe(realpathSync(join(ROOT, "contract", "rules.json")));
    expect(LAB_FILES.map((f) => f.name)).toContain("criu_lab/rules.json");
    const text = readFileSync(hostRules);
    expect(labFilesArchive().tar.includes(text)).toBe(true);
  });

  it("is read the same by the host's judge: every rule, broken alone, fails both", () => {
    // One passing result per contract, each rule broken by itself; the verdicts and the
    // messages must agree (the remote steps' tests run the judge on real captured output).
    const cases: Array<[ContractName, Record<string, unknown>]> = [];
    for (const name of names) {
      for (const rule of CONTRACTS[name].requires) {
        const r: Record<string, unknown> = { pid: 7, restoredPid: 7, lastBeforeDump: 3 };
        r[rule.field] = "field" in rule.than ? -5 : rule.than.value === true ? false : -5;
        cases.push([name, r]);
      }
    }
    const python = spawnSync(
      "/usr/bin/python3",
      [
        "-c",
        "import json, sys; sys.path.insert(0, sys.argv[1]); from criu_lab import judge; " +
          "print(json.dumps([judge.broken_rules(n, r) for n, r in json.loads(sys.stdin.read())]))",
        join(ROOT, "host"),
      ],
      { input: JSON.stringify(cases), encoding: "utf8" },
    );
    expect(python.stderr).toBe("");
    const fromPython = JSON.parse(python.stdout) as string[][];
    expect(fromPython).toEqual(cases.map(([n, r]) => brokenRules(CONTRACTS[n], r)));
    expect(fromPython.every((messages) => messages.length > 0)).toBe(true);
  });
});

describe("what contract/ keeps once", () => {
  it("the migration modes are the host command's (`criu-lab migrate --help`)", () => {
    const help = spawnSync(
      "/usr/bin/python3",
      [join(ROOT, "host", "criu-lab"), "migrate", "--help"],
      { encoding: "utf8" },
    );
    expect(help.status).toBe(0);
    const choices = /--mode \{([^}]+)\}/.exec(help.stdout)?.[1]?.split(",");
    expect(choices).toBeDefined();
    expect([...MIGRATION_MODES].sort()).toEqual([...choices!].sort());
    // The modes that run, in migrate.py's order (MODES): auto is its own.
    expect([...RAN_MODES]).toEqual(choices!.filter((m) => m !== "auto"));
  });

  it("the seat bound: ids 01 to MAX_SEATS, the config's range and the outputs' alike", () => {
    expect(seatId(MAX_SEATS)).toBe(String(MAX_SEATS));
    expect(isSeatId("01") && isSeatId(seatId(MAX_SEATS))).toBe(true);
    for (const bad of ["00", "1", seatId(MAX_SEATS + 1), "1a"])
      expect(isSeatId(bad), bad).toBe(false);
    // Pulumi.yaml's description of `seats` (its own text, shown by the CLI) says the same.
    const yaml = readFileSync(join(ROOT, "Pulumi.yaml"), "utf8");
    expect(yaml).toContain(`lab seats in this stack (a class): 1 to ${MAX_SEATS}.`);
  });
});
