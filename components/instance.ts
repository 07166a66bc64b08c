import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { compressUserData, CriuSource, renderUserData } from "../cloud-init/userData";
import { UbuntuRelease } from "./config";
import { lookupArchitecture, lookupUbuntuAmi } from "./lookups";
import { Tags, named } from "./tags";

export interface LabInstanceArgs {
  /** EC2 instance type, e.g. t3.small (x86_64) or t4g.small (arm64). */
  instanceType: string;
  /** Ubuntu LTS release of Canonical's image (ignored with amiId). */
  ubuntuRelease: UbuntuRelease;
  /** Use this AMI instead of looking up Canonical's image. */
  amiId?: string;
  /** Subnet with a route to an internet gateway. */
  subnetId: pulumi.Input<string>;
  securityGroupIds: pulumi.Input<string>[];
  /** EC2 key pair whose key cloud-init authorizes for the default user. */
  keyName: pulumi.Input<string>;
  /** Generated SSH host key: cloud-init installs it as the host's only key. */
  hostKey: {
    privateKeyOpenssh: pulumi.Input<string>;
    publicKeyOpenssh: pulumi.Input<string>;
  };
  /** Extra OpenSSH public keys for the lab user (a two-host seat's peer key among them). */
  authorizedKeys?: pulumi.Input<string>[];
  /** Where CRIU's source comes from. */
  criu: CriuSource;
  /** Idle minutes with no SSH session before power-off; 0 = never. */
  autoStopMinutes: number;
  /** Size of the encrypted gp3 root volume. Default 16. */
  rootVolumeGiB?: number;
  /** Tags for the instance and its root volume; each also gets its own Name. */
  tags?: Tags;
  /**
   * The instance's Name tag (its root volume's is `<nameTag>-root`), e.g. criu-lab-seat-03-a
   * so the EC2 console shows a class at a glance. Default `${name}-instance`.
   */
  nameTag?: string;
  /** Its root volume's Name tag; default `<nameTag>-root`, or `${name}-root`. */
  rootNameTag?: string;
  /** What the instance waits for: the subnet's route to the internet (see LabNetwork.routed). */
  routed?: pulumi.Resource[];
}

/**
 * The lab host: Canonical's Ubuntu LTS image for the instance type's architecture (the newest
 * at creation, kept until the release, architecture or amiId changes), user-data
 * from cloud-init/userData.ts (secret: it carries the host's private key), IMDSv2 only, and
 * an encrypted gp3 root volume.
 */
export class LabInstance extends pulumi.ComponentResource {
  public readonly instance: aws.ec2.Instance;
  public readonly instanceId: pulumi.Output<string>;
  /** The address in the subnet: kept across stop/start; a seat's peer reaches it by name. */
  public readonly privateIp: pulumi.Output<string>;
  /** The image the instance runs: amiId, or the newest Canonical image when the lab was made. */
  public readonly amiId: pulumi.Output<string>;
  /**
   * Where the looked-up image id is kept (undefined with amiId): `pulumi up --replace` of its
   * URN takes the newest image on purpose.
   */
  public readonly imageStash?: pulumi.Stash;
  /** The rendered user-data, plain text (secret: it carries the host's private key); EC2 gets
   * it gzip-compressed. */
  public readonly userData: pulumi.Output<string>;
  /** SHA-256 of the user-data (secret, as the user-data is): changes exactly when it does. */
  public readonly userDataHash: pulumi.Output<string>;
  /**
   * Starts the instance when the auto-stop (or anyone) powered it off: every remote Command on
   * this host depends on it, so none dials a stopped host.
   */
  public readonly running: aws.ec2transitgateway.InstanceState;

