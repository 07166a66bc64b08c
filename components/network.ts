import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { Tags, named } from "./tags";

export interface LabNetworkArgs {
  /**
   * An existing subnet (with a route to an internet gateway) to launch into. When set, no
   * VPC, subnet, gateway or route table is created; the security group goes into its VPC.
   */
  subnetId?: string;
  /** Zone of the new subnet; look it up where the instance type is offered. Unused with subnetId. */
  availabilityZone?: pulumi.Input<string>;
  /** CIDR of the new VPC. Default 10.0.0.0/16, as in the original lab. */
  vpcCidr?: string;
  /**
   * CIDR of the new public subnet. Default 10.0.1.0/24, as in the original lab: AWS keeps 5
   * of its addresses, leaving 251, and a class has at most 50 seats of 2 hosts (100).
   */
  subnetCidr?: string;
  /** IPv4 CIDRs allowed to reach SSH (22/tcp); `auto` must already be resolved. */
  sshAllowedCidrs: pulumi.Input<string[]>;
  /**
   * Two-host seats: SSH (22/tcp) between the lab's hosts, by a rule whose source is the
   * security group itself (never a CIDR). The only port a migration needs: `criu-lab
   * migrate` runs CRIU's page-server and lazy-pages on the peer's loopback and forwards them
   * through that SSH connection (host/criu_lab/migrate.py), so no rule opens their ports.
   */
  peerSsh?: boolean;
  /** Tags for every taggable child; each also gets its own Name. */
  tags?: Tags;
}

/**
 * The lab's network: a dedicated VPC with one public subnet, an internet gateway and a route
 * table (the original lab's layout), or an existing subnet; plus a security group that lets
 * SSH in only from the allowed CIDRs and everything out.
 */
export class LabNetwork extends pulumi.ComponentResource {
  public readonly vpcId: pulumi.Output<string>;
  public readonly subnetId: pulumi.Output<string>;
  public readonly securityGroupId: pulumi.Output<string>;
  /**
   * What the instance and its address wait for: the subnet's route to the internet gateway
   * (the route table association). Empty with `subnetId`, whose routes exist already.
   */
  public readonly routed: pulumi.Resource[];
  /** The internet gateway (undefined with `subnetId`): an Elastic IP needs it first. */
  public readonly internetGateway?: aws.ec2.InternetGateway;

  constructor(name: string, args: LabNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:network:LabNetwork", name, {}, opts);
    const tags = args.tags;

    if (args.subnetId !== undefined) {
      const existing = aws.ec2.getSubnetOutput({ id: args.subnetId }, { parent: this });
      this.vpcId = existing.vpcId;
      this.subnetId = pulumi.output(args.subnetId);
      this.routed = [];
    } else {
      const vpc = new aws.ec2.Vpc(
        `${name}-vpc`,
        {
          cidrBlock: args.vpcCidr ?? "10.0.0.0/16",
          // Public DNS names for the instance (the publicDns output).
          enableDnsHostnames: true,
          enableDnsSupport: true,
          tags: named(`${name}-vpc`, tags),
        },
        { parent: this },
      );
      const subnet = new aws.ec2.Subnet(
        `${name}-subnet`,
        {
          vpcId: vpc.id,
          cidrBlock: args.subnetCidr ?? "10.0.1.0/24",
          availabilityZone: args.availabilityZone,
          mapPublicIpOnLaunch: true,
          tags: named(`${name}-subnet`, tags),
        },
        // A new zone (an instanceType the old zone lacks) replaces the subnet with the same
        // CIDR: created first, it would clash with the old one (InvalidSubnet.Conflict). The
        // engine also deletes what must be replaced with it first (the instance, the route
        // table association).
        { parent: this, deleteBeforeReplace: true },
      );
      const gateway = new aws.ec2.InternetGateway(
        `${name}-igw`,
        { vpcId: vpc.id, tags: named(`${name}-igw`, tags) },
        { parent: this },
      );
      const routes = new aws.ec2.RouteTable(
        `${name}-routes`,
        {
          vpcId: vpc.id,
          routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: gateway.id }],
          tags: named(`${name}-routes`, tags),
        },
        { parent: this },
      );
      const association = new aws.ec2.RouteTableAssociation(
        `${name}-routes-assoc`,
        { subnetId: subnet.id, routeTableId: routes.id },
        // Replaced with the subnet, and like it removed before its successor is made.
        { parent: this, deleteBeforeReplace: true },
      );
      this.vpcId = vpc.id;
      this.subnetId = subnet.id;
      this.routed = [association];
      this.internetGateway = gateway;
    }

    const securityGroup = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        vpcId: this.vpcId,
        description: "criu-lab: SSH from the allowed CIDRs only",
        ingress: [
          {
            description: "SSH from criu-lab:sshAllowedCidrs",
            protocol: "tcp",
            fromPort: 22,
            toPort: 22,
            cidrBlocks: args.sshAllowedCidrs,
          },
          ...(args.peerSsh
            ? [
                {
                  description:
                    "SSH between the lab's hosts (migration; CRIU's ports go through it)",
                  protocol: "tcp",
                  fromPort: 22,
                  toPort: 22,
                  self: true,
                },
              ]
            : []),
        ],
        // apt, the CRIU source and the auto-stop need the internet; nothing listens but sshd.
        egress: [
          {
            description: "all outbound",
            protocol: "-1",
            fromPort: 0,
            toPort: 0,
            cidrBlocks: ["0.0.0.0/0"],
          },
        ],
        tags: named(`${name}-sg`, tags),
      },
      { parent: this },
    );
    this.securityGroupId = securityGroup.id;

    this.registerOutputs({
      vpcId: this.vpcId,
      subnetId: this.subnetId,
      securityGroupId: this.securityGroupId,
    });
  }
}
