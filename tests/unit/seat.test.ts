/**
 * A class in one stack under the Pulumi mocks: seats x hosts instances with their
 * names and tags, a key per seat that no other seat's outputs hold, the security group's
 * rule between lab hosts, the peer set-up and the migration of two-host seats, the budget,
 * and one seat of one host building exactly the resources a lab always had.
 */
import * as pulumi from "@pulumi/pulumi";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cannotRun, needCommand } from "../support/requirements";
import {
  ConstructionLog,
  LabMocks,
  PASSING_DEMO,
  PASSING_MIGRATION,
  failureOf,
  fakeOpensshKeyPair,
  isSecretValue,
  setupMocks,
  userDataOf,
  valueOf,
  labChild,
} from "./support/mocks";
import { LAB_CIDR, newLab, settled } from "./support/lab";
import {
  expectImdsV2Required,
  expectSshOnlyFrom,
  expectVolumesEncrypted,
} from "./support/properties";
import { T } from "./support/types";

/** The checkout's host command, as the lab's files install it. */
const HOST_COMMAND = join(__dirname, "..", "..", "host", "criu-lab");

// Types only: the modules themselves load after the mocks are installed.
import type { CriuLab, CriuLabArgs } from "../../components/lab";
import type { SeatOutput } from "../../components/seat";
import type * as SeatModule from "../../components/seat";
import { peerSetupScript } from "../../components/peerSetup";

let mocks: LabMocks;
let CriuLabClass: typeof CriuLab;
let seatModule: typeof SeatModule;

interface Built {
  lab: CriuLab;
  seats: SeatOutput[];
  log: ConstructionLog;
}

async function build(name: string, overrides: Partial<CriuLabArgs> = {}): Promise<Built> {
  // The auto-stop at 45 minutes, as a class's teacher might set it.
  const made = newLab(CriuLabClass, name, { autoStopMinutes: 45, ...overrides });
  const seats = await valueOf(made.lab.seatsOutput);
  return { ...(await settled(mocks, made)), seats };
}

beforeAll(async () => {
  mocks = await setupMocks();
  CriuLabClass = (await import("../../components/lab")).CriuLab;
  seatModule = await import("../../components/seat");
});

