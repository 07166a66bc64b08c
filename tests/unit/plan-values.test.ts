/**
 * plan/values.ts copies the SDK's serialisation signatures instead of loading its runtime:
 * this checks they still match the installed @pulumi/pulumi, and that secrets and unknowns
 * become the plan's markers at any depth. Also the runner's preload (a Node 20.20 workaround).
 */
import * as rpc from "@pulumi/pulumi/runtime/rpc";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { programErrorText } from "../../plan/printer";
import * as values from "../../plan/values";

describe("plan values", () => {
  it("uses the installed SDK's signatures", () => {
    expect(values.SIG_KEY).toBe(rpc.specialSigKey);
    expect(values.SECRET_SIG).toBe(rpc.specialSecretSig);
    expect(values.RESOURCE_SIG).toBe(rpc.specialResourceSig);
    expect(values.OUTPUT_SIG).toBe(rpc.specialOutputValueSig);
    expect(values.ASSET_SIG).toBe(rpc.specialAssetSig);
    expect(values.ARCHIVE_SIG).toBe(rpc.specialArchiveSig);
    expect(values.UNKNOWN_SENTINEL).toBe(rpc.unknownValue);
  });

  it("hides secrets and marks unknowns at any depth", () => {
    const secret = { [rpc.specialSigKey]: rpc.specialSecretSig, value: "hunter2" };
    const plan = values.toPlanObject({
      a: [{ b: secret }],
      c: rpc.unknownValue,
      d: { [rpc.specialSigKey]: rpc.specialOutputValueSig, value: "x", secret: true },
      e: { [rpc.specialSigKey]: rpc.specialOutputValueSig },
      f: { [rpc.specialSigKey]: rpc.specialResourceSig, urn: "urn:pulumi:s::p::t::name" },
    });
    expect(plan).toEqual({
      a: [{ b: values.SECRET }],
      c: values.UNKNOWN,
      d: values.SECRET,
      e: values.UNKNOWN,
      f: "[resource name]",
    });
    expect(JSON.stringify(plan)).not.toContain("hunter2");
  });
});

describe("plan/preload.cjs", () => {
  it("prints a program error without colours, with the frame that hangs Node 20.20's colouring", () => {
    const script = [
      'const util = require("node:util");',
      'const err = new Error("boom");',
      'err.stack = "Error: boom\\n    at async Stack.x (/app/node_modules/@pulumi/resource.ts:1:2)";',
      "process.stdout.write(util.inspect(err, { colors: true }));",
    ].join("\n");
    const out = execFileSync(
      process.execPath,
      ["--require", join(__dirname, "..", "..", "plan", "preload.cjs"), "-e", script],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(out).toContain("at async Stack.x (/app/node_modules/@pulumi/resource.ts:1:2)");
    expect(out).not.toContain("\u001b[");
  });
});

describe("programErrorText", () => {
  it("keeps the error's own text: no runner wrapper, frames or inspected properties", () => {
    const logged = [
      "Running program '/app/index.ts' failed with an unhandled exception:",
      "<ref *1> ConfigError: invalid configuration (1 problem):",
      '  - criu-lab:instanceType: "t3 small" is not valid; allowed: a type name',
      "    at loadConfig (/app/components/config.ts:238:34)",
      "    at module.exports (/app/index.ts:11:28) {",
      "  problems: [ 'criu-lab:instanceType: ...' ]",
      "}",
    ].join("\n");
    expect(programErrorText(logged)).toBe(
      'ConfigError: invalid configuration (1 problem):\n  - criu-lab:instanceType: "t3 small" is not valid; allowed: a type name',
    );
    // A pulumi.RunError is logged as its message alone: kept as it is.
    expect(programErrorText("criu-lab:amiId: 'x' is not an AMI id")).toBe(
      "criu-lab:amiId: 'x' is not an AMI id",
    );
  });
});
