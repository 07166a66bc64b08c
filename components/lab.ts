import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { DemoResult, DoctorResult, ScenarioName } from "../contract/checks";
import type { MigrationMode } from "../contract/seats";
import { LabAccess } from "./access";
import { LabBudget } from "./budget";
import { HostsPerSeat, LabConfig } from "./config";
import { LabFiles } from "./labFiles";
import { LabInstance } from "./instance";
import { keptAvailabilityZone } from "./lookups";
import { LabNetwork } from "./network";
import { HostArgs, LabSeat, SeatOutput, seatId } from "./seat";
import { Tags, labTags } from "./tags";
import { LabVerification } from "./verification";

/** The lab's arguments: the validated config, with `auto` in sshAllowedCidrs resolved. */
export interface CriuLabArgs extends Omit<
  LabConfig,
  "seats" | "hostsPerSeat" | "verifyScenarios" | "migrationMode"
> {
  /** Scenarios every host's verification runs after the demo (needs `verify`). Default none. */
  verifyScenarios?: ScenarioName[];
  /** The `--mode` of a two-host seat's migration a -> b (with `verify`). Default auto. */
  migrationMode?: MigrationMode;
  /** Tags for every taggable resource (each also gets its own Name). Default Project/Stack. */
  tags?: Tags;
  /** Login user of the Ubuntu image. Default "ubuntu". */
  sshUser?: string;
  /** Independent seats (default 1). One seat of one host is the lab as it always was. */
  seats?: number;
  /** Hosts per seat (default 1); 2 adds a peer `b` to every seat for migration. */
  hostsPerSeat?: HostsPerSeat;
}

/**
 * A CRIU checkpoint/restore lab on EC2: network and security group, keys, the Ubuntu hosts
 * built by cloud-init, and (with `verify`) the proof that checkpoint/restore works on them.
 * Always a class: one network and security group, and per seat (`seats`, default 1) a LabSeat
 * (its own key, one or two hosts); the single-host members describe seat 01's host a.
 */
export class CriuLab extends pulumi.ComponentResource {
  public readonly network: LabNetwork;
  /** The new subnet's zone and the Stash that keeps it (undefined with `subnetId`). */
  public readonly zone?: { zone: pulumi.Output<string>; stash: pulumi.Stash };
  public readonly access: LabAccess;
  public readonly host: LabInstance;
  /** The lab's Elastic IP: its address survives stop/start (and a replaced instance). */
  public readonly address: aws.ec2.Eip;
  public readonly addressAssociation: aws.ec2.EipAssociation;
  /** The lab's files, copied to the host by `pulumi up` (too big for EC2's user-data). */
  public readonly files: LabFiles;
  /** Undefined when `verify` is false. */
  public readonly verification?: LabVerification;
  public readonly seatCount: number;
  public readonly hostsPerSeat: HostsPerSeat;
  /** The seats, `seats` of them (default 1): one host of one seat is a class of one. */
  public readonly seats: LabSeat[];
  /** With `budgetMonthlyUsd`: the AWS Budgets budget of the stack's resources. */
  public readonly budget?: LabBudget;

  public readonly instanceId: pulumi.Output<string>;
  public readonly publicIp: pulumi.Output<string>;
  public readonly publicDns: pulumi.Output<string>;
  /** The image the instance runs: a newer Ubuntu build never replaces it on its own. */
  public readonly amiId: pulumi.Output<string>;
  public readonly sshUser: string;
  public readonly sshCommand: pulumi.Output<string>;
  /** The user's OpenSSH private key (secret). */
  public readonly privateKey: pulumi.Output<string>;
  /** `<ip> <host key>`: a line for ~/.ssh/known_hosts. */
  public readonly knownHostsLine: pulumi.Output<string>;
  /** CRIU's version as the host reports it (with verify), else the configured source. */
  public readonly criuVersion: pulumi.Output<string>;
  /** The parsed demo result, or null when `verify` is false. */
  public readonly verificationResult: pulumi.Output<DemoResult | null>;
  /**
   * The `seats` stack output (verify/seats.ts and handout/ read it): per seat its user, key
   * (secret, so the whole output is), auto-stop and hosts. A one-host lab is seat 01.
   */
  public readonly seatsOutput: pulumi.Output<SeatOutput[]>;
  /** What the host can run and why not (`criu-lab doctor`), or null when `verify` is false. */
  public readonly doctor: pulumi.Output<DoctorResult | null>;
  /**
   * The stack's AWS region: with an instance id, what `aws ec2 start-instances` needs (the
   * verifier prints that command for a host the auto-stop powered off).
   */
  public readonly region: pulumi.Output<string>;

