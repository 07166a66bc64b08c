/**
 * `auto` in sshAllowedCidrs: resolved through an injected lookup, validated, and on failure
 * an error that says exactly how to set the key. The default lookup is the command
 * provider's local.run invoke (answered here by the mocks).
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { LabMocks, MOCK_DEPLOYER_IP, setupMocks } from "./support/mocks";
import type * as SshCidrs from "../../components/sshCidrs";

let mocks: LabMocks;
let resolveSshCidrs: typeof SshCidrs.resolveSshCidrs;
let CHECKIP_COMMAND: string;

beforeAll(async () => {
  mocks = await setupMocks();
  ({ resolveSshCidrs, CHECKIP_COMMAND } = await import("../../components/sshCidrs"));
});

const HINT = "pulumi config set --path 'criu-lab:sshAllowedCidrs[0]' 203.0.113.7/32";

describe("resolveSshCidrs", () => {
  it("replaces auto with the looked-up address as a /32", async () => {
    const cidrs = await resolveSshCidrs(["auto", "10.0.0.0/8"], async () => "192.0.2.44\n");
    expect(cidrs).toEqual(["192.0.2.44/32", "10.0.0.0/8"]);
  });

  it("does not look anything up without auto", async () => {
    const lookup = async (): Promise<string> => {
      throw new Error("must not be called");
    };
    expect(await resolveSshCidrs(["203.0.113.0/24"], lookup)).toEqual(["203.0.113.0/24"]);
  });

  it("drops a duplicate when the address was also written by hand", async () => {
    const cidrs = await resolveSshCidrs(["192.0.2.44/32", "auto"], async () => "192.0.2.44");
    expect(cidrs).toEqual(["192.0.2.44/32"]);
  });

  it("fails with the command to set the key when the lookup fails", async () => {
    const lookup = async (): Promise<string> => {
      throw new Error("curl: (6) Could not resolve host: checkip.amazonaws.com");
    };
    const err = await resolveSshCidrs(["auto"], lookup).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("criu-lab:sshAllowedCidrs is 'auto'");
    expect((err as Error).message).toContain("Could not resolve host");
    expect((err as Error).message).toContain(HINT);
  });

  it("fails the same way when the answer is not an IPv4 address", async () => {
    const err = await resolveSshCidrs(["auto"], async () => "<html>captive portal</html>").catch(
      (e: Error) => e,
    );
    expect((err as Error).message).toContain("not an IPv4");
    expect((err as Error).message).toContain(HINT);
  });

  it("by default asks checkip.amazonaws.com through the command:local:run invoke", async () => {
    mocks.invokes.length = 0;
    expect(await resolveSshCidrs(["auto"])).toEqual([`${MOCK_DEPLOYER_IP}/32`]);
    const calls = mocks.invokesOf("command:local:run");
    expect(calls).toHaveLength(1);
    expect(calls[0].inputs.command).toBe(CHECKIP_COMMAND);
    expect(CHECKIP_COMMAND).toContain("https://checkip.amazonaws.com");
    // The provider would otherwise log the answer, the deployer's address, on every preview.
    expect(calls[0].inputs.logging).toBe("none");
  });

  it("fails with a RunError: `pulumi up` prints the message without a stack trace", async () => {
    const err = await resolveSshCidrs(["auto"], async () => "nope").catch((e: unknown) => e);
    expect(pulumi.RunError.isInstance(err)).toBe(true);
  });

  it("is answered only because the mocks answer it: an unmocked invoke fails loudly", async () => {
    const answer = mocks.answers["command:local:run"];
    delete mocks.answers["command:local:run"];
    try {
      const err = await resolveSshCidrs(["auto"]).catch((e: Error) => e);
      expect((err as Error).message).toContain("mocks: unmocked invoke command:local:run");
    } finally {
      mocks.answers["command:local:run"] = answer;
    }
  });
});
