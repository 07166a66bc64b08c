/**
 * CriuLab and its components under the Pulumi mocks: every resource with the properties that
 * matter, the lookups it makes, the remote Commands and their order, and secrets.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  ConstructionLog,
  LabMocks,
  MOCK_ELASTIC_IP,
  MOCK_LOCAL_ZONE,
  MOCK_LOOKUPS,
  MOCK_VPC,
  PASSING_CHECK,
  PASSING_DEMO,
  failureOf,
  isSecretValue,
  setupMocks,
  userDataOf,
  valueOf,
  labChild,
} from "./support/mocks";
import {
  expectHostHardened,
  expectOpenEgress,
  expectSshOnlyFrom,
  ubuntuAmiLookup,
} from "./support/properties";
import { INVOKE, T } from "./support/types";
import { LAB_CIDR, newLab, settled } from "./support/lab";

// Types only: the modules themselves load after the mocks are installed.
import type { CriuLab, CriuLabArgs } from "../../components/lab";
import type { REMOTE_CHECKS as RemoteChecks } from "../../contract/checks";

let mocks: LabMocks;
let CriuLabClass: typeof CriuLab;
let CHECKS: typeof RemoteChecks;

const CIDR = LAB_CIDR;

/** The names of the verification's remote Commands of lab `lab`'s host, in order. */
const verifySteps = (lab: string, steps: string[]) =>
  steps.map((step) => `${lab}-seat-01-a-verify-${step}`);

interface Built {
  lab: CriuLab;
  log: ConstructionLog;
  /** Invokes made while this lab was built. */
  invokes: LabMocks["invokes"];
}

/**
 * Builds a lab named `name` and waits until all its resources reached the mocks. `failing`
 * picks an Output expected to fail: its failure is taken at once, before it rejects, as
 * `pulumi up` would take it (a later handler would leave an unhandled rejection behind).
 */
async function build(
  name: string,
  overrides: Partial<CriuLabArgs> = {},
  failing?: (lab: CriuLab) => pulumi.Output<unknown>,
): Promise<Built & { failure?: Promise<Error> }> {
  mocks.invokes.length = 0;
  const made = newLab(CriuLabClass, name, overrides);
  const failure = failing ? failureOf(failing(made.lab)) : undefined;
  await valueOf(made.lab.host.userData);
  const { lab, log } = await settled(mocks, made);
  return { lab, log, invokes: [...mocks.invokes], failure };
}

beforeAll(async () => {
  mocks = await setupMocks();
  CriuLabClass = (await import("../../components/lab")).CriuLab;
  CHECKS = (await import("../../contract/checks")).REMOTE_CHECKS;
});

beforeEach(() => {
  mocks.commandStdout.check = PASSING_CHECK;
  mocks.commandStdout.demo = PASSING_DEMO;
});

