/**
 * The Pulumi CLI floor (components/pulumiCli.ts). The versions come from pulumi/pulumi: the
 * RequirePulumiVersion call exists from 3.217.0, and previews compare a replacementTrigger
 * correctly from 3.226.0 (pulumi/pulumi#22119); the range is matched as the engine matches it
 * (a plain >= of semantic versions, the same in npm's semver for this form).
 */
import * as pulumi from "@pulumi/pulumi";
import semver from "semver";
import { describe, expect, it } from "vitest";
import { PULUMI_CLI_RANGE, requirePulumiCli } from "../../components/pulumiCli";

describe("the Pulumi CLI floor", () => {
  it("refuses every CLI whose preview shows kept stashes as replaced (before 3.226.0)", () => {
    for (const version of ["3.208.0", "3.216.0", "3.217.0", "3.225.9"]) {
      expect(semver.satisfies(version, PULUMI_CLI_RANGE), version).toBe(false);
    }
    for (const version of ["3.226.0", "3.248.0", "4.0.0"]) {
      expect(semver.satisfies(version, PULUMI_CLI_RANGE), version).toBe(true);
    }
  });

  it("asks the engine for that range and passes when it agrees", async () => {
    const asked: string[] = [];
    await requirePulumiCli(async (range) => {
      asked.push(range);
    });
    expect(asked).toEqual([">=3.226.0"]);
  });

  it("says which CLI is needed, why, and where to get it, as a RunError", async () => {
    // What the SDK rejects with on an engine without the call (runtime/settings.js).
    const error = (await requirePulumiCli(() =>
      Promise.reject(
        new Error(
          "The installed version of the CLI does not support the `RequirePulumiVersion` RPC. " +
            "Please upgrade the Pulumi CLI.",
        ),
      ),
    ).catch((err: unknown) => err)) as Error;
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect(error.message).toContain("Pulumi CLI 3.226.0 or newer");
    expect(error.message).not.toMatch(/3\.208/);
    expect(error.message).toContain("does not support the `RequirePulumiVersion` RPC");
    expect(error.message).toContain("https://www.pulumi.com/docs/iac/download-install/");
  });
});
