/**
 * The offline plan on small fixture programs: secrets known at plan time stay hidden
 * in the tree and in --json, a program that throws or makes an unknown lookup fails the plan
 * loudly, and bad flags or project files are refused before anything runs. A program that
 * throws: tests/unit/plan-cli.test.ts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { PLACEHOLDER_AMI, PLACEHOLDER_PUBLIC_IP } from "../../plan/placeholders";
import { PlanReport, renderTree } from "../../plan/printer";
import { SECRET } from "../../plan/values";
import { CliRun, fixture, PLAN_TIMEOUT_MS, runCli } from "./fixtures/plan-cli";

describe("plan of a program with secrets (fixtures/plan-ec2)", () => {
  let json: CliRun;
  let report: PlanReport;
  /** The tree the CLI prints without --json, from the same report (one run of the program). */
  let tree: string;

  beforeAll(async () => {
    json = await runCli(["--json", "-C", fixture("plan-ec2"), "--stack", "dev"]);
    report = JSON.parse(json.stdout) as PlanReport;
    tree = renderTree(report);
  }, PLAN_TIMEOUT_MS);

  it("succeeds with exit code 0 and a parseable --json", () => {
    expect(json.code, json.stderr).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.resources.map((r) => r.type)).toEqual([
      "pulumi:pulumi:Stack",
      "tls:index/privateKey:PrivateKey",
      "aws:ec2/securityGroup:SecurityGroup",
      "aws:ec2/instance:Instance",
    ]);
  });

  it("shows a secret input, a secret output and a secure config value as [secret] only", () => {
    const instance = report.resources.find((r) => r.type === "aws:ec2/instance:Instance");
    expect(instance?.inputs.userData).toBe(SECRET);
    expect(report.outputs.canary).toBe(SECRET);
    expect(report.config["plan-fixture:apiToken"]).toEqual({
      value: SECRET,
      source: "stack (secure)",
    });
    for (const out of [json.stdout, json.stderr, tree]) {
      // The canary is a known secret; the user-data embeds the secure config value.
      expect(out).not.toContain("plan-fixture-canary-secret");
      expect(out).not.toContain("# token");
      expect(out).not.toContain("not decrypted offline");
    }
    expect(tree).toContain(`userData: "${SECRET}"`);
  });

  it("marks every value that came from a lookup", () => {
    const instance = report.resources.find((r) => r.type === "aws:ec2/instance:Instance");
    expect(instance?.inputs.ami).toBe(PLACEHOLDER_AMI);
    expect(instance?.lookedUpAtDeploy).toEqual(["ami"]);
    expect(tree).toContain(`- ${PLACEHOLDER_PUBLIC_IP}/32  # placeholder: looked up at deploy`);
    expect(report.lookups.map((l) => l.token).sort()).toEqual([
      "aws:ec2/getAmi:getAmi",
      "command:local:run",
    ]);
  });
});

describe("plans that must fail loudly", () => {
  it(
    "a lookup without a placeholder: exit 1 naming its token",
    async () => {
      const run = await runCli(["--json", "-C", fixture("plan-unknown-invoke")]);
      expect(run.code).toBe(1);
      const report = JSON.parse(run.stdout) as PlanReport;
      expect(report.ok).toBe(false);
      expect(report.errors[0]).toBe(
        "the offline plan has no placeholder for the lookup 'aws:ec2/getVpc:getVpc': add one to plan/lookups.ts",
      );
      // Once: the program's own "Invoke of ... failed" repeats it and is left out.
      expect(run.stderr.split("no placeholder for the lookup")).toHaveLength(2);
      expect(run.stderr).toContain(`criu-lab-local plan: error: ${report.errors[0]}`);
      expect(report.diagnostics.map((d) => d.message).join("\n")).toContain(
        "Invoke of 'aws:ec2/getVpc:getVpc' failed",
      );
    },
    PLAN_TIMEOUT_MS,
  );
});

describe("a program that never finishes", () => {
  it(
    "is stopped after --timeout and the plan fails saying so",
    async () => {
      const run = await runCli(["--json", "-C", fixture("plan-hangs"), "--timeout", "3"]);
      expect(run.code).toBe(1);
      const report = JSON.parse(run.stdout) as PlanReport;
      expect(report.errors).toEqual(["the program did not finish in time and was stopped"]);
    },
    PLAN_TIMEOUT_MS,
  );
});

describe("bad input is refused before anything runs (exit 2)", () => {
  it.each([
    [["--bogus"], "Unknown option '--bogus'"],
    [["--timeout", "soon"], "--timeout 'soon': expected a whole number of seconds > 0"],
    [["-C", "/nonexistent-criu-lab"], "no Pulumi.yaml in /nonexistent-criu-lab"],
    [
      ["-C", fixture("plan-ec2"), "-c", "instanceType"],
      "--config 'instanceType': expected key=value",
    ],
    [["-C", fixture("plan-ec2"), "-s", "no/such"], "--stack 'no/such': a stack name has"],
  ])("%j", async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stdout).toBe("");
  });

  it("a schema key without a default that the stack does not set", async () => {
    const run = await runCli(["-C", fixture("plan-ec2"), "-s", "prod"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      "Stack 'prod' is missing configuration value 'plan-fixture:apiToken'",
    );
  });
});
