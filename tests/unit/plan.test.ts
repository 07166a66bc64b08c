/**
 * The offline plan on the real program: index.ts runs under @pulumi/pulumi's own
 * runner (ts-node with the project's tsconfig, config from PULUMI_CONFIG) against the local
 * engine. The resource graph is checked for the properties tests/unit/lab.test.ts checks under
 * mocks, then a config error and the secrets. Each scenario runs the program once.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { REMOTE_CHECKS } from "../../contract/checks";
import { PLACEHOLDER_AMI, PLACEHOLDER_PUBLIC_IP } from "../../plan/placeholders";
import { buildReport, PlanReport, renderTree, ReportResource } from "../../plan/printer";
import { loadProject } from "../../plan/project";
import { runPlan } from "../../plan/runner";
import { SECRET, UNKNOWN } from "../../plan/values";
import { PLAN_TIMEOUT_MS, ROOT, dependencyClosure, runCli } from "./fixtures/plan-cli";
import {
  expectHostHardened,
  expectOpenEgress,
  expectSshOnlyFrom,
  ubuntuAmiLookup,
} from "./support/properties";
import { T } from "./support/types";

describe("plan of the real program with the dev stack's config", () => {
  let report: PlanReport;
  let tree: string;
  let json: string;

  beforeAll(async () => {
    const result = await runPlan({ project: loadProject({ dir: ROOT, stack: "dev" }) });
    report = buildReport(result);
    tree = renderTree(report);
    json = JSON.stringify(report);
    if (!report.ok) console.error(tree, result.stdout, result.stderr);
  }, PLAN_TIMEOUT_MS);

  const ofType = (type: string) => report.resources.filter((r) => r.type === type);
  const one = (type: string): ReportResource => {
    const found = ofType(type);
    expect(found, type).toHaveLength(1);
    return found[0];
  };
  const byUrn = (urn: string | undefined) => report.resources.find((r) => r.urn === urn);

  it("runs the program to the end with every call answered", () => {
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.config["aws:region"]).toEqual({ value: "ap-southeast-1", source: "stack" });
    expect(report.config["criu-lab:instanceType"]).toEqual({
      value: "t3.small",
      source: "default",
    });
  });

  it("says which Pulumi CLI `pulumi up` needs: the program's requirePulumiVersion range", () => {
    expect(report.pulumiCli).toBe(">=3.226.0");
    expect(tree).toContain("Pulumi CLI: >=3.226.0 (what `pulumi up` needs; not checked offline)");
  });

  it("shows the quota check: what it read (placeholders) and what the stack needs", () => {
    const infos = report.diagnostics.filter((d) => d.severity === "info").map((d) => d.message);
    expect(infos).toContainEqual(
      expect.stringContaining(
        "criu-lab quota check: Elastic IPs in ap-southeast-1: quota 5 (L-0263D0A3), 0 " +
          "allocated (0 of them this stack's); this stack needs 1 (one a host), 1 new",
      ),
    );
    expect(infos).toContainEqual(
      expect.stringContaining("quota 32 (L-1216C47A); this stack needs 2 (1 x t3.small, 2 each)"),
    );
    expect(tree).toMatch(/^ {4}info: criu-lab quota check: Elastic IPs in ap-southeast-1/m);
    const quota = report.lookups.find((l) => l.token.endsWith("getServiceQuota"));
    expect(quota?.note).toMatch(/your account's quota is read at deploy$/);
  });

  it("nests the resources under the components, with the engine's URNs", () => {
    const instance = one(T.instance);
    const labInstance = byUrn(instance.parent);
    expect(labInstance?.type).toBe(T.labInstance);
    // One seat of one host is a class of one: the host is seat 01's.
    const seat = byUrn(labInstance?.parent);
    expect(seat?.type).toBe(T.seat);
    expect(byUrn(seat?.parent)?.type).toBe(T.lab);
    expect(byUrn(byUrn(seat?.parent)?.parent)?.type).toBe(T.stack);
    expect(instance.urn).toBe(
      `urn:pulumi:dev::criu-lab::${T.lab}$${T.seat}$${T.labInstance}$${T.instance}::${instance.name}`,
    );
    for (const r of report.resources) {
      if (r.type !== T.stack) expect(byUrn(r.parent), r.urn).toBeDefined();
    }
  });

  it("creates the original lab's network in a looked-up zone", () => {
    expect(one(T.vpc).inputs).toMatchObject({
      cidrBlock: "10.0.0.0/16",
      enableDnsHostnames: true,
      enableDnsSupport: true,
    });
    const subnet = one(T.subnet);
    expect(subnet.inputs).toMatchObject({
      cidrBlock: "10.0.1.0/24",
      mapPublicIpOnLaunch: true,
      availabilityZone: "ap-southeast-1a",
      vpcId: UNKNOWN,
    });
    expect(subnet.lookedUpAtDeploy).toEqual(["availabilityZone"]);
    // The zone is kept in a Stash (no trigger: kept while it offers the type), the lab's child.
    const zone = ofType(T.stash).find((r) => r.name === "criu-lab-zone")!;
    expect(zone.parent).toBe(one(T.lab).urn);
    expect(zone.inputs.input).toBe("ap-southeast-1a");
    expect(zone.options).toEqual({});
    expect(subnet.dependsOn).toContain(zone.urn);
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain(`(a \`pulumi:index:Stash\` named \`${zone.name}\`)`);
    expect(readme).toContain(`\`pulumi up --replace '${zone.urn}'\``);
    // A new zone replaces the subnet (same CIDR) delete-before-create; its route association too.
    expect(subnet.options).toEqual({ deleteBeforeReplace: true });
    expect(one(T.assoc).options).toEqual({ deleteBeforeReplace: true });
    expect(subnet.dependsOn).toContain(one(T.vpc).urn);
    expect(one(T.routes).inputs.routes).toEqual([{ cidrBlock: "0.0.0.0/0", gatewayId: UNKNOWN }]);
    expect(one(T.assoc).dependsOn.sort()).toEqual([one(T.routes).urn, subnet.urn].sort());
    one(T.igw);
  });

  it("lets SSH in only from the deployer's address (a placeholder) and everything out", () => {
    const sg = one(T.sg);
    expectSshOnlyFrom(sg, [`${PLACEHOLDER_PUBLIC_IP}/32`]);
    expect(sg.lookedUpAtDeploy).toEqual(["ingress[0].cidrBlocks[0]"]);
    expectOpenEgress(sg);
  });

  it("launches the instance with IMDSv2, an encrypted root and the looked-up AMI", () => {
    const instance = one(T.instance);
    expectHostHardened(instance);
    expect(instance.inputs).toMatchObject({
      instanceType: "t3.small",
      ami: PLACEHOLDER_AMI,
      // The Name tag of a lab from before seats, which a class of one keeps.
      tags: { Name: "criu-lab-host-instance", Project: "criu-lab", Stack: "dev" },
    });
    expect(instance.lookedUpAtDeploy).toEqual(["ami"]);
    expect(instance.dependsOn).toEqual(
      expect.arrayContaining([one(T.sg).urn, one(T.subnet).urn, one(T.keyPair).urn]),
    );
  });

  it("keeps the image until the release or architecture changes", () => {
    // The looked-up image id is kept in a Stash, replaced only when the trigger changes; the
    // instance runs the stashed id.
    const stash = ofType(T.stash).find((r) => r.name === "criu-lab-seat-01-a-host-image")!;
    expect(stash.parent).toBe(one(T.labInstance).urn);
    expect(stash.inputs.input).toBe(PLACEHOLDER_AMI);
    expect(stash.options).toEqual({ replacementTrigger: "ubuntu 24.04 x86_64" });
    expect(one(T.instance).dependsOn).toContain(stash.urn);
    expect(one(T.instance).options).toEqual({});
    expect(report.outputs.amiId).toBe(PLACEHOLDER_AMI);
    // The README's command for taking a newer image names this stash's URN.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain(`pulumi up --replace '${stash.urn}'`);
    // ... and says what every preview shows once Canonical publishes a newer image.
    expect(readme).toContain(
      "each `pulumi preview` shows every host's image\n" +
        `stash as \`~ update\` (\`${stash.name}\``,
    );
  });

  it("boots into a routed subnet, and is destroyed before the route", () => {
    expect(one(T.instance).dependsOn).toContain(one(T.assoc).urn);
    expect(one(T.eipAssoc).dependsOn).toContain(one(T.assoc).urn);
  });

  it("gives the lab an Elastic IP that every connection and output uses", () => {
    const eip = one(T.eip);
    expect(eip.inputs).toMatchObject({
      domain: "vpc",
      tags: { Name: "criu-lab-address", Project: "criu-lab", Stack: "dev" },
    });
    expect(eip.dependsOn).toEqual([one(T.igw).urn]);
    const assoc = one(T.eipAssoc);
    expect(assoc.options).toMatchObject({ deleteBeforeReplace: true });
    expect(assoc.dependsOn).toEqual(expect.arrayContaining([eip.urn, one(T.instance).urn]));
    for (const command of ofType(T.command)) {
      // The connection (a secret) takes its host from the Elastic IP.
      expect(command.dependsOn, command.name).toContain(eip.urn);
    }
    expect(report.outputs.publicIp).toBe(UNKNOWN);
    expect(report.outputs.publicDns).toBe(UNKNOWN);
  });

  it("shows the aliases that keep a lab from before seats: each a URN such a stack held", () => {
    const fixture = join(ROOT, "tests/unit/fixtures/one-seat-urns.json");
    const held = new Set(
      (JSON.parse(readFileSync(fixture, "utf8")) as Array<{ urn: string }>).map((e) => e.urn),
    );
    const aliased = report.resources.filter((r) => r.options.aliases !== undefined);
    // The seat's parts that were the lab's own, and the host key named without its role.
    expect(aliased.map((r) => r.name).sort()).toEqual([
      "criu-lab-seat-01-a-address",
      "criu-lab-seat-01-a-address-assoc",
      "criu-lab-seat-01-a-files",
      "criu-lab-seat-01-a-host",
      "criu-lab-seat-01-a-verify",
      "criu-lab-seat-01-access",
      "criu-lab-seat-01-access-host-key-a",
    ]);
    const labInstance = one(T.labInstance);
    expect(labInstance.options.aliases).toEqual([
      `urn:pulumi:dev::criu-lab::${T.lab}$${T.labInstance}::criu-lab-host`,
    ]);
    // The host key's own alias is its old name under today's parent: the URN the stack held
    // comes with its parent's alias, as the engine derives it (one-seat-urns.test.ts).
    for (const r of aliased.filter((r) => r.name !== "criu-lab-seat-01-access-host-key-a")) {
      for (const urn of r.options.aliases!) expect(held.has(urn), `${r.name}: ${urn}`).toBe(true);
    }
    expect(tree).toContain(
      `# aliases: ["urn:pulumi:dev::criu-lab::${T.lab}$${T.labInstance}::criu-lab-host"]`,
    );
  });

  it("starts a host the auto-stop powered off before any command dials it", () => {
    // Per host the provider's InstanceState, asking for "running"; its replacementTrigger
    // comes from a live lookup of the instance, unknown until the instance exists (the plan
    // does not make that lookup: its instance id is not known offline).
    const running = one(T.running);
    expect(running.name).toBe("criu-lab-seat-01-a-host-running");
    expect(running.parent).toBe(one(T.labInstance).urn);
    expect(running.inputs).toEqual({ instanceId: UNKNOWN, state: "running" });
    expect(running.dependsOn).toEqual([one(T.instance).urn]);
    expect(running.options).toEqual({ replacementTrigger: UNKNOWN });
    expect(report.lookups.map((l) => l.token)).not.toContain("aws:ec2/getInstances:getInstances");
    // Every remote Command and copy on the host waits for it: directly the first ones...
    const copy = one(T.copy);
    const cloudInit = ofType(T.command).find(
      (c) => c.name === "criu-lab-seat-01-a-verify-cloud-init",
    )!;
    expect(copy.dependsOn).toContain(running.urn);
    expect(cloudInit.dependsOn).toContain(running.urn);
    // ... and every one, through what it waits for.
    const remote = [...ofType(T.command), ...ofType(T.copy)];
    expect(remote.length).toBeGreaterThanOrEqual(6);
    for (const r of remote) {
      expect(dependencyClosure(report, r.urn).has(running.urn), r.name).toBe(true);
    }
  });

  it("looks up Canonical's Ubuntu 24.04 amd64 image, the type's architecture and zones", () => {
    const tokens = report.lookups.map((l) => l.token).sort();
    expect([...new Set(tokens)]).toEqual([
      "aws:ec2/getAmi:getAmi",
      "aws:ec2/getEips:getEips",
      "aws:ec2/getInstanceType:getInstanceType",
      "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings",
      "aws:index/getAvailabilityZones:getAvailabilityZones",
      "aws:index/getRegion:getRegion",
      "aws:servicequotas/getServiceQuota:getServiceQuota",
      "command:local:run",
    ]);
    // Real availability zones only: never a Local Zone.
    const zones = report.lookups.find((l) => l.token.endsWith("getAvailabilityZones"));
    expect(zones?.args).toEqual({
      state: "available",
      filters: [{ name: "zone-type", values: ["availability-zone"] }],
    });
    // The deployer's address is not logged by the command provider.
    const checkip = report.lookups.find((l) => l.token === "command:local:run");
    expect(checkip?.args).toMatchObject({ logging: "none" });
    const ami = report.lookups.find((l) => l.token === "aws:ec2/getAmi:getAmi");
    expect(ami?.args).toMatchObject(ubuntuAmiLookup());
  });

  it("generates ED25519 user and host keys and a key pair", () => {
    expect(ofType(T.tlsKey).map((k) => k.inputs.algorithm)).toEqual(["ED25519", "ED25519"]);
    expect(one(T.keyPair).inputs.publicKey).toBe(UNKNOWN);
  });

  it("verifies with the shared remote checks, in order: cloud-init, check, demo and doctor", () => {
    const commands = ofType(T.command).filter((c) => c.name.includes("-verify-"));
    // The one definition of each check (contract/checks.ts), quoted inside a timeout wrapper
    // (the Command's stdin: components/verification.ts remoteStep),
    // as tests/unit/lab.test.ts checks it under mocks.
    const running = (check: { command: string; timeoutSeconds: number }) => {
      const firstLine = check.command.split("\n")[0].replace(/'/g, `'\\''`);
      const found = commands.filter((c) => String(c.inputs.stdin).includes(firstLine));
      expect(found, check.command).toHaveLength(1);
      expect(found[0].inputs.stdin).toContain(`timeout --kill-after=10 ${check.timeoutSeconds} `);
      return found[0];
    };
    const cloudInit = running(REMOTE_CHECKS.cloudInit);
    const check = running(REMOTE_CHECKS.check);
    const demo = running(REMOTE_CHECKS.demo);
    const doctor = running(REMOTE_CHECKS.doctor);
    // No scenario unless the stack opts in (verifyScenarios).
    expect(commands).toHaveLength(4);
    expect(cloudInit.dependsOn).toContain(one(T.instance).urn);
    // The address answers for the instance once it is associated.
    expect(cloudInit.dependsOn).toContain(one(T.eipAssoc).urn);
    expect(check.dependsOn).toContain(cloudInit.urn);
    expect(demo.dependsOn).toContain(check.urn);
    expect(doctor.dependsOn).toContain(check.urn);
    // The SSH connection carries the private key: a secret, or unknown before deploy.
    for (const c of commands) expect([SECRET, UNKNOWN]).toContain(c.inputs.connection);
  });

  it("exports docs/design.md's outputs, none of them a value that only exists after deploy", () => {
    expect(Object.keys(report.outputs).sort()).toEqual(
      [
        "amiId",
        "criuVersion",
        "instanceId",
        "knownHostsLine",
        "privateKey",
        "publicDns",
        "publicIp",
        "sshCommand",
        "sshUser",
        "verification",
        "seats",
        "doctor",
        "region",
      ].sort(),
    );
    expect(report.outputs.sshUser).toBe("ubuntu");
    // The stack's region: with instanceId, the verifier's `aws ec2 start-instances` command.
    expect(report.outputs.region).toBe("ap-southeast-1");
    expect([SECRET, UNKNOWN]).toContain(report.outputs.privateKey);
    // It holds the seat's key: secret as a whole (or unknown before deploy).
    expect([SECRET, UNKNOWN]).toContain(report.outputs.seats);
  });

  it("never shows key material or the user-data", () => {
    // The user-data embeds the generated host key: unknown before deploy (or a secret).
    const { userData, userDataBase64 } = one(T.instance).inputs;
    expect([SECRET, UNKNOWN]).toContain(userData ?? userDataBase64);
    for (const text of [tree, json]) {
      expect(text).not.toMatch(/PRIVATE KEY|ssh-ed25519 AAAA|#cloud-config|ed25519_private/);
    }
  });

  it("prints the tree with the properties that matter and marks placeholders", () => {
    expect(tree).toContain(`+ ${T.instance}  ${one(T.instance).name}`);
    expect(tree).toContain(`ami: ${PLACEHOLDER_AMI}  # placeholder: looked up at deploy`);
    expect(tree).toMatch(/httpTokens: required/);
    expect(tree).toMatch(/encrypted: true/);
    expect(tree).toContain(`- ${PLACEHOLDER_PUBLIC_IP}/32  # placeholder: looked up at deploy`);
    expect(tree).toContain(REMOTE_CHECKS.demo.command);
    expect(tree).toMatch(/^Lookups \(answered with placeholders, looked up at deploy\):$/m);
  });
});

describe("plan of the real program on Graviton with Ubuntu 22.04", () => {
  it(
    "asks for a new image through the stash's replacement trigger",
    async () => {
      const result = await runPlan({
        project: loadProject({
          dir: ROOT,
          stack: "dev",
          overrides: ["instanceType=t4g.small", "ubuntuRelease=22.04"],
        }),
      });
      const report = buildReport(result);
      expect(report.errors).toEqual([]);
      const stash = report.resources.find((r) => r.name === "criu-lab-seat-01-a-host-image");
      expect(stash?.options).toEqual({ replacementTrigger: "ubuntu 22.04 arm64" });
      expect(renderTree(report)).toContain('# replacementTrigger: "ubuntu 22.04 arm64"');
    },
    PLAN_TIMEOUT_MS,
  );
});

describe("plan of the real program with a bad config value", () => {
  it(
    "fails like `pulumi up`: the program's own error, once and first, names the key and what is allowed",
    async () => {
      const run = await runCli(["-C", ROOT, "-c", "instanceType=t3 small"]);
      expect(run.code).toBe(1);
      expect(run.stderr.split("\n")[0]).toMatch(/^criu-lab-local plan: error: /);
      expect(run.stderr).toMatch(
        /criu-lab:instanceType: "t3 small" is not valid; allowed: an EC2 instance type name/,
      );
      const all = `${run.stderr}\n${run.stdout}`;
      expect(all.split('"t3 small" is not valid')).toHaveLength(2);
      // No stack trace, no header, no config table: nothing but the error to read.
      expect(all).not.toMatch(/^\s+at |resources to create|^Config:|problems:/m);
      expect(run.stdout).toBe("");
    },
    PLAN_TIMEOUT_MS,
  );

  it("refuses a key Pulumi.yaml does not declare before running the program (exit 2), naming the closest key", async () => {
    // The program refuses it too (tests/unit/index.test.ts); the plan does so first.
    const run = await runCli(["-C", ROOT, "-c", "instanceTyp=t4g.small"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("'criu-lab:instanceTyp' is not a config key of criu-lab");
    expect(run.stderr).toContain("did you mean 'instanceType'?");
    expect(run.stdout).toBe("");
  });

  it("rejects a value of the wrong schema type before running anything (exit 2)", async () => {
    const run = await runCli(["-C", ROOT, "-c", "rootVolumeGiB=big"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      "Stack 'dev' with configuration key 'criu-lab:rootVolumeGiB' must be of type 'integer'",
    );
    expect(run.stdout).toBe("");
  });
});
