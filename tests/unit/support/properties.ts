/**
 * What a lab's user relies on, asserted on a resource's inputs as the mocks record them and as
 * the offline plan prints them (both carry `name` and `inputs`): properties, not copies of what
 * components/*.ts passes, so a test fails when the property breaks and not when the code is
 * merely written another way.
 */
import { expect } from "vitest";

export interface WithInputs {
  name: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  inputs: Record<string, any>;
}

/**
 * A host's metadata service takes IMDSv2 only (a token for every call) and answers no hop
 * beyond the host, so a container on it cannot read the instance's credentials.
 */
export function expectImdsV2Required(instance: WithInputs): void {
  const metadata = instance.inputs.metadataOptions ?? {};
  expect(metadata.httpTokens, `${instance.name}: IMDSv2 required`).toBe("required");
  expect(metadata.httpPutResponseHopLimit, `${instance.name}: no hop beyond the host`).toBe(1);
}

/** Every volume of a host is encrypted: the root, and no other volume it could bring. */
export function expectVolumesEncrypted(instance: WithInputs): void {
  expect(instance.inputs.rootBlockDevice?.encrypted, `${instance.name}: root encrypted`).toBe(true);
  expect(instance.inputs.ebsBlockDevices ?? [], `${instance.name}: no other volume`).toEqual([]);
}

/**
 * The auto-stop's power-off stops the host (its disk and checkpoints kept), never terminates
 * it; and a new user-data (host key, CRIU source) makes a new host, as cloud-init runs once.
 */
export function expectStopsAndRebuildsOnNewUserData(instance: WithInputs): void {
  expect(instance.inputs.instanceInitiatedShutdownBehavior, instance.name).toBe("stop");
  expect(instance.inputs.userDataReplaceOnChange, instance.name).toBe(true);
}

/**
 * Inbound, only SSH (TCP 22) from `allowed`, or from the group itself between the lab's hosts;
 * nothing open to the whole internet unless `allowed` says so.
 */
export function expectSshOnlyFrom(sg: WithInputs, allowed: string[]): void {
  const ingress = (sg.inputs.ingress ?? []) as Array<Record<string, unknown>>;
  expect(ingress.length, `${sg.name}: some way in`).toBeGreaterThan(0);
  const fromOutside: string[] = [];
  for (const rule of ingress) {
    expect([rule.protocol, rule.fromPort, rule.toPort], `${sg.name}: SSH only`).toEqual([
      "tcp",
      22,
      22,
    ]);
    const sources = [
      ...((rule.cidrBlocks as string[] | undefined) ?? []),
      ...((rule.ipv6CidrBlocks as string[] | undefined) ?? []),
    ];
    if (rule.self === true) expect(sources, `${sg.name}: between hosts, no CIDR`).toEqual([]);
    else fromOutside.push(...sources);
  }
  expect(fromOutside.sort(), `${sg.name}: SSH from`).toEqual([...allowed].sort());
  if (!allowed.some((cidr) => cidr === "0.0.0.0/0" || cidr === "::/0")) {
    expect(JSON.stringify(ingress), sg.name).not.toMatch(/0\.0\.0\.0\/0|::\/0/);
  }
}

/** The host reaches anything outbound (apt, CRIU's source, the peer): one rule, all traffic. */
export function expectOpenEgress(sg: WithInputs): void {
  expect(sg.inputs.egress, sg.name).toEqual([
    expect.objectContaining({ protocol: "-1", cidrBlocks: ["0.0.0.0/0"] }),
  ]);
}

/** All a lab host's own settings promise: IMDSv2 only, encrypted volumes, stop not terminate. */
export function expectHostHardened(instance: WithInputs): void {
  expectImdsV2Required(instance);
  expectVolumesEncrypted(instance);
  expectStopsAndRebuildsOnNewUserData(instance);
}

/**
 * The AMI lookup's arguments (what the mocks record and the plan prints): Canonical's newest
 * Ubuntu image named `image` for `architecture`; by default the default host's, 24.04 on x86.
 */
export function ubuntuAmiLookup(
  image = "hvm-ssd-gp3/ubuntu-noble-24.04-amd64",
  architecture = "x86_64",
): Record<string, unknown> {
  return {
    owners: ["099720109477"],
    mostRecent: true,
    filters: expect.arrayContaining([
      { name: "name", values: [`ubuntu/images/${image}-server-*`] },
      { name: "architecture", values: [architecture] },
    ]),
  };
}
