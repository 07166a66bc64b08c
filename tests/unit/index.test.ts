/**
 * Smoke test of the Pulumi program itself (index.ts) under the mocks: default config from
 * Pulumi.yaml's defaults, `auto` resolved through the mocked `command:local:run` invoke, and
 * every stack output docs/design.md "Contracts" names.
 */
import * as pulumi from "@pulumi/pulumi";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  LabMocks,
  MOCK_DEPLOYER_IP,
  MOCK_ELASTIC_IP,
  setLabConfig,
  setupMocks,
  userDataOf,
  valueOf,
} from "./support/mocks";

type Program = () => Promise<Record<string, unknown>>;

let mocks: LabMocks;
let program: Program;
let outputs: Record<string, unknown>;

beforeAll(async () => {
  mocks = await setupMocks();
  // The program module is imported only after the mocks are in place. index.ts is
  // `export = async () => ...`: the module itself is the program.
  const module = (await import("../../index")) as unknown as Program | { default: Program };
  program = typeof module === "function" ? module : module.default;
  outputs = await program();
});

const value = (key: string) => {
  const out = outputs[key];
  return pulumi.Output.isInstance(out) ? valueOf(out) : Promise.resolve(out);
};

describe("index.ts", () => {
  it("exports exactly the outputs of docs/design.md's contract", () => {
    expect(Object.keys(outputs).sort()).toEqual(
      [
        "instanceId",
        "publicIp",
        "publicDns",
        "amiId",
        "sshUser",
        "sshCommand",
        "privateKey",
        "knownHostsLine",
        "criuVersion",
        "verification",
        "seats",
        "doctor",
        "region",
      ].sort(),
    );
  });

  it("gives usable values", async () => {
    // The Elastic IP's address and name: they survive stop/start.
    expect(await value("publicIp")).toBe(MOCK_ELASTIC_IP);
    expect(await value("publicDns")).toBe("ec2-203-0-113-20.ap-southeast-1.compute.amazonaws.com");
    expect(await value("amiId")).toBe("ami-0b8b8b8b8b8b8b8b8");
    expect(await value("sshUser")).toBe("ubuntu");
    expect(await value("sshCommand")).toBe(`ssh -i criu-lab.pem ubuntu@${MOCK_ELASTIC_IP}`);
    expect(await value("knownHostsLine")).toMatch(
      new RegExp(`^${MOCK_ELASTIC_IP.replace(/\./g, "\\.")} ssh-ed25519 [A-Za-z0-9+/=]+$`),
    );
    expect(await value("instanceId")).toMatch(/^criu-lab-seat-01-a-host-instance-id-/);
    expect(await value("criuVersion")).toBe("4.2");
    expect(await value("verification")).toMatchObject({ ok: true, pid: 4242, restoredPid: 4242 });
    expect(await value("doctor")).toMatchObject({
      ok: true,
      criuVersion: "4.2.1",
      exercises: { game: { ok: true } },
    });
    expect(await value("privateKey")).toContain("BEGIN OPENSSH PRIVATE KEY");
    // The provider's region (getRegion's `region`): the verifier's start-instances command.
    expect(await value("region")).toBe("ap-southeast-1");
    expect(mocks.invokesOf("aws:index/getRegion:getRegion")).toHaveLength(1);
  });

  it("keeps the private key a secret output", async () => {
    expect(await pulumi.isSecret(outputs.privateKey as pulumi.Output<string>)).toBe(true);
  });

  it("reads the Elastic IP and vCPU quotas before building", () => {
    const codes = mocks
      .invokesOf("aws:servicequotas/getServiceQuota:getServiceQuota")
      .map((i) => i.inputs.quotaCode);
    expect(codes.sort()).toEqual(["L-0263D0A3", "L-1216C47A"]);
    expect(mocks.invokesOf("aws:ec2/getEips:getEips").map((i) => i.inputs)).toContainEqual({
      tags: { Project: "criu-lab", Stack: "dev" },
    });
  });

  it("resolves the default 'auto' CIDR to the deployer's /32 via command:local:run", () => {
    expect(mocks.invokesOf("command:local:run")).toHaveLength(1);
    // ... without the provider logging the answer, the deployer's address.
    expect(mocks.invokesOf("command:local:run")[0].inputs.logging).toBe("none");
    const sg = mocks.one("aws:ec2/securityGroup:SecurityGroup");
    expect(sg.inputs.ingress[0].cidrBlocks).toEqual([`${MOCK_DEPLOYER_IP}/32`]);
  });

  it("uses Pulumi.yaml's defaults: t3.small, Ubuntu 24.04, 16 GiB, CRIU v4.2 from git", () => {
    const instance = mocks.one("aws:ec2/instance:Instance");
    expect(instance.inputs.instanceType).toBe("t3.small");
    expect(instance.inputs.rootBlockDevice.volumeSize).toBe(16);
    expect(userDataOf(instance)).toContain("v4.2");
    expect(userDataOf(instance)).toContain("3c7d4fa013297b431da48eff821db7f2e8b90c27");
    const ami = mocks.invokesOf("aws:ec2/getAmi:getAmi")[0];
    expect(JSON.stringify(ami.inputs.filters)).toContain("ubuntu-noble-24.04-amd64-server-*");
  });
});

describe("index.ts fails before creating anything", () => {
  afterEach(() => {
    setLabConfig({});
    mocks.answers["command:local:run"] = () => ({ stdout: `${MOCK_DEPLOYER_IP}\n`, stderr: "" });
  });

  it("on bad config, naming every bad key", async () => {
    const before = mocks.resources.length;
    setLabConfig({ rootVolumeGiB: "4", ubuntuRelease: "20.04" });
    await expect(program()).rejects.toThrow(
      /criu-lab:ubuntuRelease: "20.04".*\n.*criu-lab:rootVolumeGiB: "4"/,
    );
    expect(mocks.resources.length).toBe(before);
  });

  it("on a key Pulumi.yaml does not declare, naming the closest declared key", async () => {
    const before = mocks.resources.length;
    setLabConfig({ instanceTyp: "t4g.small" });
    const error = await program().catch((err: unknown) => err);
    expect((error as Error).message).toMatch(
      /criu-lab:instanceTyp is not a key of this project; did you mean criu-lab:instanceType\?/,
    );
    // Printed by Pulumi's runner as the message alone, without a stack trace.
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect(mocks.resources.length).toBe(before);
  });

  it("when a class needs more Elastic IPs than the region allows (5 by default)", async () => {
    const before = mocks.resources.length;
    setLabConfig({ seats: "3", hostsPerSeat: "2" });
    await expect(program()).rejects.toThrow(
      /^criu-lab: not enough quota; nothing was created\. 6 hosts need 6 new Elastic IPs, but ap-southeast-1 allows 5 \(quota L-0263D0A3\)/,
    );
    expect(mocks.resources.length).toBe(before);
  });

  it("when 'auto' cannot be resolved, saying how to set the key", async () => {
    const before = mocks.resources.length;
    mocks.answers["command:local:run"] = () => {
      throw new Error("curl: (28) Connection timed out after 10001 milliseconds");
    };
    await expect(program()).rejects.toThrow(
      /Connection timed out[\s\S]*pulumi config set --path 'criu-lab:sshAllowedCidrs\[0\]' 203\.0\.113\.7\/32/,
    );
    expect(mocks.resources.length).toBe(before);
  });
});