describe("one seat of one host (the default)", () => {
  let built: Built;
  beforeAll(async () => {
    built = await build("solo");
  });

  it("builds the resources a lab always had, as a class of one: seat 01 with host a", () => {
    const names = mocks.resources
      .filter((r) => r.name.startsWith("solo"))
      .map((r) => `${r.type} ${r.name}`)
      .sort();
    // By their names of old (before seats), which the one-seat-urns test holds as aliases.
    const ofOld: Array<[string, string]> = [
      ["pulumi:index:Stash", "zone"],
      ["criu-lab:network:LabNetwork", "network"],
      ["aws:ec2/vpc:Vpc", "network-vpc"],
      ["aws:ec2/subnet:Subnet", "network-subnet"],
      ["aws:ec2/internetGateway:InternetGateway", "network-igw"],
      ["aws:ec2/routeTable:RouteTable", "network-routes"],
      ["aws:ec2/routeTableAssociation:RouteTableAssociation", "network-routes-assoc"],
      ["aws:ec2/securityGroup:SecurityGroup", "network-sg"],
      ["criu-lab:access:LabAccess", "access"],
      ["tls:index/privateKey:PrivateKey", "access-user-key"],
      ["aws:ec2/keyPair:KeyPair", "access-key-pair"],
      ["tls:index/privateKey:PrivateKey", "access-host-key"],
      ["criu-lab:instance:LabInstance", "host"],
      ["pulumi:index:Stash", "host-image"],
      ["aws:ec2/instance:Instance", "host-instance"],
      ["aws:ec2transitgateway/instanceState:InstanceState", "host-running"],
      ["aws:ec2/eip:Eip", "address"],
      ["aws:ec2/eipAssociation:EipAssociation", "address-assoc"],
      ["criu-lab:files:LabFiles", "files"],
      ["command:remote:CopyToRemote", "files-copy"],
      ["command:remote:Command", "files-ready"],
      ["criu-lab:verification:LabVerification", "verify"],
      ["command:remote:Command", "verify-cloud-init"],
      ["command:remote:Command", "verify-check"],
      ["command:remote:Command", "verify-demo"],
      ["command:remote:Command", "verify-doctor"],
    ];
    expect(names).toEqual(
      [
        "criu-lab:lab:CriuLab solo",
        "criu-lab:seat:LabSeat solo-seat-01",
        ...ofOld.map(([type, part]) => `${type} ${labChild("solo", part)}`),
      ].sort(),
    );
  });

  it("keeps the security group to SSH from the allowed CIDRs (no rule between hosts)", () => {
    const sg = mocks.one(T.sg, "solo-");
    expect(sg.inputs.ingress).toHaveLength(1);
    expect(sg.inputs.ingress[0].self).toBeUndefined();
  });

  it("keeps the Name tags of old and describes itself as seat 01, host a named after the lab", async () => {
    expect(mocks.one(T.instance, "solo-").inputs.tags.Name).toBe("solo-host-instance");
    const [seat] = built.seats;
    expect(built.seats).toHaveLength(1);
    expect(seat).toMatchObject({ seat: "01", sshUser: "ubuntu", autoStopMinutes: 45 });
    expect(seat).not.toHaveProperty("migration"); // one host: nothing to migrate to
    expect(seat!.privateKey).toBe(await valueOf(built.lab.privateKey));
    expect(seat!.hosts).toEqual([
      {
        role: "a",
        name: "solo",
        instanceId: await valueOf(built.lab.instanceId),
        publicIp: await valueOf(built.lab.publicIp),
        privateIp: expect.stringMatching(/^10\.0\.1\.\d+$/),
        sshCommand: await valueOf(built.lab.sshCommand),
        knownHostsLine: await valueOf(built.lab.knownHostsLine),
      },
    ]);
  });

  it("keeps the seats output secret: it holds the key", async () => {
    expect(await pulumi.isSecret(built.lab.seatsOutput)).toBe(true);
  });

  it("creates no budget without budgetMonthlyUsd", () => {
    expect(mocks.ofType(T.budget, "solo")).toHaveLength(0);
  });
});

describe("what holds for every host of any lab, one seat or a class", () => {
  // Properties, not copies of inputs: they hold however many seats and hosts there are.
  const labs = ["prop-solo", "prop-class"];
  const seatsOf: Record<string, SeatOutput[]> = {};
  beforeAll(async () => {
    seatsOf["prop-solo"] = (await build("prop-solo")).seats;
    const cidrs = ["0.0.0.0/0"];
    seatsOf["prop-class"] = (
      await build("prop-class", { seats: 2, hostsPerSeat: 2, sshAllowedCidrs: cidrs })
    ).seats;
  });
  const ofLabs = (type: string) => labs.flatMap((lab) => mocks.ofType(type, `${lab}-`));

  it("requires IMDSv2 on every instance, with no hop beyond the host", () => {
    const instances = ofLabs(T.instance);
    expect(instances).toHaveLength(5);
    for (const i of instances) expectImdsV2Required(i);
  });

  it("encrypts every volume", () => {
    for (const i of ofLabs(T.instance)) expectVolumesEncrypted(i);
    expect(mocks.ofType("aws:ebs/volume:Volume")).toEqual([]);
  });

  it("pins, on every connection to a host, that host's own key: the one its users pin", () => {
    // By lab, seat and role (prop-class-seat-02-b): the key that host's seat card holds.
    const keyOf = new Map(
      labs.flatMap((lab) =>
        seatsOf[lab]!.flatMap((seat) =>
          seat.hosts.map((h) => [
            `${lab}-seat-${seat.seat}-${h.role}`,
            h.knownHostsLine.split(" ")[2],
          ]),
        ),
      ),
    );
    expect(keyOf.size).toBe(5);
    const connected = [...ofLabs(T.command), ...ofLabs(T.copy)];
    expect(connected.length).toBeGreaterThan(5);
    for (const r of connected) {
      // A seat's migration runs on host a, its peer set-up too: the name says which host.
      const host =
        /^(.*-seat-\d\d-[ab])-/.exec(r.name)?.[1] ?? `${/^(.*-seat-\d\d)-/.exec(r.name)![1]}-a`;
      expect(r.inputs.connection.hostKey, r.name).toMatch(/^ssh-ed25519 /);
      expect(r.inputs.connection.hostKey.split(" ")[1], r.name).toBe(keyOf.get(host));
    }
  });

  it("opens SSH only to the allowed CIDRs or the group itself, and nothing else inbound", () => {
    const groups = ofLabs(T.sg);
    expect(groups).toHaveLength(2);
    for (const sg of groups) {
      expectSshOnlyFrom(sg, sg.name.startsWith("prop-class") ? ["0.0.0.0/0"] : [LAB_CIDR]);
    }
  });
});