  constructor(name: string, args: LabInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:instance:LabInstance", name, {}, opts);

    if (args.amiId !== undefined) {
      // A changed amiId replaces the instance: `ami` cannot change in place.
      this.amiId = pulumi.output(args.amiId);
    } else {
      const arch = lookupArchitecture(args.instanceType, { parent: this });
      // Canonical publishes a new build every few weeks, and `ami` replaces an instance: the
      // newest image must not replace a running lab (new host, a rebuild, the learner's files
      // gone). The stash keeps the image the lab was created with; a new release or
      // architecture replaces the stash (replacementTrigger), and so the instance. Not
      // ignoreChanges on ami: the engine would put the old image into the replacement too.
      // Both need Pulumi CLI >= 3.226.0 (components/pulumiCli.ts says why).
      const stash = new pulumi.Stash(
        `${name}-image`,
        { input: lookupUbuntuAmi(args.ubuntuRelease, arch, { parent: this }) },
        {
          parent: this,
          replacementTrigger: pulumi.interpolate`ubuntu ${args.ubuntuRelease} ${arch}`,
        },
      );
      this.imageStash = stash;
      this.amiId = stash.output.apply((ami: unknown) => String(ami));
    }

    // Rendered inside apply from the secret host key, and marked secret again so it stays
    // secret even where the key's secretness is lost (e.g. a provider that does not mark it).
    this.userData = pulumi.secret(
      pulumi
        .all([
          args.hostKey.privateKeyOpenssh,
          args.hostKey.publicKeyOpenssh,
          pulumi.all(args.authorizedKeys ?? []),
        ])
        .apply(([privateKeyOpenssh, publicKeyOpenssh, authorizedKeys]) =>
          renderUserData({
            criu: args.criu,
            hostKey: { privateKeyOpenssh, publicKeyOpenssh },
            authorizedKeys: args.authorizedKeys === undefined ? undefined : authorizedKeys,
            autoStopMinutes: args.autoStopMinutes,
            // EC2's 16 KB cannot hold the lab's files: LabFiles copies them.
            labFiles: "copied",
          }),
        ),
    );
    this.userDataHash = this.userData.apply((text) =>
      createHash("sha256").update(text).digest("hex"),
    );

    this.instance = new aws.ec2.Instance(
      `${name}-instance`,
      {
        ami: this.amiId,
        instanceType: args.instanceType,
        subnetId: args.subnetId,
        vpcSecurityGroupIds: args.securityGroupIds,
        // The lab's address is its Elastic IP (lab.ts); this launch address lets cloud-init
        // reach the internet before the EIP is associated, which then takes its place.
        associatePublicIpAddress: true,
        keyName: args.keyName,
        // gzip-compressed to fit EC2's 16 KB; binary, so base64 through userDataBase64 (the
        // provider's docs: gzip data passed as userData gets corrupted). Secret, as userData is.
        userDataBase64: this.userData.apply((text) => compressUserData(text).toString("base64")),
        // A new host key or CRIU source means a new host: cloud-init runs user-data once.
        // (The provider's docs: it applies to userData and userDataBase64 alike.)
        userDataReplaceOnChange: true,
        // The auto-stop powers off an idle lab: stop it (keeping the disk), never terminate.
        instanceInitiatedShutdownBehavior: "stop",
        // IMDSv2 only, and no hop beyond the host (containers on it cannot reach IMDS).
        metadataOptions: {
          httpEndpoint: "enabled",
          httpTokens: "required",
          httpPutResponseHopLimit: 1,
        },
        rootBlockDevice: {
          volumeType: "gp3",
          volumeSize: args.rootVolumeGiB ?? 16,
          encrypted: true,
          deleteOnTermination: true,
          tags: named(
            args.rootNameTag ?? (args.nameTag ? `${args.nameTag}-root` : `${name}-root`),
            args.tags,
          ),
        },
        tags: named(args.nameTag ?? `${name}-instance`, args.tags),
      },
      {
        parent: this,
        // Boot into a routed subnet (cloud-init's apt), and on destroy leave before the route
        // and the gateway go.
        dependsOn: args.routed ?? [],
      },
    );

    this.instanceId = this.instance.id;
    this.privateIp = this.instance.privateIp;

    // The auto-stop powers an idle host off, and a Command that dials it fails after its 30
    // attempts. The provider's InstanceState (Terraform's aws_ec2_instance_state,
    // internal/service/ec2/ec2_instance_state.go) starts it: create waits while the instance
    // is pending or stopping, then calls StartInstances and waits for running unless it is
    // running already (updateInstanceState returns at once when the state is the one asked
    // for); delete is a no-op (schema.NoopContext: the instance is left as it is). But a plain
    // `pulumi up` never reads a resource's live state (only `--refresh` does), so on its own
    // it would not see a stopped host. The lookup below does, on every run (invokes run in
    // previews too): a stopping or stopped instance changes the replacementTrigger to
    // "stopped", the engine replaces the InstanceState, and its create starts the instance
    // before any Command on it runs. The run after that sees "running" again and replaces it
    // once more: a no-op on a running host, shown as a replacement. replacementTrigger needs
    // Pulumi CLI >= 3.226.0, as the image stash does (components/pulumiCli.ts).
    const stopped = aws.ec2.getInstancesOutput(
      {
        filters: [{ name: "instance-id", values: [this.instance.id] }],
        // The data source's instance_state_names (an `instance-state-name` filter); an empty
        // answer is not an error there (ec2_instances_data_source.go).
        instanceStateNames: ["stopping", "stopped"],
      },
      { parent: this },
    );
    this.running = new aws.ec2transitgateway.InstanceState(
      `${name}-running`,
      { instanceId: this.instance.id, state: "running" },
      {
        parent: this,
        replacementTrigger: stopped.ids.apply((ids) => (ids.length > 0 ? "stopped" : "running")),
      },
    );

    this.registerOutputs({
      instanceId: this.instanceId,
      amiId: this.amiId,
    });
  }
}
