/**
 * The offline plan of a class, as the README runs it:
 * `npm run plan -- -c seats=3 -c hostsPerSeat=2` shows every seat's resources, the security
 * group's rule between lab hosts (the group itself, no CIDR) and no secret.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { buildReport, PlanReport, renderTree } from "../../plan/printer";
import { loadProject } from "../../plan/project";
import { runPlan } from "../../plan/runner";
import { SECRET, UNKNOWN } from "../../plan/values";
import { PLAN_TIMEOUT_MS, ROOT, dependencyClosure } from "./fixtures/plan-cli";

describe("plan of a class: seats=3, hostsPerSeat=2, a budget", () => {
  let report: PlanReport;
  let tree: string;
  let json: string;

  beforeAll(async () => {
    const project = loadProject({
      dir: ROOT,
      stack: "dev",
      overrides: [
        "seats=3",
        "hostsPerSeat=2",
        "budgetMonthlyUsd=40",
        "budgetEmail=teacher@example.org",
      ],
      env: {},
    });
    report = buildReport(await runPlan({ project }));
    tree = renderTree(report);
    json = JSON.stringify(report);
    if (!report.ok) console.error(tree);
  }, PLAN_TIMEOUT_MS);

  const ofType = (type: string) => report.resources.filter((r) => r.type === type);

  it("runs the program to the end", () => {
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("shows every seat's hosts, keys, addresses, peer set-ups and migration", () => {
    const names = (type: string) => ofType(type).map((r) => r.name);
    expect(names("aws:ec2/instance:Instance").sort()).toEqual(
      ["01", "02", "03"].flatMap((s) => [
        `criu-lab-seat-${s}-a-host-instance`,
        `criu-lab-seat-${s}-b-host-instance`,
      ]),
    );
    expect(ofType("aws:ec2/instance:Instance").map((r) => r.inputs.tags)).toContainEqual({
      Name: "criu-lab-seat-03-b",
      Project: "criu-lab",
      Stack: "dev",
      Seat: "03",
      Role: "b",
    });
    expect(names("aws:ec2/keyPair:KeyPair")).toHaveLength(3);
    expect(names("aws:ec2/eip:Eip")).toHaveLength(6);
    expect(names("tls:index/privateKey:PrivateKey")).toHaveLength(3 * 4);
    const commands = names("command:remote:Command");
    expect(commands.filter((n) => n.endsWith("-peer"))).toHaveLength(6);
    expect(commands.filter((n) => n.endsWith("-migration")).sort()).toEqual([
      "criu-lab-seat-01-migration",
      "criu-lab-seat-02-migration",
      "criu-lab-seat-03-migration",
    ]);
    expect(ofType("aws:ec2/vpc:Vpc")).toHaveLength(1);
  });

  it("starts each stopped host before any command on it: peer set-ups and migrations too", () => {
    const running = new Map(
      ofType("aws:ec2transitgateway/instanceState:InstanceState").map((r) => [r.name, r.urn]),
    );
    expect([...running.keys()].sort()).toEqual(
      ["01", "02", "03"].flatMap((s) => [
        `criu-lab-seat-${s}-a-host-running`,
        `criu-lab-seat-${s}-b-host-running`,
      ]),
    );
    const remote = [...ofType("command:remote:Command"), ...ofType("command:remote:CopyToRemote")];
    for (const r of remote) {
      // A host's own commands wait for that host; a seat's migration for both of its hosts.
      const migration = /^(criu-lab-seat-\d\d)-migration$/.exec(r.name);
      const hosts = migration
        ? [`${migration[1]}-a`, `${migration[1]}-b`]
        : [/^criu-lab-seat-\d\d-[ab]/.exec(r.name)![0]];
      const closure = dependencyClosure(report, r.urn);
      for (const host of hosts) {
        expect(closure.has(running.get(`${host}-host-running`)!), `${r.name} -> ${host}`).toBe(
          true,
        );
      }
    }
  });

  it("shows the security group's rule between lab hosts: the group itself, SSH only", () => {
    const [sg] = ofType("aws:ec2/securityGroup:SecurityGroup");
    expect(ofType("aws:ec2/securityGroup:SecurityGroup")).toHaveLength(1);
    const ingress = sg!.inputs.ingress as Array<Record<string, unknown>>;
    expect(ingress[1]).toMatchObject({ self: true, protocol: "tcp", fromPort: 22, toPort: 22 });
    expect(ingress[1]!.cidrBlocks).toBeUndefined();
    expect(tree).toMatch(/self: true/);
  });

  it("warns, as a preview would, that 6 hosts need more than the placeholder 5 Elastic IPs", () => {
    const warnings = report.diagnostics.filter((d) => d.severity === "warning");
    expect(warnings.map((d) => d.message)).toContainEqual(
      expect.stringContaining(
        "criu-lab quota check: `pulumi up` will stop before creating anything: 6 hosts need 6 " +
          "new Elastic IPs, but ap-southeast-1 allows 5 (quota L-0263D0A3)",
      ),
    );
    expect(tree).toContain("warning: criu-lab quota check: `pulumi up` will stop");
  });

  it("shows the budget on the stack's tag", () => {
    const [budget] = ofType("aws:budgets/budget:Budget");
    expect(budget!.inputs).toMatchObject({
      limitAmount: "40",
      costFilters: [{ name: "TagKeyValue", values: ["user:Stack$dev"] }],
    });
  });

  it("prints no secret: keys, user-data and the peer set-up are hidden", () => {
    for (const text of [tree, json]) {
      expect(text).not.toMatch(/PRIVATE KEY|ssh-ed25519 AAAA|#cloud-config|CRIU_LAB_PEER_KEY/);
    }
    for (const peer of ofType("command:remote:Command").filter((r) => r.name.endsWith("-peer"))) {
      expect([SECRET, UNKNOWN]).toContain(peer.inputs.stdin);
    }
    expect([SECRET, UNKNOWN]).toContain(report.outputs.seats);
  });
});