describe("a class of 3 seats with 2 hosts each", () => {
  let built: Built;
  beforeAll(async () => {
    built = await build("class", { seats: 3, hostsPerSeat: 2 });
    await valueOf(built.lab.verificationResult);
  });

  it("creates seats x hosts instances named and tagged by seat and role", () => {
    const instances = mocks.ofType(T.instance, "class-");
    expect(instances.map((i) => i.inputs.tags.Name).sort()).toEqual([
      "class-seat-01-a",
      "class-seat-01-b",
      "class-seat-02-a",
      "class-seat-02-b",
      "class-seat-03-a",
      "class-seat-03-b",
    ]);
    for (const i of instances) {
      const [, seat, role] = /seat-(\d\d)-([ab])$/.exec(i.inputs.tags.Name as string) ?? [];
      expect(i.inputs.tags).toEqual({
        Name: `class-seat-${seat}-${role}`,
        Project: "criu-lab",
        Stack: "dev",
        Seat: seat,
        Role: role,
      });
      expect(i.inputs.rootBlockDevice.tags).toMatchObject({ Seat: seat, Role: role });
    }
    // Every host its own address that survives stop/start, tagged like its instance.
    const eips = mocks.ofType(T.eip, "class-").map((e) => e.inputs.tags.Name);
    expect(eips.sort()).toEqual(instances.map((i) => i.inputs.tags.Name).sort());
  });

  it("names hosts criu-lab-seat-NN-a/b in the program that index.ts builds", () => {
    // index.ts names the lab criu-lab: the seat's hosts are criu-lab-seat-03-a, as the
    // handout's cards and the verifier's peer name say.
    expect(seatModule.seatId(3)).toBe("03");
    expect(seatModule.keyFileOf("03")).toBe("seat-03.pem");
  });

  it("has one network and one security group; SSH between hosts only by the group itself", () => {
    expect(mocks.ofType("aws:ec2/vpc:Vpc", "class-")).toHaveLength(1);
    const sg = mocks.one(T.sg, "class-");
    expectSshOnlyFrom(sg, [LAB_CIDR]);
    expect(sg.inputs.ingress).toContainEqual(
      expect.objectContaining({
        description: expect.stringContaining("between the lab's hosts"),
        self: true,
      }),
    );
  });

  it("gives every seat its own user key pair, and every host its own host key", async () => {
    expect(mocks.ofType(T.keyPair, "class-")).toHaveLength(3);
    const userKeys = built.seats.map((s) => s.privateKey);
    expect(new Set(userKeys).size).toBe(3);
    const hostKeys = built.seats.flatMap((s) => s.hosts.map((h) => h.knownHostsLine.split(" ")[2]));
    expect(new Set(hostKeys).size).toBe(6);
    for (const s of built.seats) {
      expect(s.hosts.map((h) => h.sshCommand)).toEqual(
        s.hosts.map((h) => `ssh -i seat-${s.seat}.pem ubuntu@${h.publicIp}`),
      );
    }
  });

  it("never puts a seat's private key in another seat's outputs or resources", () => {
    for (const s of built.seats) {
      const others = built.seats.filter((o) => o.seat !== s.seat);
      expect(JSON.stringify(others)).not.toContain(s.privateKey.trim().split("\n")[1]);
      const foreign = mocks.resources.filter(
        (r) => r.name.startsWith("class-seat-") && !r.name.startsWith(`class-seat-${s.seat}`),
      );
      expect(JSON.stringify(foreign.map((r) => r.inputs))).not.toContain(
        s.privateKey.trim().split("\n")[1],
      );
    }
  });

  it("lists seats in order with hosts a then b, each with its private address", () => {
    expect(built.seats.map((s) => s.seat)).toEqual(["01", "02", "03"]);
    for (const s of built.seats) {
      expect(s.autoStopMinutes).toBe(45);
      expect(s.hosts.map((h) => [h.role, h.name])).toEqual([
        ["a", `class-seat-${s.seat}-a`],
        ["b", `class-seat-${s.seat}-b`],
      ]);
      for (const h of s.hosts) {
        expect(h.privateIp).toMatch(/^10\.0\.1\.\d+$/);
        expect(h.knownHostsLine).toMatch(new RegExp(`^${h.publicIp} ssh-ed25519 `));
      }
    }
  });

  it("authorizes the seat's host-to-host key on both hosts through their user-data", async () => {
    const keys = mocks.ofType(T.tlsKey, "class-seat-").filter((k) => k.name.endsWith("-peer-key"));
    expect(keys.map((k) => k.name).sort()).toEqual([
      "class-seat-01-access-peer-key",
      "class-seat-02-access-peer-key",
      "class-seat-03-access-peer-key",
    ]);
    const seat = built.lab.seats[1]!;
    const peer = await valueOf(seat.access.peerKey!.publicKeyOpenssh);
    for (const role of ["a", "b"]) {
      const userData = userDataOf(mocks.one(T.instance, `class-seat-02-${role}-`));
      expect(userData).toContain(peer);
    }
    // ... and not on another seat's hosts.
    expect(userDataOf(mocks.one(T.instance, "class-seat-01-a-"))).not.toContain(peer);
  });

  it("sets up each host for its peer: name, address, host key and key, over SSH pinned", async () => {
    const seat = built.seats[2]!;
    const [a, b] = seat.hosts;
    const peerCommand = mocks.one(T.command, "class-seat-03-a-peer");
    expect(peerCommand.inputs.create).toContain(b!.name);
    expect(peerCommand.inputs.connection.host).toBe(a!.publicIp);
    expect(peerCommand.inputs.connection.hostKey).toBe(
      a!.knownHostsLine.split(" ").slice(1).join(" "),
    );
    expect(isSecretValue(peerCommand.rawInputs.stdin)).toBe(true);
    const script = peerCommand.inputs.stdin as string;
    expect(script).toContain(`peer=${b!.name} ip=${b!.privateIp}`);
    expect(script).toContain(b!.knownHostsLine.split(" ").slice(1).join(" "));
    const peerKey = await valueOf(built.lab.seats[2]!.access.peerKey!.privateKeyOpenssh);
    expect(script).toContain(peerKey.trim());
    // Host b gets the same for host a.
    expect(mocks.one(T.command, "class-seat-03-b-peer").inputs.stdin).toContain(
      `peer=${a!.name} ip=${a!.privateIp}`,
    );
  });

  it("verifies every host, then migrates the counter a -> b by the peer's name, judged on a", () => {
    for (const s of built.seats) {
      for (const role of ["a", "b"]) {
        for (const step of ["cloud-init", "check", "demo"]) {
          mocks.one(T.command, `class-seat-${s.seat}-${role}-verify-${step}`);
        }
      }
      const migration = mocks.one(T.command, `class-seat-${s.seat}-migration`);
      const a = s.hosts[0]!;
      expect(migration.inputs.connection.host).toBe(a.publicIp);
      // migrationMode's default: the best mode the two hosts can run.
      expect(migration.inputs.stdin).toContain(
        `sudo CRIU_LAB_PROGRESS=off criu-lab scenario run migration --to '\\''ubuntu@class-seat-${s.seat}-b'\\'' --mode '\\''auto'\\'' --json`,
      );
      // A failure names the seat, the host and the step.
      expect(migration.inputs.stdin).toContain(
        `failed on seat ${s.seat} host a (class-seat-${s.seat}-a) migrating to host b`,
      );
      expect(migration.inputs.triggers).toHaveLength(5);
      expect(migration.inputs.triggers[4]).toBe("auto");
    }
    expect(mocks.one(T.command, "class-seat-02-b-verify-check").inputs.stdin).toContain(
      "failed on seat 02 host b (class-seat-02-b)",
    );
  });

  it("puts each seat's migration in the seats output: mode asked, mode that ran, downtime", () => {
    // From the Command's stdout: a real `scenario run migration --mode auto --json` run.
    const ran = JSON.parse(PASSING_MIGRATION) as { mode: string; downtimeMs: number };
    expect(ran.mode).toBe("page-server");
    for (const s of built.seats) {
      expect(s.migration).toEqual({
        modeAsked: "auto",
        mode: "page-server",
        downtimeMs: ran.downtimeMs,
      });
    }
  });

  it("orders the migration after both hosts' demo and both peer set-ups", () => {
    const migration = built.log.constructed.find((c) => c.name === "class-seat-01-migration");
    const after = (migration?.opts.dependsOn as pulumi.Resource[]).map(
      (r) => built.log.constructed.find((c) => c.resource === r)?.name,
    );
    expect(after.sort()).toEqual([
      "class-seat-01-a-peer",
      "class-seat-01-a-verify-demo",
      "class-seat-01-b-peer",
      "class-seat-01-b-verify-demo",
    ]);
  });

  it("keeps today's single-seat outputs: seat 01's host a", async () => {
    const first = built.seats[0]!;
    expect(await valueOf(built.lab.publicIp)).toBe(first.hosts[0]!.publicIp);
    expect(await valueOf(built.lab.privateKey)).toBe(first.privateKey);
    expect(await valueOf(built.lab.sshCommand)).toBe(first.hosts[0]!.sshCommand);
    expect(await valueOf(built.lab.knownHostsLine)).toBe(first.hosts[0]!.knownHostsLine);
  });

  it("is read back by the verifier as 6 hosts, a's peer being b by name", async () => {
    const { targetsFromStackOutputs } = await import("../../verify/seats");
    const { parseSeatOutputs } = await import("../../contract/seats");
    // Mocked instance ids are not EC2's (i-...), which the verifier insists on.
    const seats = built.seats.map((s, i) => ({
      ...s,
      hosts: s.hosts.map((h, j) => ({ ...h, instanceId: `i-0123456789abcde${i}${j}` })),
    }));
    const targets = targetsFromStackOutputs({ seats });
    expect(parseSeatOutputs({ seats })[2]!.hosts[1]!.privateIp).toBe(seats[2]!.hosts[1]!.privateIp);
    const badIp = seats.map((s, i) =>
      i === 1 ? { ...s, hosts: [{ ...s.hosts[0]!, privateIp: "10.0.1.x; id" }, s.hosts[1]!] } : s,
    );
    expect(() => parseSeatOutputs({ seats: badIp })).toThrow(
      "stack output 'seats[1].hosts[0].privateIp' is '10.0.1.x; id'; allowed: an IPv4 address",
    );
    expect(targets).toHaveLength(6);
    expect(targets[0]).toMatchObject({
      seat: "01",
      role: "a",
      peer: "ubuntu@class-seat-01-b",
      // The verifier migrates in the mode the stack asked for.
      migrationMode: "auto",
    });
    expect(targets[1]).toMatchObject({ seat: "01", role: "b" });
    expect(targets[1]!.peer).toBeUndefined();
    expect(targets[1]!.migrationMode).toBeUndefined();
  });
});

