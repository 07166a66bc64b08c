/**
 * The offline plan's command line as a newcomer meets it: the README's `--json`
 * command writes a parseable file, `-c` takes the `--config-path` form or refuses it saying
 * which form works, undeclared keys are refused naming the closest declared one, and the plan
 * says which stack file and region it used.
 */
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PlanReport } from "../../plan/printer";
import { closestKey } from "../../components/closestKey";
import { configSchema } from "../../components/config";
import { loadProject, parseKeyPath, PlanInputError } from "../../plan/project";
import { fixture, PLAN_TIMEOUT_MS, ROOT, runCli } from "./fixtures/plan-cli";
import { scratchDir } from "./support/scratch";

// The docs that show commands: the README and the local targets (where the plan is).
const README = ["README.md", "docs/local.md"]
  .map((f) => readFileSync(join(ROOT, f), "utf8"))
  .join("\n");
const tmp = scratchDir("criulab-plan-cli");

/** The README's shell lines (inside ```sh/```bash blocks), comments dropped. */
function readmeCommands(): string[] {
  const blocks = [...README.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks
    .flatMap((b) => b.split("\n"))
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

function load(overrides: string[], extra: { configPath?: boolean; stack?: string } = {}) {
  return loadProject({ dir: ROOT, stack: extra.stack ?? "dev", overrides, ...extra, env: {} });
}

describe("the README's --json commands", () => {
  it("never redirect `npm run` without -s (npm's banner would go into the file)", () => {
    const redirected = readmeCommands().filter((c) => /^(sudo )?npm run\b.*[^2]>\s*\S/.test(c));
    expect(redirected.length).toBeGreaterThanOrEqual(2);
    for (const command of redirected) expect(command).toMatch(/^(sudo )?npm run -s /);
  });

  it(
    "`npm run -s plan -- --json > plan.json`, exactly as written there, writes the plan as JSON",
    async () => {
      const command = readmeCommands().find((c) => /\bplan\b.* --json > plan\.json$/.test(c));
      expect(command).toBe("npm run -s plan -- --json > plan.json");
      // Run where nothing else writes: a folder of links to the project's files, so the file
      // lands there, never on a user's plan.json or on another run's at the repository root.
      const dir = mkdtempSync(join(tmp, "project-"));
      for (const entry of readdirSync(ROOT)) {
        if (entry !== ".git" && entry !== "plan.json")
          symlinkSync(join(ROOT, entry), join(dir, entry));
      }
      const file = join(dir, "plan.json");
      const atRoot = join(ROOT, "plan.json");
      const rootBefore = existsSync(atRoot) ? readFileSync(atRoot, "utf8") : undefined;
      const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = execFile("bash", ["-c", command as string], { cwd: dir }, (err, _o, e) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: e }),
        );
        child.stdin?.end();
      });
      expect(run.code, run.stderr).toBe(0);
      const report = JSON.parse(readFileSync(file, "utf8")) as PlanReport;
      expect(report.ok).toBe(true);
      expect(report.stackFile).toBe("Pulumi.dev.yaml");
      expect(report.region).toEqual({
        value: "ap-southeast-1",
        source: "aws:region in Pulumi.dev.yaml",
      });
      expect(run.stderr).toContain(
        "stack file Pulumi.dev.yaml; region ap-southeast-1 (aws:region in Pulumi.dev.yaml)",
      );
      // The repository root is left as it was.
      expect(existsSync(atRoot) ? readFileSync(atRoot, "utf8") : undefined).toBe(rootBefore);
    },
    // npm, tsx and the plan's own start-up on top of the program's run.
    2 * PLAN_TIMEOUT_MS,
  );
});