describe("the default lab (new VPC, verify on)", () => {
  let built: Built;
  const one = (type: string) => mocks.one(type, "default-");

  beforeAll(async () => {
    built = await build("default");
    await valueOf(built.lab.verificationResult);
  });

  it("creates the original lab's network in a zone that offers the type", () => {
    const vpc = one(T.vpc);
    expect(vpc.inputs).toMatchObject({
      cidrBlock: "10.0.0.0/16",
      enableDnsHostnames: true,
      enableDnsSupport: true,
    });
    const subnet = one(T.subnet);
    expect(subnet.inputs).toMatchObject({
      vpcId: vpc.id,
      cidrBlock: "10.0.1.0/24",
      mapPublicIpOnLaunch: true,
      // MOCK_ZONES is unsorted: the first by name is picked, not the first answered.
      availabilityZone: "ap-southeast-1a",
    });
    const offerings = built.invokes.filter((i) => i.token === INVOKE.offerings);
    expect(offerings).toHaveLength(1);
    expect(offerings[0].inputs).toMatchObject({
      locationType: "availability-zone",
      filters: [{ name: "instance-type", values: ["t3.small"] }],
    });
    // The offerings include an opted-in Local Zone, which sorts first: only real
    // availability zones are candidates.
    expect([MOCK_LOCAL_ZONE, "ap-southeast-1a"].sort()[0]).toBe(MOCK_LOCAL_ZONE);
    const zones = built.invokes.filter((i) => i.token === INVOKE.zones);
    expect(zones).toHaveLength(1);
    expect(zones[0].inputs).toEqual({
      state: "available",
      filters: [{ name: "zone-type", values: ["availability-zone"] }],
    });
    const igw = one(T.igw);
    expect(igw.inputs.vpcId).toBe(vpc.id);
    const routes = one(T.routes);
    expect(routes.inputs.vpcId).toBe(vpc.id);
    expect(routes.inputs.routes).toEqual([
      expect.objectContaining({ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }),
    ]);
    expect(one(T.assoc).inputs).toEqual(
      expect.objectContaining({ subnetId: subnet.id, routeTableId: routes.id }),
    );
  });

  it("lets SSH in only from the configured CIDRs and everything out", () => {
    const sg = one(T.sg);
    expect(sg.inputs.vpcId).toBe(one(T.vpc).id);
    expectSshOnlyFrom(sg, [CIDR]);
    expectOpenEgress(sg);
  });

  it("launches the instance with IMDSv2, an encrypted root and replace-on-user-data", () => {
    const instance = one(T.instance);
    expectHostHardened(instance);
    // Wired to what the lab made and looked up: the x86_64 image, its subnet, group and key.
    expect(instance.inputs).toMatchObject({
      instanceType: "t3.small",
      ami: MOCK_LOOKUPS.amis.x86_64,
      subnetId: one(T.subnet).id,
      vpcSecurityGroupIds: [one(T.sg).id],
      keyName: `${"default-seat-01-access-key-pair"}-0a1b2c3`,
      associatePublicIpAddress: true,
      rootBlockDevice: { volumeSize: 16 },
    });
  });

  it("gives EC2 the user-data gzip-compressed (userDataBase64), never the plain text", async () => {
    const instance = one(T.instance);
    expect(instance.inputs.userData).toBeUndefined();
    expect(userDataOf(instance)).toBe(await valueOf(built.lab.host.userData));
  });

  it("looks up Canonical's Ubuntu 24.04 amd64 image for an x86_64 type", () => {
    const types = built.invokes.filter((i) => i.token === INVOKE.instanceType);
    expect(types.map((i) => i.inputs.instanceType)).toEqual(["t3.small"]);
    const amis = built.invokes.filter((i) => i.token === INVOKE.ami);
    expect(amis).toHaveLength(1);
    expect(amis[0].inputs).toMatchObject(ubuntuAmiLookup());
  });

  it("registers an ED25519 user key and hands a generated ED25519 host key to cloud-init", () => {
    const keys = mocks.ofType(T.tlsKey, "default-");
    expect(keys.map((k) => [k.name, k.inputs.algorithm]).sort()).toEqual([
      ["default-seat-01-access-host-key-a", "ED25519"],
      ["default-seat-01-access-user-key", "ED25519"],
    ]);
    expect(one(T.keyPair).inputs.publicKey).toMatch(/^ssh-ed25519 /);
    const userData = userDataOf(one(T.instance));
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    expect(userData).toContain("ed25519_private");
    expect(userData).toContain("BEGIN OPENSSH PRIVATE KEY");
  });

  it("tags everything taggable with Name, Project and Stack", () => {
    const taggable = [T.vpc, T.subnet, T.igw, T.routes, T.sg, T.keyPair, T.instance, T.eip];
    // A class of one keeps the Name tags its parts had before seats: their names of old.
    const nameOfOld: Record<string, string> = {
      [T.keyPair]: "default-access-key-pair",
      [T.instance]: "default-host-instance",
      [T.eip]: "default-address",
    };
    for (const type of taggable) {
      const resource = one(type);
      expect(resource.inputs.tags, type).toEqual({
        Name: nameOfOld[type] ?? resource.name,
        Project: "criu-lab",
        Stack: "dev",
      });
    }
    expect(one(T.instance).inputs.rootBlockDevice.tags).toEqual({
      Name: "default-host-root",
      Project: "criu-lab",
      Stack: "dev",
    });
  });

  it("runs cloud-init wait, check, demo and the doctor over SSH with the host key pinned", async () => {
    const hostPublicKey = (await valueOf(built.lab.access.hostPublicKey)).trim();
    const userPrivateKey = await valueOf(built.lab.privateKey);
    const commands = mocks.ofType(T.command, "default-seat-01-a-verify-");
    expect(commands.map((c) => c.name)).toEqual(
      verifySteps("default", ["cloud-init", "check", "demo", "doctor"]),
    );
    const checks = [CHECKS.cloudInit, CHECKS.check, CHECKS.demo, CHECKS.doctor];
    commands.forEach((command, i) => {
      expect(command.inputs.connection).toMatchObject({
        // The Elastic IP, not the instance's launch address (which a stop loses).
        host: MOCK_ELASTIC_IP,
        user: "ubuntu",
        hostKey: hostPublicKey,
        privateKey: userPrivateKey,
      });
      expect(command.inputs.connection.dialErrorLimit).toBeGreaterThanOrEqual(30);
      expect(command.inputs.connection.perDialTimeout).toBeGreaterThanOrEqual(15);
      // The one definition of each check, under a timeout of its own length (the script is
      // the Command's stdin: components/verification.ts remoteStep).
      expect(command.inputs.stdin).toContain(
        checks[i].command.split("\n")[0].replace(/'/g, `'\\''`),
      );
      expect(command.inputs.stdin).toContain(
        `timeout --kill-after=10 ${checks[i].timeoutSeconds} `,
      );
      expect(command.inputs.logging).toBe("stdout");
      expect(command.inputs.addPreviousOutputInEnv).toBe(false);
    });
    // The host key in connection.hostKey is the one cloud-init installs.
    expect(userDataOf(one(T.instance))).toContain(hostPublicKey);
  });

  it("orders the commands: instance, then cloud-init, then check, then demo and doctor", () => {
    const constructed = (suffix: string) => {
      const found = built.log.constructed.find((c) => c.name === labChild("default", suffix));
      if (!found) throw new Error(`not constructed: default-${suffix}`);
      return found;
    };
    const dependsOn = (suffix: string) => constructed(suffix).opts.dependsOn;
    // The address answers for this instance only once it is associated.
    expect(dependsOn("verify-cloud-init")).toEqual([
      constructed("host-instance").resource,
      constructed("host-running").resource,
      constructed("address-assoc").resource,
      constructed("files-ready").resource,
    ]);
    expect(dependsOn("verify-check")).toEqual([constructed("verify-cloud-init").resource]);
    expect(dependsOn("verify-demo")).toEqual([constructed("verify-check").resource]);
    expect(dependsOn("verify-doctor")).toEqual([constructed("verify-check").resource]);
  });

  it("re-runs the checks when the user-data changes: triggers are its hash and the instance", () => {
    const instance = one(T.instance);
    const hash = createHash("sha256").update(userDataOf(instance)).digest("hex");
    for (const command of mocks.ofType(T.command, "default-seat-01-a-verify-")) {
      expect(command.inputs.triggers).toEqual([hash, instance.id]);
    }
  });

  it("exposes the parsed demo and the CRIU version the host reports", async () => {
    expect(await valueOf(built.lab.verificationResult)).toEqual(JSON.parse(PASSING_DEMO));
    expect(await valueOf(built.lab.criuVersion)).toBe("4.2");
  });

  it("exposes the doctor's result as plain data: exercises, kernel, CRIU, reasons", async () => {
    const doctor = await valueOf(built.lab.doctor);
    // From the real `criu-lab doctor --json` of the test host (no dirty-page tracking).
    expect(doctor).toMatchObject({
      ok: true,
      criuVersion: "4.2.1",
      kernel: "6.18.44-fc-v782",
      networkLock: "nftables",
      features: { mem_dirty_track: false, uffd: true },
      exercises: {
        "training-full": { ok: true, reason: "" },
        game: { ok: true, reason: "" },
        "training-incremental": { ok: false, reason: expect.stringContaining("dirty-page") },
      },
    });
    expect(doctor?.exercises["training-incremental"]?.fix).toContain("soft-dirty");
    expect(await pulumi.isSecret(built.lab.doctor)).toBe(false);
    // Plain JSON: it survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(doctor))).toEqual(doctor);
  });

  it("runs no scenario unless the stack opts in", () => {
    expect(mocks.ofType(T.command, "default-seat-01-a-verify-scenario")).toEqual([]);
    expect(built.lab.verification?.scenarioCommands).toEqual([]);
  });

  it("keeps keys and user-data secret", async () => {
    expect(await pulumi.isSecret(built.lab.privateKey)).toBe(true);
    expect(await pulumi.isSecret(built.lab.access.hostPrivateKey)).toBe(true);
    expect(await pulumi.isSecret(built.lab.host.userData)).toBe(true);
    expect(await pulumi.isSecret(built.lab.host.userDataHash)).toBe(true);
    // What the engine receives (and stores in state) is marked secret.
    expect(isSecretValue(one(T.instance).rawInputs.userDataBase64)).toBe(true);
    for (const command of mocks.ofType(T.command, "default-")) {
      const connection = command.rawInputs.connection;
      const secretKey = isSecretValue(connection) || isSecretValue(connection.privateKey);
      expect(secretKey, command.name).toBe(true);
    }
    // The public parts are not secrets: users need them in plain outputs.
    expect(await pulumi.isSecret(built.lab.knownHostsLine)).toBe(false);
    expect(await pulumi.isSecret(built.lab.sshCommand)).toBe(false);
  });

  it("prints a working ssh command and a known_hosts line", async () => {
    expect(await valueOf(built.lab.sshCommand)).toBe(
      `ssh -i criu-lab.pem ubuntu@${MOCK_ELASTIC_IP}`,
    );
    const hostPublicKey = (await valueOf(built.lab.access.hostPublicKey)).trim();
    expect(await valueOf(built.lab.knownHostsLine)).toBe(`${MOCK_ELASTIC_IP} ${hostPublicKey}`);
  });
});

/** The construction options (resource options) of a lab's child, by name suffix. */
function optionsOf(b: Built, prefix: string, suffix: string): pulumi.CustomResourceOptions {
  const found = b.log.constructed.find((c) => c.name === labChild(prefix, suffix));
  if (!found) throw new Error(`not constructed: ${prefix}-${suffix}`);
  return found.opts as pulumi.CustomResourceOptions;
}

/** The constructed resource of a lab's child, by name suffix. */
function resourceOf(b: Built, prefix: string, suffix: string): pulumi.Resource {
  const found = b.log.constructed.find((c) => c.name === labChild(prefix, suffix));
  if (!found) throw new Error(`not constructed: ${prefix}-${suffix}`);
  return found.resource;
}

describe("a lab's later life", () => {
  let built: Built;
  const one = (type: string) => mocks.one(type, "life-");

  beforeAll(async () => {
    built = await build("life");
  });

  it("keeps its image when a newer one is published: the image id is kept in a Stash", async () => {
    const stash = mocks.one(T.stash, "life-seat-01-a-host-");
    expect(stash.name).toBe("life-seat-01-a-host-image");
    // The stash's input is the lookup (the newest image); the instance runs its output, the
    // image stored when the stash was created, which a newer lookup does not change.
    expect(stash.inputs.input).toBe("ami-0b8b8b8b8b8b8b8b8");
    expect(one(T.instance).inputs.ami).toBe("ami-0b8b8b8b8b8b8b8b8");
    expect(await valueOf(built.lab.amiId)).toBe("ami-0b8b8b8b8b8b8b8b8");
    const instance = built.log.constructed.find((c) => c.name === "life-seat-01-a-host-instance");
    expect(instance?.props.ami).toBe(built.lab.host.amiId);
    expect(await valueOf(built.lab.host.imageStash!.output)).toBe("ami-0b8b8b8b8b8b8b8b8");
    // Not ignoreChanges: the engine would put the old image into a replacement as well.
    expect(optionsOf(built, "life", "host-instance").ignoreChanges).toBeUndefined();
  });

  it("takes a new image on purpose when the release or the architecture changes", async () => {
    const trigger = async (b: Built, prefix: string) =>
      valueOf(optionsOf(b, prefix, "host-image").replacementTrigger as pulumi.Output<string>);
    expect(await trigger(built, "life")).toBe("ubuntu 24.04 x86_64");
    const jammy = await build("later-jammy", { ubuntuRelease: "22.04", verify: false });
    expect(await trigger(jammy, "later-jammy")).toBe("ubuntu 22.04 x86_64");
    const arm = await build("later-arm", { instanceType: "t4g.small", verify: false });
    expect(await trigger(arm, "later-arm")).toBe("ubuntu 24.04 arm64");
    expect(mocks.one(T.stash, "later-arm-seat-01-a-host-").inputs.input).toBe(
      "ami-0a4a4a4a4a4a4a4a4",
    );
    // Another type of the same architecture is an in-place change (stop, resize, start).
    const bigger = await build("later-bigger", { instanceType: "t3.large", verify: false });
    expect(await trigger(bigger, "later-bigger")).toBe("ubuntu 24.04 x86_64");
  });

  it("with amiId runs that image, with no stash: a new amiId replaces the instance", async () => {
    const pinned = await build("later-pinned", { amiId: "ami-0123456789abcdef0", verify: false });
    expect(mocks.ofType(T.stash, "later-pinned-seat-01-a-host-")).toEqual([]);
    expect(pinned.lab.host.imageStash).toBeUndefined();
    expect(mocks.one(T.instance, "later-pinned-").inputs.ami).toBe("ami-0123456789abcdef0");
    expect(await valueOf(pinned.lab.amiId)).toBe("ami-0123456789abcdef0");
  });

  it("keeps its address across stop/start: an Elastic IP associated with the instance", async () => {
    const eip = one(T.eip);
    expect(eip.inputs).toMatchObject({ domain: "vpc" });
    expect(one(T.eipAssoc).inputs).toEqual(
      expect.objectContaining({ allocationId: eip.id, instanceId: one(T.instance).id }),
    );
    expect(await valueOf(built.lab.publicIp)).toBe(MOCK_ELASTIC_IP);
    expect(await valueOf(built.lab.publicDns)).toBe(
      "ec2-203-0-113-20.ap-southeast-1.compute.amazonaws.com",
    );
    // A replaced instance takes the address over: the old association goes first.
    expect(optionsOf(built, "life", "address-assoc").deleteBeforeReplace).toBe(true);
    // The address needs the gateway, and is released before it on destroy.
    expect(optionsOf(built, "life", "address").dependsOn).toEqual([
      resourceOf(built, "life", "network-igw"),
    ]);
  });

  it("asks for its instance running, replaced (so started) when a live lookup finds it stopped", async () => {
    const instance = one(T.instance);
    const running = one(T.running);
    expect(running.name).toBe("life-seat-01-a-host-running");
    expect(running.inputs).toEqual({ instanceId: instance.id, state: "running" });
    // The lookup names this instance, in the states the auto-stop leaves it in.
    const lookup = built.invokes.filter((i) => i.token === INVOKE.instances);
    expect(lookup).toHaveLength(1);
    expect(lookup[0].inputs).toEqual({
      filters: [{ name: "instance-id", values: [instance.id] }],
      instanceStateNames: ["stopping", "stopped"],
    });
    const trigger = (b: Built, prefix: string) =>
      valueOf(optionsOf(b, prefix, "host-running").replacementTrigger as pulumi.Output<string>);
    // Running (the lookup lists nothing): the trigger stays, nothing is replaced.
    expect(await trigger(built, "life")).toBe("running");
    // Powered off by the auto-stop: EC2 lists it, the trigger changes, the engine replaces the
    // InstanceState, and its create starts the instance.
    const answer = mocks.answers[INVOKE.instances];
    mocks.answers[INVOKE.instances] = (inputs) => ({
      ...answer(inputs),
      ids: (inputs.filters as Array<{ values: string[] }>)[0].values,
    });
    try {
      const stopped = await build("stopped", { verify: false });
      expect(await trigger(stopped, "stopped")).toBe("stopped");
    } finally {
      mocks.answers[INVOKE.instances] = answer;
    }
    // Every remote Command and copy on the host waits for it, the first ones directly (the
    // rest wait for those: tests/unit/plan.test.ts follows the whole graph).
    const dependsOn = (suffix: string) => optionsOf(built, "life", suffix).dependsOn;
    for (const suffix of ["files-copy", "verify-cloud-init"]) {
      expect(dependsOn(suffix), suffix).toContain(resourceOf(built, "life", "host-running"));
    }
  });

  it("re-verifies only when the instance or its user-data changes, not the address", () => {
    const instance = one(T.instance);
    for (const command of mocks.ofType(T.command, "life-")) {
      expect(command.inputs.triggers).toHaveLength(2);
      expect(command.inputs.triggers[1]).toBe(instance.id);
      expect(JSON.stringify(command.inputs.triggers)).not.toContain(MOCK_ELASTIC_IP);
      expect(command.inputs.connection.host).toBe(MOCK_ELASTIC_IP);
    }
  });

  it("keeps its zone when instanceType changes to a type that zone offers too", async () => {
    // A stack whose subnet is in 1b (the first zone offering its type when it was made). The
    // new type is offered in every zone: the subnet, and so every host, stays in 1b, though
    // 1a now sorts first among the zones offering it.
    mocks.stashed["zone-kept-zone"] = "ap-southeast-1b";
    const kept = await build("zone-kept", { instanceType: "t3.large", verify: false });
    expect(mocks.one(T.subnet, "zone-kept-").inputs.availabilityZone).toBe("ap-southeast-1b");
    expect(await valueOf(kept.lab.zone!.zone)).toBe("ap-southeast-1b");
    // The Stash's input is today's pick; its output, what the subnet gets, is the kept zone.
    const stash = mocks.one(T.stash, "zone-kept-zone");
    expect(stash.inputs.input).toBe("ap-southeast-1a");
    expect(optionsOf(kept, "zone-kept", "zone").replacementTrigger).toBeUndefined();
  });

  it("moves to the first zone offering the type when its zone lacks it, and says how to keep that", async () => {
    mocks.stashed["zone-moved-zone"] = "ap-southeast-1b";
    const offerings = mocks.answers[INVOKE.offerings];
    mocks.answers[INVOKE.offerings] = () => ({
      locations: ["ap-southeast-1c", "ap-southeast-1a"],
    });
    const warn = vi.spyOn(pulumi.log, "warn");
    try {
      const moved = await build("zone-moved", { instanceType: "c7i.large", verify: false });
      expect(mocks.one(T.subnet, "zone-moved-").inputs.availabilityZone).toBe("ap-southeast-1a");
      expect(await valueOf(moved.lab.zone!.zone)).toBe("ap-southeast-1a");
      const messages = warn.mock.calls.map(([message]) => message);
      expect(messages).toContainEqual(
        expect.stringMatching(
          /"c7i\.large" is not offered in the lab's zone ap-southeast-1b: the subnet moves to ap-southeast-1a[\s\S]*pulumi up --replace 'urn:pulumi:dev::criu-lab::criu-lab:lab:CriuLab\$pulumi:index:Stash::zone-moved-zone'/,
        ),
      );
    } finally {
      warn.mockRestore();
      mocks.answers[INVOKE.offerings] = offerings;
    }
  });

  it("a new stack keeps the first zone offering the type, as before", async () => {
    const fresh = await build("zone-new", { verify: false });
    expect(mocks.one(T.stash, "zone-new-zone").inputs.input).toBe("ap-southeast-1a");
    expect(await valueOf(fresh.lab.zone!.stash.output)).toBe("ap-southeast-1a");
    expect(mocks.one(T.subnet, "zone-new-").inputs.availabilityZone).toBe("ap-southeast-1a");
  });

  it("replaces the subnet delete-before-create when the zone changes", () => {
    expect(optionsOf(built, "life", "network-subnet").deleteBeforeReplace).toBe(true);
    expect(optionsOf(built, "life", "network-routes-assoc").deleteBeforeReplace).toBe(true);
  });

  it("boots into a routed subnet and is destroyed before the route goes", () => {
    const routed = resourceOf(built, "life", "network-routes-assoc");
    expect(optionsOf(built, "life", "host-instance").dependsOn).toEqual([routed]);
    expect(optionsOf(built, "life", "address-assoc").dependsOn).toEqual([routed]);
  });

  it("with an existing subnet, waits for nothing of its own network", async () => {
    const b = await build("later-existing", {
      subnetId: "subnet-0123456789abcdef0",
      verify: false,
    });
    expect(optionsOf(b, "later-existing", "host-instance").dependsOn).toEqual([]);
    expect(optionsOf(b, "later-existing", "address").dependsOn).toEqual([]);
    expect(mocks.one(T.eipAssoc, "later-existing-").inputs.instanceId).toBe(
      mocks.one(T.instance, "later-existing-").id,
    );
  });
});

describe("image lookup per release and architecture", () => {
  const amiInvoke = (b: Built) => {
    const amis = b.invokes.filter((i) => i.token === INVOKE.ami);
    expect(amis).toHaveLength(1);
    return amis[0].inputs;
  };

  it.each([
    ["22.04 on x86_64: jammy hvm-ssd", "22.04", "t3.small", "hvm-ssd/ubuntu-jammy-22.04-amd64"],
    [
      "a Graviton type: the arm64 image",
      "24.04",
      "t4g.small",
      "hvm-ssd-gp3/ubuntu-noble-24.04-arm64",
    ],
  ] as const)("%s", async (_, ubuntuRelease, instanceType, image) => {
    const name = `image-${instanceType.replace(".", "-")}-${ubuntuRelease.replace(".", "")}`;
    const b = await build(name, { ubuntuRelease, instanceType });
    const architecture = instanceType.startsWith("t4g") ? "arm64" : "x86_64";
    expect(amiInvoke(b)).toMatchObject(ubuntuAmiLookup(image, architecture));
    // The instance runs the image looked up for its architecture.
    expect(mocks.one(T.instance, `${name}-`).inputs).toMatchObject({
      instanceType,
      ami: MOCK_LOOKUPS.amis[architecture],
    });
  });

  it("amiId overrides the lookup", async () => {
    const b = await build("pinned", { amiId: "ami-0123456789abcdef0" });
    expect(
      b.invokes.filter((i) => i.token === INVOKE.ami || i.token === INVOKE.instanceType),
    ).toEqual([]);
    expect(mocks.one(T.instance, "pinned-").inputs.ami).toBe("ami-0123456789abcdef0");
  });
});

describe("options", () => {
  it("subnetId uses the existing subnet and creates no network", async () => {
    const b = await build("existing", { subnetId: "subnet-0123456789abcdef0" });
    for (const type of [T.vpc, T.subnet, T.igw, T.routes, T.assoc]) {
      expect(mocks.ofType(type, "existing-"), type).toEqual([]);
    }
    expect(b.invokes.filter((i) => i.token === INVOKE.offerings)).toEqual([]);
    const lookups = b.invokes.filter((i) => i.token === INVOKE.subnet);
    expect(lookups.map((i) => i.inputs.id)).toEqual(["subnet-0123456789abcdef0"]);
    expect(mocks.one(T.sg, "existing-").inputs.vpcId).toBe(MOCK_VPC);
    expect(mocks.one(T.instance, "existing-").inputs.subnetId).toBe("subnet-0123456789abcdef0");
  });

  it("verify: false creates no remote Commands and no verification result", async () => {
    const b = await build("noverify", { verify: false });
    expect(mocks.ofType(T.command, "noverify-seat-01-a-verify-")).toEqual([]);
    expect(b.lab.verification).toBeUndefined();
    expect(await valueOf(b.lab.verificationResult)).toBeNull();
    expect(await valueOf(b.lab.doctor)).toBeNull();
    expect(await valueOf(b.lab.criuVersion)).toBe("v4.2");
    expect(mocks.ofType(T.instance, "noverify-")).toHaveLength(1);
  });

  it("verifyScenarios adds one step per scenario, after the demo and the doctor, one at a time", async () => {
    const b = await build("scenarios", { verifyScenarios: ["training", "game"] });
    const commands = mocks.ofType(T.command, "scenarios-seat-01-a-verify-");
    expect(commands.map((c) => c.name)).toEqual(
      verifySteps("scenarios", [
        "cloud-init",
        "check",
        "demo",
        "doctor",
        "scenario-training",
        "scenario-game",
      ]),
    );
    const { SCENARIO_CHECKS } = await import("../../contract/checks");
    const byName = (n: string) =>
      commands.find((c) => c.name === `scenarios-seat-01-a-verify-${n}`);
    for (const name of ["training", "game"] as const) {
      const stdin = String(byName(`scenario-${name}`)?.inputs.stdin);
      expect(stdin).toContain(SCENARIO_CHECKS[name].command);
      expect(stdin).toContain(`timeout --kill-after=10 ${SCENARIO_CHECKS[name].timeoutSeconds} `);
      // Judged on the host against the scenario's contract.
      expect(stdin).toContain(`criu-lab judge ${name} "$rc" "$out" "$err"`);
      expect(byName(`scenario-${name}`)?.inputs.create).toContain(`criu-lab: scenario ${name}`);
    }
    const constructed = (suffix: string) =>
      b.log.constructed.find((c) => c.name === `scenarios-seat-01-a-verify-${suffix}`)?.resource;
    const dependsOn = (suffix: string) =>
      b.log.constructed.find((c) => c.name === `scenarios-seat-01-a-verify-${suffix}`)?.opts
        .dependsOn;
    expect(dependsOn("scenario-training")).toEqual([constructed("demo"), constructed("doctor")]);
    expect(dependsOn("scenario-game")).toEqual([constructed("scenario-training")]);
    // The same triggers as the other steps: re-run only on new user-data or a new instance.
    const triggers = byName("demo")?.inputs.triggers;
    for (const c of commands) expect(c.inputs.triggers).toEqual(triggers);
    expect(b.lab.verification?.scenarioCommands).toHaveLength(2);
  });

  it("sshPublicKey is authorized for the lab user through user-data", async () => {
    const key =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExtraExtraExtraExtraExtraExtraExtraExtra me@laptop";
    await build("extrakey", { sshPublicKey: key, verify: false });
    expect(userDataOf(mocks.one(T.instance, "extrakey-"))).toContain(key);
  });

  it("a tarball source and autoStopMinutes reach the user-data", async () => {
    const sha256 = "29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9";
    const b = await build("tarball", {
      verify: false,
      autoStopMinutes: 45,
      criu: { kind: "tarball", url: "https://example.org/criu_4.2.1.orig.tar.xz", sha256 },
    });
    const userData = userDataOf(mocks.one(T.instance, "tarball-"));
    expect(userData).toContain("https://example.org/criu_4.2.1.orig.tar.xz");
    expect(userData).toContain(sha256);
    expect(userData).toMatch(/auto-stop-minutes\W+45\b/);
    expect(await valueOf(b.lab.criuVersion)).toBe("criu_4.2.1.orig.tar.xz");
  });

  it("rootVolumeGiB sizes the root volume", async () => {
    await build("bigdisk", { rootVolumeGiB: 40, verify: false });
    expect(mocks.one(T.instance, "bigdisk-").inputs.rootBlockDevice.volumeSize).toBe(40);
  });
});

describe("a failing lab fails the deploy with what failed", () => {
  it("a failed demo", async () => {
    mocks.commandStdout.demo = JSON.stringify({
      ok: false,
      error: "criu restore failed: File exists (pid 4242 is taken)",
      imagesDir: "/var/lib/criu-lab/demo/img",
    });
    const b = await build("faildemo", {}, (lab) => lab.verificationResult);
    expect((await b.failure)?.message).toMatch(
      /checkpoint\/restore demo .*did not pass: criu restore failed: File exists.*\/var\/lib\/criu-lab\/demo\/img/,
    );
  });

  it("a demo that claims ok but did not continue the counter", async () => {
    mocks.commandStdout.demo = JSON.stringify({
      ...JSON.parse(PASSING_DEMO),
      firstAfterRestore: 1,
    });
    const b = await build("faildemo2", {}, (lab) => lab.verificationResult);
    expect((await b.failure)?.message).toMatch(/counter did not continue/);
  });

  it("a failed criu check", async () => {
    mocks.commandStdout.check = JSON.stringify({
      ok: false,
      criuVersion: "4.2",
      kernel: "6.8.0",
      error: "Unexpected rt vDSO area bounds",
    });
    const b = await build("failcheck", {}, (lab) => lab.criuVersion);
    expect((await b.failure)?.message).toMatch(
      /criu check on the lab host did not pass.*Unexpected rt vDSO area bounds/,
    );
  });

  it("output that is not the contract's JSON", async () => {
    mocks.commandStdout.demo = "bash: criu-lab: command not found";
    const b = await build("garbage", {}, (lab) => lab.verificationResult);
    expect((await b.failure)?.message).toMatch(
      /verification failed: criu-lab demo: no JSON object.*command not found/,
    );
  });
});
