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
import { HostArgs, LabSeat, SeatOutput, buildHost, keyFileOf, seatId } from "./seat";
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
 * A CRIU checkpoint/restore lab on EC2: network and security group, keys, the Ubuntu host
 * built by cloud-init, and (with `verify`) the proof that checkpoint/restore works on it.
 * With `seats`/`hostsPerSeat`, a class: one network and security group, and per
 * seat a LabSeat (its own key, one or two hosts); the single-seat members then describe
 * seat 01's host a.
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
  /** The seats of a class; empty for one seat of one host (built directly, as always). */
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

    if (this.seatCount === 1 && this.hostsPerSeat === 1) {
      // One seat, one host: the resources and names of a lab from before seats existed, so
      // that such a stack is not replaced.
      this.access = new LabAccess(`${name}-access`, { tags }, { parent: this });
      const host = buildHost(this, name, {
        ...hostArgs,
        tags,
        keyName: this.access.keyName,
        userKey: this.access.privateKey,
        hostKey: this.access.hostKeys[""]!,
        keyFile: "criu-lab.pem",
      });
      this.host = host.instance;
      this.address = host.address;
      this.addressAssociation = host.addressAssociation;
      this.files = host.files;
      this.verification = host.verification;
      this.seats = [];
      this.seatsOutput = pulumi
        .all([host.output, this.access.privateKey])
        .apply(([h, privateKey]): SeatOutput[] => [
          {
            seat: "01",
            sshUser: this.sshUser,
            privateKey,
            autoStopMinutes: args.autoStopMinutes,
            // As verify/seats.ts reads a stack from before seats: host a named criu-lab.
            hosts: [{ role: "a", name, ...h }],
          },
        ]);
    } else {
      this.seats = Array.from({ length: this.seatCount }, (_, i) => {
        const seat = seatId(i + 1);
        return new LabSeat(
          `${name}-seat-${seat}`,
          { ...hostArgs, seat, hosts: this.hostsPerSeat, tags },
          { parent: this },
        );
      });
      const first = this.seats[0]!;
      // The single-seat outputs name seat 01's host a: scripts written for one lab keep
      // working on a class (they reach its first seat).
      this.access = first.access;
      this.host = first.hosts[0]!.instance;
      this.address = first.hosts[0]!.address;
      this.addressAssociation = first.hosts[0]!.addressAssociation;
      this.files = first.hosts[0]!.files;
      this.verification = first.hosts[0]!.verification;
      this.seatsOutput = pulumi.all(this.seats.map((s) => s.output));
    }

    // `region`, not the deprecated `name` (@pulumi/aws 7.x getRegion.d.ts).
    this.region = aws.getRegionOutput({}, { parent: this }).region;
    this.instanceId = this.host.instanceId;
    this.publicIp = this.address.publicIp;
    this.publicDns = this.address.publicDns;
    this.amiId = this.host.amiId;
    this.privateKey = this.access.privateKey;
    this.sshCommand =
      this.seats.length === 0
        ? pulumi.interpolate`ssh -i criu-lab.pem ${this.sshUser}@${this.publicIp}`
        : pulumi.interpolate`ssh -i ${keyFileOf("01")} ${this.sshUser}@${this.publicIp}`;
    this.knownHostsLine = pulumi.interpolate`${this.publicIp} ${this.access.hostPublicKey}`;

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
