/**
 * Opt-in end to end on real AWS: this project deployed with the Pulumi Automation API to a
 * uniquely named stack, verified with `criu-lab-verify --stack NAME` exactly as a user or CI
 * would run it (the real `pulumi stack output --show-secrets` reader), and destroyed in a
 * `finally`, also when verification fails. It creates billable resources, so it runs only with
 * CRIU_LAB_AWS_E2E=1, AWS credentials and the pulumi CLI; otherwise it is skipped with a printed
 * reason, also under CI=true (this tier is not part of .ci/run: .github/workflows/aws-e2e.yml
 * runs it on demand).
 *
 * Environment: AWS_REGION (default ap-southeast-1, as Pulumi.dev.yaml), CRIU_LAB_INSTANCE_TYPE
 * (optional), and the Pulumi backend the CLI is logged in to (PULUMI_ACCESS_TOKEN, or
 * PULUMI_BACKEND_URL with PULUMI_CONFIG_PASSPHRASE).
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { describe, expect, it } from "vitest";
import { main } from "../../verify/cli";
import { VerifyReport } from "../../verify/verifier";
import { needCommand } from "../support/requirements";

const PROJECT_DIR = resolve(__dirname, "../..");

/** Why this tier cannot run here; empty when it can. */
function missing(): string[] {
  const env = process.env;
  const reasons: string[] = [];
  if (env.CRIU_LAB_AWS_E2E !== "1") {
    reasons.push("CRIU_LAB_AWS_E2E=1 is not set (opt-in: it creates billable AWS resources)");
  }
  const hasCredentials =
    Boolean(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) ||
    Boolean(env.AWS_PROFILE) ||
    Boolean(env.AWS_WEB_IDENTITY_TOKEN_FILE && env.AWS_ROLE_ARN);
  if (!hasCredentials) {
    reasons.push(
      "no AWS credentials (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a web identity)",
    );
  }
  const pulumi = needCommand("pulumi", "https://www.pulumi.com/docs/install/");
  if (pulumi) reasons.push(pulumi);
  return reasons;
}

const reasons = missing();
if (reasons.length > 0) {
  // A plain skip even under CI=true: this tier is opt-in by design (see above).
  console.warn(`SKIPPED criu-lab on real AWS: ${reasons.join("; ")}`);
}

describe.skipIf(reasons.length > 0)("criu-lab on real AWS", () => {
  it("pulumi up, criu-lab-verify --stack, pulumi destroy", async () => {
    const stackName = `e2e-${new Date().toISOString().slice(0, 10).replace(/-/g, "")}-${randomBytes(3).toString("hex")}`;
    const log = (line: string) => process.stdout.write(line);
    const stack: Stack = await LocalWorkspace.createStack({ stackName, workDir: PROJECT_DIR });
    let report: VerifyReport | undefined;
    try {
      await stack.setConfig("aws:region", { value: process.env.AWS_REGION ?? "ap-southeast-1" });
      if (process.env.CRIU_LAB_INSTANCE_TYPE) {
        await stack.setConfig("criu-lab:instanceType", {
          value: process.env.CRIU_LAB_INSTANCE_TYPE,
        });
      }
      console.log(`=== pulumi up (stack ${stackName})`);
      const up = await stack.up({ onOutput: log });
      expect(up.summary.result).toBe("succeeded");
      const outputs = await stack.outputs();
      expect(outputs.privateKey?.secret).toBe(true);

      console.log(`=== criu-lab-verify --stack ${stackName}`);
      const out: string[] = [];
      const code = await main(["--stack", stackName, "--timeout", "1800", "--json"], {
        out: (t) => out.push(t),
        err: (t) => console.error(t),
      });
      report = JSON.parse(out.join("\n")) as VerifyReport;
      // The evidence, whatever the outcome (the report never holds the key).
      console.log(JSON.stringify(report, null, 2));
      expect(code).toBe(0);
      expect(report.ok).toBe(true);
      expect(report.hostKeyFingerprint).toMatch(/^SHA256:/);
      expect(report.check?.criuVersion).not.toBe("");
      expect(report.demo?.restoredPid).toBe(report.demo?.pid);
      expect(report.demo?.firstAfterRestore).toBe((report.demo?.lastBeforeDump ?? NaN) + 1);
    } finally {
      console.log(`=== pulumi destroy (stack ${stackName})`);
      await stack.destroy({ onOutput: log });
      await stack.workspace.removeStack(stackName);
    }
  });
});