  constructor(name: string, args: CriuLabArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:lab:CriuLab", name, {}, opts);
    const tags = args.tags ?? labTags();
    this.sshUser = args.sshUser ?? "ubuntu";

    if (args.subnetId === undefined) {
      this.zone = keptAvailabilityZone(name, args.instanceType, { parent: this });
    }
    this.network = new LabNetwork(
      `${name}-network`,
      {
        subnetId: args.subnetId,
        availabilityZone: this.zone?.zone,
        sshAllowedCidrs: args.sshAllowedCidrs,
        peerSsh: (args.hostsPerSeat ?? 1) === 2,
        tags,
      },
      { parent: this },
    );

    this.seatCount = args.seats ?? 1;
    this.hostsPerSeat = args.hostsPerSeat ?? 1;
    const hostArgs: HostArgs = {
      config: args,
      network: this.network,
      sshUser: this.sshUser,
    };

    // One seat of one host is a class of one. Its resources used to sit under the lab with
    // their own names (criu-lab-host, criu-lab-access, ...): `formerly` gives them aliases to
    // those URNs and keeps their tags, so a stack made then keeps every resource as it is
    // (components/seat.ts Formerly, docs/design.md "Contracts").
    const lone = this.seatCount === 1 && this.hostsPerSeat === 1;
    this.seats = Array.from({ length: this.seatCount }, (_, i) => {
      const seat = seatId(i + 1);
      return new LabSeat(
        `${name}-seat-${seat}`,
        {
          ...hostArgs,
          seat,
          hosts: this.hostsPerSeat,
          tags,
          ...(lone ? { formerly: { name, parent: this } } : {}),
        },
        { parent: this },
      );
    });
    // The single-host outputs name seat 01's host a: scripts written for one lab keep
    // working on a class (they reach its first seat).
    const first = this.seats[0]!;
    const hostA = first.hosts[0]!;
    this.access = first.access;
    this.host = hostA.instance;
    this.address = hostA.address;
    this.addressAssociation = hostA.addressAssociation;
    this.files = hostA.files;
    this.verification = hostA.verification;
    this.seatsOutput = pulumi.all(this.seats.map((s) => s.output));

    // `region`, not the deprecated `name` (@pulumi/aws 7.x getRegion.d.ts).
    this.region = aws.getRegionOutput({}, { parent: this }).region;
    this.instanceId = this.host.instanceId;
    this.publicIp = this.address.publicIp;
    this.publicDns = this.address.publicDns;
    this.amiId = this.host.amiId;
    this.privateKey = this.access.privateKey;
    this.sshCommand = hostA.output.apply((h) => h.sshCommand);
    this.knownHostsLine = hostA.output.apply((h) => h.knownHostsLine);

    const configured =
      args.criu.kind === "git"
        ? args.criu.version
        : args.criu.url.split("/").pop() || args.criu.url;
    if (this.verification) {
      this.verificationResult = this.verification.demo;
      this.doctor = this.verification.doctor;
      this.criuVersion = this.verification.check.criuVersion;
    } else {
      this.verificationResult = pulumi.output(null);
      this.doctor = pulumi.output(null);
      this.criuVersion = pulumi.output(configured);
    }

    if (args.budget) {
      this.budget = new LabBudget(`${name}-budget`, { ...args.budget, tags }, { parent: this });
    }

    this.registerOutputs({
      instanceId: this.instanceId,
      publicIp: this.publicIp,
      publicDns: this.publicDns,
      amiId: this.amiId,
      sshUser: this.sshUser,
      sshCommand: this.sshCommand,
      privateKey: this.privateKey,
      knownHostsLine: this.knownHostsLine,
      region: this.region,
      // criuVersion and verification are left out: they throw on a failed lab, and the stack
      // outputs (index.ts) already surface that error once.
    });
  }
}
