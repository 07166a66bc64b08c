import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { DemoResult, DoctorResult, ScenarioName } from "../verify/checks";
import { LabAccess } from "./access";
import { LabConfig } from "./config";
import { LabFiles } from "./labFiles";
import { LabInstance } from "./instance";
import { lookupAvailabilityZone } from "./lookups";
import { LabNetwork } from "./network";
import { Tags, labTags, named } from "./tags";
import { LabVerification } from "./verification";

/** The lab's arguments: the validated config, with `auto` in sshAllowedCidrs resolved. */
export interface CriuLabArgs extends Omit<LabConfig, "verifyScenarios"> {
  /** Scenarios the verification runs after the demo (needs `verify`). Default none. */
  verifyScenarios?: ScenarioName[];
  /** Tags for every taggable resource (each also gets its own Name). Default Project/Stack. */
  tags?: Tags;
  /** Login user of the Ubuntu image. Default "ubuntu". */
  sshUser?: string;
}

/**
 * A CRIU checkpoint/restore lab on EC2: network and security group, keys, the Ubuntu host
 * built by cloud-init, and (with `verify`) the proof that checkpoint/restore works on it.
 */
export class CriuLab extends pulumi.ComponentResource {
  public readonly network: LabNetwork;
  public readonly access: LabAccess;
  public readonly host: LabInstance;
  /** The lab's Elastic IP: its address survives stop/start (and a replaced instance). */
  public readonly address: aws.ec2.Eip;
  public readonly addressAssociation: aws.ec2.EipAssociation;
  /** The lab's files, copied to the host by `pulumi up` (too big for EC2's user-data). */
  public readonly files: LabFiles;
  /** Undefined when `verify` is false. */
  public readonly verification?: LabVerification;

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
  /** What the host can run and why not (`criu-lab doctor`), or null when `verify` is false. */
  public readonly doctor: pulumi.Output<DoctorResult | null>;

  constructor(name: string, args: CriuLabArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:lab:CriuLab", name, {}, opts);
    const tags = args.tags ?? labTags();
    this.sshUser = args.sshUser ?? "ubuntu";

    this.network = new LabNetwork(
      `${name}-network`,
      {
        subnetId: args.subnetId,
        availabilityZone:
          args.subnetId === undefined
            ? lookupAvailabilityZone(args.instanceType, { parent: this })
            : undefined,
        sshAllowedCidrs: args.sshAllowedCidrs,
        tags,
      },
      { parent: this },
    );

    this.access = new LabAccess(`${name}-access`, { tags }, { parent: this });

    this.host = new LabInstance(
      `${name}-host`,
      {
        instanceType: args.instanceType,
        ubuntuRelease: args.ubuntuRelease,
        amiId: args.amiId,
        subnetId: this.network.subnetId,
        securityGroupIds: [this.network.securityGroupId],
        keyName: this.access.keyName,
        hostKey: {
          privateKeyOpenssh: this.access.hostPrivateKey,
          publicKeyOpenssh: this.access.hostPublicKey,
        },
        authorizedKeys: args.sshPublicKey === undefined ? undefined : [args.sshPublicKey],
        criu: args.criu,
        autoStopMinutes: args.autoStopMinutes,
        rootVolumeGiB: args.rootVolumeGiB,
        tags,
        routed: this.network.routed,
      },
      { parent: this },
    );

    // A stopped instance loses its public IP, and a refresh while it is stopped stores an
    // empty one: an Elastic IP keeps the address (and so sshCommand, knownHostsLine and the
    // verification's connection) across stop/start. Issue 9. AWS: an EIP may need the
    // internet gateway first (the provider's docs), and is released before it on destroy.
    this.address = new aws.ec2.Eip(
      `${name}-address`,
      { domain: "vpc", tags: named(`${name}-address`, tags) },
      {
        parent: this,
        dependsOn: this.network.internetGateway ? [this.network.internetGateway] : [],
      },
    );
    this.addressAssociation = new aws.ec2.EipAssociation(
      `${name}-address-assoc`,
      { allocationId: this.address.id, instanceId: this.host.instanceId },
      {
        parent: this,
        // A replaced instance takes the address over: detach it from the old one first.
        deleteBeforeReplace: true,
        dependsOn: this.network.routed,
      },
    );

    this.instanceId = this.host.instanceId;
    this.publicIp = this.address.publicIp;
    this.publicDns = this.address.publicDns;
    this.amiId = this.host.amiId;
    this.privateKey = this.access.privateKey;
    this.sshCommand = pulumi.interpolate`ssh -i criu-lab.pem ${this.sshUser}@${this.publicIp}`;
    this.knownHostsLine = pulumi.interpolate`${this.publicIp} ${this.access.hostPublicKey}`;

    this.files = new LabFiles(
      `${name}-files`,
      {
        host: this.publicIp,
        user: this.sshUser,
        privateKey: this.access.privateKey,
        hostPublicKey: this.access.hostPublicKey,
        instanceId: this.instanceId,
        // Like the verification: the address answers only once it is associated.
        dependsOn: [this.host.instance, this.addressAssociation],
      },
      { parent: this },
    );

    const configured =
      args.criu.kind === "git"
        ? args.criu.version
        : args.criu.url.split("/").pop() || args.criu.url;
    if (args.verify) {
      this.verification = new LabVerification(
        `${name}-verify`,
        {
          host: this.publicIp,
          user: this.sshUser,
          privateKey: this.access.privateKey,
          hostPublicKey: this.access.hostPublicKey,
          // The address answers only once it is associated with this instance.
          dependsOn: [this.host.instance, this.addressAssociation, this.files.ready],
          // Not the address: it is the Elastic IP's, stable across stop/start.
          triggers: [this.host.userDataHash, this.instanceId],
          scenarios: args.verifyScenarios,
        },
        { parent: this },
      );
      this.verificationResult = this.verification.demo;
      this.doctor = this.verification.doctor;
      this.criuVersion = this.verification.check.criuVersion;
    } else {
      this.verificationResult = pulumi.output(null);
      this.doctor = pulumi.output(null);
      this.criuVersion = pulumi.output(configured);
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
      // criuVersion and verification are left out: they throw on a failed lab, and the stack
      // outputs (index.ts) already surface that error once.
    });
  }
}