describe("a class of one-host seats", () => {
  it("has no rule between hosts, no peer key and no migration", async () => {
    const built = await build("solos", { seats: 2, hostsPerSeat: 1 });
    expect(mocks.ofType(T.instance, "solos-").map((i) => i.inputs.tags.Name)).toEqual([
      "solos-seat-01-a",
      "solos-seat-02-a",
    ]);
    expect(mocks.one(T.sg, "solos-").inputs.ingress).toHaveLength(1);
    expect(
      mocks.ofType(T.tlsKey, "solos-").filter((k) => k.name.endsWith("-peer-key")),
    ).toHaveLength(0);
    expect(
      mocks.ofType(T.command, "solos-").filter((c) => /-(peer|migration)$/.test(c.name)),
    ).toEqual([]);
    expect(built.seats.map((s) => s.hosts.length)).toEqual([1, 1]);
    // A one-host seat has no migration field (as stacks from before it).
    for (const s of built.seats) expect(s).not.toHaveProperty("migration");
  });
});

describe("a failed host fails the deploy naming its seat, host and step", () => {
  it("a demo that did not pass on seat 01's host b", async () => {
    mocks.commandStdout.demo = JSON.stringify({
      ok: false,
      error: "restore failed: File exists",
      imagesDir: "/var/lib/criu-lab/demo/img",
    });
    try {
      const { lab, log } = newLab(CriuLabClass, "failing", { seats: 1, hostsPerSeat: 2 });
      // Taken at once, as `pulumi up` takes them (see lab.test.ts build()).
      const [a, b] = lab.seats[0]!.hosts.map((h) => failureOf(h.verification!.demo));
      await valueOf(lab.seatsOutput);
      await log.settled(mocks);
      expect((await b!).message).toContain(
        "criu-lab verification failed: checkpoint/restore demo on seat 01 host b (failing-seat-01-b) did not pass: restore failed: File exists",
      );
      expect((await a!).message).toContain("on seat 01 host a (failing-seat-01-a)");
    } finally {
      mocks.commandStdout.demo = PASSING_DEMO;
    }
  });
});