describe("-c with a path (pulumi up --config-path)", () => {
  it("parses paths as Pulumi does", () => {
    expect(parseKeyPath("sshAllowedCidrs[0]")).toEqual(["sshAllowedCidrs", 0]);
    expect(parseKeyPath('a.b[2]["c.d"]')).toEqual(["a", "b", 2, "c.d"]);
    expect(() => parseKeyPath("a[x]")).toThrow(/invalid config key path 'a\[x\]' at '\[x\]'/);
  });

  it("sets a list item in the stack's value, not the project default", () => {
    const project = load(["sshAllowedCidrs[0]=203.0.113.7/32"], { configPath: true });
    expect(project.config.get("criu-lab:sshAllowedCidrs")).toEqual({
      value: '["203.0.113.7/32"]',
      secret: false,
      source: "override",
    });
    const two = load(["sshAllowedCidrs[0]=203.0.113.7/32", "sshAllowedCidrs[1]=198.51.100.0/24"], {
      configPath: true,
    });
    expect(two.config.get("criu-lab:sshAllowedCidrs")?.value).toBe(
      '["203.0.113.7/32","198.51.100.0/24"]',
    );
  });

  it("refuses an index past the end, naming what the list holds", () => {
    expect(() => load(["sshAllowedCidrs[1]=203.0.113.7/32"], { configPath: true })).toThrow(
      "--config sshAllowedCidrs[1]: index 1 is out of range (the list has 0 item(s); 0 appends)",
    );
  });

  it("without --config-path, refuses the path form naming the two forms that work (exit 2)", async () => {
    const run = await runCli(["-C", ROOT, "-c", "sshAllowedCidrs[0]=203.0.113.7/32"]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(
      "criu-lab-local plan: error: --config 'sshAllowedCidrs[0]=203.0.113.7/32': " +
        "'sshAllowedCidrs[0]' is a path into 'sshAllowedCidrs': add --config-path (as " +
        "`pulumi up --config-path` and `pulumi config set --path` read it), or set the whole " +
        `value: -c 'sshAllowedCidrs=["203.0.113.7/32"]'`,
    );
  });
});

describe("keys Pulumi.yaml does not declare", () => {
  it("closestKey names the declared key nearest a typo", () => {
    expect(closestKey("instanceTyp", ["amiId", "instanceType", "verify"])).toBe("instanceType");
    expect(closestKey("RootVolumeGib", ["rootVolumeGiB", "subnetId"])).toBe("rootVolumeGiB");
  });

  it("-c instanceTyp=t4g.small is refused before anything runs, naming instanceType (exit 2)", async () => {
    const run = await runCli(["-C", ROOT, "-c", "instanceTyp=t4g.small"]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(
      /^criu-lab-local plan: error: --config: 'criu-lab:instanceTyp' is not a config key of criu-lab; did you mean 'instanceType'\? \(Pulumi\.yaml declares: instanceType, ubuntuRelease, /,
    );
  });

  it("a typo in the stack file is refused too, naming the file", () => {
    const dir = mkdtempSync(join(tmp, "typo-"));
    writeFileSync(join(dir, "Pulumi.yaml"), readFileSync(join(ROOT, "Pulumi.yaml")));
    writeFileSync(join(dir, "Pulumi.typo.yaml"), "config:\n  criu-lab:autoStopMinute: 30\n");
    expect(() => loadProject({ dir, stack: "typo", env: {} })).toThrow(
      new PlanInputError(
        "Pulumi.typo.yaml: 'criu-lab:autoStopMinute' is not a config key of criu-lab; did you " +
          `mean 'autoStopMinutes'? (Pulumi.yaml declares: ${Object.keys(configSchema()).join(", ")})`,
      ),
    );
  });

  it("other namespaces (aws:region) are the providers' own and pass", () => {
    expect(load(["aws:region=eu-west-1"]).region).toEqual({
      value: "eu-west-1",
      source: "aws:region from --config",
    });
  });
});

describe("which stack file and region the plan used", () => {
  it("a stack with no Pulumi.<stack>.yaml: none, the stack files that exist, the region from the environment", () => {
    const project = loadProject({
      dir: ROOT,
      stack: "prod",
      env: { AWS_DEFAULT_REGION: "eu-north-1" },
    });
    expect(project.stackFile).toBeUndefined();
    expect(project.otherStackFiles).toEqual(["Pulumi.dev.yaml"]);
    expect(project.region).toEqual({
      value: "eu-north-1",
      source: "environment AWS_DEFAULT_REGION",
    });
    expect(loadProject({ dir: ROOT, stack: "prod", env: {} }).region).toBeUndefined();
  });
});

describe("a program error (fixtures/plan-throws, which has no stack file)", () => {
  it(
    "prints the error once, first, without a stack trace or the plan's header; exit 1",
    async () => {
      const run = await runCli(["-C", fixture("plan-throws")]);
      expect(run.code).toBe(1);
      const lines = run.stderr.split("\n");
      expect(lines[0]).toMatch(
        /^criu-lab-local plan: warning: stack 'dev' has no Pulumi\.dev\.yaml in .*plan-throws: only Pulumi\.yaml's defaults and --config values apply$/,
      );
      expect(lines[1]).toBe(
        "criu-lab-local plan: error: Error: plan-throws fixture: deliberate failure",
      );
      const all = `${run.stderr}\n${run.stdout}`;
      expect(all.split("deliberate failure")).toHaveLength(2);
      expect(all).not.toMatch(/^\s+at /m);
      expect(all).not.toMatch(/resources to create|^Config:|^Diagnostics:|Running program/m);
      // What the program registered before it failed, and nothing else, on stdout.
      expect(run.stdout).toBe(
        "Registered before the program failed:\n  + aws:ec2/vpc:Vpc  before-the-failure",
      );
    },
    PLAN_TIMEOUT_MS,
  );
});