describe("migrationMode", () => {
  it("is the migration's --mode, and a change of it re-runs the migration (a trigger)", async () => {
    const built = await build("colder", { seats: 1, hostsPerSeat: 2, migrationMode: "cold" });
    const migration = mocks.one(T.command, "colder-seat-01-migration");
    expect(migration.inputs.stdin).toContain("--mode '\\''cold'\\'' --json");
    expect(migration.inputs.triggers.at(-1)).toBe("cold");
    expect(built.seats[0]!.migration?.modeAsked).toBe("cold");
  });

  it("a migration whose stdout holds no JSON fails the seats output, naming the seat", async () => {
    mocks.commandStdout.migration = "migrated, trust me";
    try {
      const { lab, log } = newLab(CriuLabClass, "unread", { seats: 1, hostsPerSeat: 2 });
      const failure = failureOf(lab.seatsOutput);
      await log.settled(mocks);
      expect((await failure).message).toContain(
        "criu-lab verification failed: seat 01 host a (unread-seat-01-a) migrating to host b (unread-seat-01-b): migration: no JSON object in its output",
      );
    } finally {
      mocks.commandStdout.migration = PASSING_MIGRATION;
    }
  });
});

describe("the migration's judge on host a", () => {
  it("holds the scenario's JSON to ok: true and the same PID there", async () => {
    // A failure on the host fails the Command itself (remoteStep), which mocks cannot run:
    // the stdin names the rules the host's judge applies, and that judge is run here on them.
    await build("judged", { seats: 1, hostsPerSeat: 2 });
    const stdin = mocks.one(T.command, "judged-seat-01-migration").inputs.stdin as string;
    expect(stdin).toContain('criu-lab judge migration "$rc" "$out" "$err"');
    const dir = mkdtempSync(join(tmpdir(), "criu-lab-judge-"));
    try {
      const judge = (result: Record<string, unknown>) => {
        writeFileSync(join(dir, "out"), `${JSON.stringify(result)}\n`);
        writeFileSync(join(dir, "err"), "");
        const args = ["judge", "migration", "0", join(dir, "out"), join(dir, "err")];
        return spawnSync("/usr/bin/python3", [HOST_COMMAND, ...args], { encoding: "utf8" });
      };
      const passed = JSON.parse(PASSING_MIGRATION.trim().split("\n").at(-1)!) as Record<
        string,
        unknown
      >;
      expect(judge(passed).status).toBe(0);
      const moved = judge({ ...passed, restoredPid: Number(passed.pid) + 1 });
      expect(moved.status).toBe(1);
      expect(moved.stdout).toContain(`not as PID ${String(passed.pid)}`);
      // The seats output reads the downtime from it: the judge insists on it.
      const noDowntime = { ...passed };
      delete noDowntime.downtimeMs;
      expect(judge(noDowntime).stdout).toContain("field 'downtimeMs' should be a number");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("verify: false", () => {
  it("sets up the peers but verifies nothing and migrates nothing", async () => {
    await build("quiet", { seats: 1, hostsPerSeat: 2, verify: false });
    const names = mocks.ofType(T.command, "quiet-").map((c) => c.name);
    expect(names.filter((n) => n.endsWith("-peer")).sort()).toEqual([
      "quiet-seat-01-a-peer",
      "quiet-seat-01-b-peer",
    ]);
    expect(names.filter((n) => /verify|migration/.test(n))).toEqual([]);
  });

  it("says in the seats output what the verifier will ask for, and that nothing ran", async () => {
    const built = await build("idle", { seats: 1, hostsPerSeat: 2, verify: false });
    expect(built.seats[0]!.migration).toEqual({ modeAsked: "auto", mode: null, downtimeMs: null });
  });
});

describe("the budget", () => {
  it("counts the stack's tag monthly and alerts by email at 80 % and 100 %", async () => {
    await build("budgeted", { budget: { monthlyUsd: 40, email: "teacher@example.org" } });
    const budget = mocks.one(T.budget, "budgeted-");
    expect(budget.inputs).toMatchObject({
      budgetType: "COST",
      timeUnit: "MONTHLY",
      limitAmount: "40",
      limitUnit: "USD",
      costFilters: [{ name: "TagKeyValue", values: ["user:Stack$dev"] }],
      tags: { Name: "budgeted-budget-monthly", Project: "criu-lab", Stack: "dev" },
    });
    expect(
      (budget.inputs.notifications as Array<Record<string, unknown>>).map((n) => [
        n.threshold,
        n.thresholdType,
        n.notificationType,
        n.comparisonOperator,
        n.subscriberEmailAddresses,
      ]),
    ).toEqual([
      [80, "PERCENTAGE", "ACTUAL", "GREATER_THAN", ["teacher@example.org"]],
      [100, "PERCENTAGE", "ACTUAL", "GREATER_THAN", ["teacher@example.org"]],
    ]);
  });
});

describe("peerSetupScript", () => {
  const key = fakeOpensshKeyPair("peer");
  const setup = () => ({
    peerName: "criu-lab-seat-03-b",
    peerIp: "10.0.1.23",
    hostKey: key.publicKeyOpenssh.trim(),
    key: key.privateKeyOpenssh,
  });

  it("is valid bash, and shellcheck-clean where shellcheck is installed", () => {
    const script = peerSetupScript(setup());
    expect(spawnSync("bash", ["-n"], { input: script }).status).toBe(0);
    // Skipped with a printed reason where shellcheck is missing; a failure under CI=true.
    if (cannotRun("peerSetupScript's shellcheck", [needCommand("shellcheck")])) return;
    execFileSync("shellcheck", ["-s", "bash", "-"], { input: script });
  });

  it("writes the name, the pinned host key and the client config, replacing earlier lines", () => {
    const script = peerSetupScript(setup());
    expect(script).toContain('echo "$ip $peer $mark" | sudo tee -a /etc/hosts');
    expect(script).toContain(
      `echo "$peer,$ip ${key.publicKeyOpenssh.trim()} $mark" | sudo tee -a /etc/ssh/ssh_known_hosts`,
    );
    expect(script).toContain('{ sudo grep -v " $mark\\$" "$file" || true; } >"$kept"');
    expect(script).toContain("IdentityFile ~/.ssh/criu-lab-peer");
    expect(script).toContain("install_key /root root root");
  });

  it("refuses a name, an address or a key that could break the script", () => {
    const f = peerSetupScript;
    expect(() => f({ ...setup(), peerName: "b; rm -rf /" })).toThrow(/bad peer name/);
    expect(() => f({ ...setup(), peerIp: "10.0.1.x" })).toThrow(/bad peer address/);
    expect(() => f({ ...setup(), hostKey: "ssh-rsa AAAA" })).toThrow(/bad peer host key/);
    expect(() => f({ ...setup(), key: "CRIU_LAB_PEER_KEY" })).toThrow(/not an OpenSSH private key/);
  });
});
