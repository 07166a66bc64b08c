import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { CheckOutputError, type ScenarioName } from "../contract/checks";
import {
  migrationCheck,
  seatMigrationOutput,
  type MigrationMode,
  type SeatHostOutput as ReadSeatHostOutput,
  type SeatMigrationOutput,
  type SeatOutput as ReadSeatOutput,
} from "../contract/seats";
import { peerSetupScript } from "./peerSetup";
import { HostKey, LabAccess } from "./access";
import { HostsPerSeat, LabConfig, defaultConfig } from "./config";
import { LabFiles } from "./labFiles";
import { LabInstance } from "./instance";
import { LabNetwork } from "./network";
import { Tags, named } from "./tags";
import { LabVerification, pinnedConnection, remoteStep } from "./verification";

/** `3` -> "03": seats are numbered with two digits (Name tags, the handout's folders). */
export function seatId(n: number): string {
  return String(n).padStart(2, "0");
}

/** The seat's key file as the handout writes it and sshCommand names it: `seat-03.pem`. */
export function keyFileOf(seat: string): string {
  return `seat-${seat}.pem`;
}

/**
 * One host in the `seats` stack output: the contract verify/seats.ts reads (where privateIp is
 * optional, for stacks from before seats), which this program always fills in.
 */
export interface SeatHostOutput extends ReadSeatHostOutput {
  /** The address in the subnet, by which the seat's other host reaches this one. */
  privateIp: string;
}

/** One seat in the `seats` stack output, as this program writes it. */
export interface SeatOutput extends Omit<ReadSeatOutput, "autoStopMinutes" | "hosts"> {
  autoStopMinutes: number;
  hosts: SeatHostOutput[];
}

/** What every host of the lab shares. */
export interface HostArgs {
  config: Omit<LabConfig, "seats" | "hostsPerSeat" | "verifyScenarios" | "migrationMode"> & {
    verifyScenarios?: ScenarioName[];
    /** Default Pulumi.yaml's (auto). */
    migrationMode?: MigrationMode;
  };
  network: LabNetwork;
  sshUser: string;
}

interface OneHostArgs extends HostArgs {
  tags: Tags;
  keyName: pulumi.Input<string>;
  /** The user's private key (secret): every connection of `pulumi up` logs in with it. */
  userKey: pulumi.Output<string>;
  hostKey: HostKey;
  /** The key file sshCommand names. */
  keyFile: string;
  /** Extra public keys for the lab user (the peer key in a two-host seat). */
  authorizedKeys?: pulumi.Input<string>[];
  /** Name tags of the instance, its root volume and its Elastic IP. */
  nameTags: { instance: string; root: string; address: string };
  /** Who a failed check names (LabVerification's label); default "the lab host". */
  label?: string;
  /** The lab this host once was (see Formerly): its resources get aliases to those URNs. */
  formerly?: Formerly;
}

/**
 * A lab of one host from before it became a class of one: its resources sat under the lab
 * `parent` as `${name}-host`, `${name}-address`, `${name}-access`, ... The new ones alias those
 * URNs and keep that lab's tags, Name tags, key file, host name and messages, so the engine
 * finds nothing to change (docs/design.md "Contracts"). How an alias resolves
 * (node_modules/@pulumi/pulumi/resource.js `allAliases`, `inheritedChildAlias`): the alias
 * names the old parent and name; the children of an aliased component inherit it, their
 * names' prefix swapped for the old name (criu-lab-seat-01-a-host-instance ->
 * criu-lab-host-instance), so only the direct children of the lab need one.
 */
export interface Formerly {
  name: string;
  parent: pulumi.Resource;
}

/** `{ aliases }` for a resource once named `${formerly.name}${suffix}` under formerly.parent. */
function formerName(formerly: Formerly | undefined, suffix: string): pulumi.ResourceOptions {
  return formerly
    ? { aliases: [{ name: `${formerly.name}${suffix}`, parent: formerly.parent }] }
    : {};
}

/** One host: instance, Elastic IP, the copied lab files and (with verify) its verification. */
export interface LabHost {
  instance: LabInstance;
  address: aws.ec2.Eip;
  addressAssociation: aws.ec2.EipAssociation;
  files: LabFiles;
  verification?: LabVerification;
  publicIp: pulumi.Output<string>;
  hostPublicKey: pulumi.Output<string>;
  /** This host's part of the `seats` output (role and name are the seat's to say). */
  output: pulumi.Output<Omit<SeatHostOutput, "role" | "name">>;
}

/**
 * Builds one lab host under `scope`, its children named `${name}-host`, `${name}-address`,
 * `${name}-address-assoc`, `${name}-files`, `${name}-verify` (a seat's host:
 * `criu-lab-seat-03-a-...`); with `formerly`, each aliases its name in a lab from before seats.
 */
function buildHost(scope: pulumi.ComponentResource, name: string, args: OneHostArgs): LabHost {
  const config = args.config;
  const network = args.network;
  const extraKeys = [
    ...(config.sshPublicKey === undefined ? [] : [config.sshPublicKey]),
    ...(args.authorizedKeys ?? []),
  ];
  const instance = new LabInstance(
    `${name}-host`,
    {
      instanceType: config.instanceType,
      ubuntuRelease: config.ubuntuRelease,
      amiId: config.amiId,
      subnetId: network.subnetId,
      securityGroupIds: [network.securityGroupId],
      keyName: args.keyName,
      hostKey: args.hostKey,
      authorizedKeys: extraKeys.length === 0 ? undefined : extraKeys,
      criu: config.criu,
      autoStopMinutes: config.autoStopMinutes,
      rootVolumeGiB: config.rootVolumeGiB,
      tags: args.tags,
      nameTag: args.nameTags.instance,
      rootNameTag: args.nameTags.root,
      routed: network.routed,
    },
    { parent: scope, ...formerName(args.formerly, "-host") },
  );

  // A stopped instance loses its public IP, and a refresh while it is stopped stores an
  // empty one: an Elastic IP keeps the address (and so sshCommand, knownHostsLine and the
  // verification's connection) across stop/start. AWS: an EIP may need the
  // internet gateway first (the provider's docs), and is released before it on destroy.
  const address = new aws.ec2.Eip(
    `${name}-address`,
    { domain: "vpc", tags: named(args.nameTags.address, args.tags) },
    {
      parent: scope,
      dependsOn: network.internetGateway ? [network.internetGateway] : [],
      ...formerName(args.formerly, "-address"),
    },
  );
  const addressAssociation = new aws.ec2.EipAssociation(
    `${name}-address-assoc`,
    { allocationId: address.id, instanceId: instance.instanceId },
    {
      parent: scope,
      // A replaced instance takes the address over: detach it from the old one first.
      deleteBeforeReplace: true,
      dependsOn: network.routed,
      ...formerName(args.formerly, "-address-assoc"),
    },
  );
  const publicIp = address.publicIp;
  const connection = {
    host: publicIp,
    user: args.sshUser,
    privateKey: args.userKey,
    hostPublicKey: args.hostKey.publicKeyOpenssh,
  };

  const files = new LabFiles(
    `${name}-files`,
    {
      ...connection,
      instanceId: instance.instanceId,
      // Like the verification: the address answers only once it is associated, and the
      // instance once it runs (a host the auto-stop powered off is started first).
      dependsOn: [instance.instance, instance.running, addressAssociation],
    },
    { parent: scope, ...formerName(args.formerly, "-files") },
  );

  const verification = config.verify
    ? new LabVerification(
        `${name}-verify`,
        {
          ...connection,
          // The address answers only once it is associated with this instance, and the
          // instance once it runs.
          dependsOn: [instance.instance, instance.running, addressAssociation, files.ready],
          // Not the address: it is the Elastic IP's, stable across stop/start.
          triggers: [instance.userDataHash, instance.instanceId],
          label: args.label,
          scenarios: config.verifyScenarios,
        },
        { parent: scope, ...formerName(args.formerly, "-verify") },
      )
    : undefined;

  const output = pulumi
    .all([instance.instanceId, publicIp, instance.privateIp, args.hostKey.publicKeyOpenssh])
    .apply(([instanceId, ip, privateIp, hostKey]) => ({
      instanceId,
      publicIp: ip,
      privateIp,
      sshCommand: `ssh -i ${args.keyFile} ${args.sshUser}@${ip}`,
      knownHostsLine: `${ip} ${hostKey}`,
    }));

  return {
    instance,
    address,
    addressAssociation,
    files,
    verification,
    publicIp,
    hostPublicKey: args.hostKey.publicKeyOpenssh,
    output,
  };
}

export interface LabSeatArgs extends HostArgs {
  /** Two digits, "01".."50". */
  seat: string;
  /** 1 (host a) or 2 (a and its peer b). */
  hosts: HostsPerSeat;
  /** The lab's tags; the seat adds Seat, its hosts Role. */
  tags: Tags;
  /** A lab of one host, which a one-host seat 01 has been since before seats existed. */
  formerly?: Formerly;
}

/** A seat's host as built: its role, its Name (how the peer reaches it) and its parts. */
export interface SeatHost extends LabHost {
  role: "a" | "b";
  /** EC2 Name tag, e.g. criu-lab-seat-03-a; in a two-host seat the peer's name for it. */
  hostName: string;
}

/**
 * One student's seat: its own user key (a student gets only their seat's key),
 * one host `a` or two (`a` and its peer `b`), each with its generated host key, Elastic IP
 * and Name `criu-lab-seat-03-a` (tags Seat=03, Role=a). In a two-host seat both hosts hold
 * a host-to-host key and know each other by name (LabPeer), and with `verify` the counter is
 * migrated from `a` to `b` once both pass (in `migrationMode`, default auto), judged on `a`;
 * the mode that ran and its downtime go to the seat's `migration` in the `seats` output.
 */
export class LabSeat extends pulumi.ComponentResource {
  public readonly seat: string;
  public readonly access: LabAccess;
  public readonly hosts: SeatHost[];
  /** Two-host seats: each host's set-up for its peer (key, known_hosts, name). */
  public readonly peers: command.remote.Command[];
  /** Two-host seats with verify: the counter migrated a -> b (judged on a). */
  public readonly migration?: command.remote.Command;
  /** Two-host seats: the mode asked for, the mode that ran and its downtime (the `seats` output). */
  public readonly migrationOutput?: pulumi.Output<SeatMigrationOutput>;
  /** This seat in the `seats` stack output. */
  public readonly output: pulumi.Output<SeatOutput>;

  constructor(name: string, args: LabSeatArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:seat:LabSeat", name, {}, opts);
    this.seat = args.seat;
    const roles = args.hosts === 2 ? (["a", "b"] as const) : (["a"] as const);
    const was = args.formerly;
    if (was && args.hosts !== 1) {
      throw new Error(`${name}: only a one-host seat was ever a lab of its own (formerly)`);
    }
    // The lab of old had no Seat and Role tags: adding them would change every resource.
    const seatTags = was ? args.tags : { ...args.tags, Seat: args.seat };
    this.access = new LabAccess(
      `${name}-access`,
      {
        tags: seatTags,
        hostRoles: [...roles],
        peerKey: args.hosts === 2,
        formerly: was ? `${was.name}-access` : undefined,
      },
      { parent: this, ...formerName(was, "-access") },
    );
    const peerKey = this.access.peerKey;

    this.hosts = roles.map((role) => {
      const hostName = `${name}-${role}`;
      const host = buildHost(this, hostName, {
        ...args,
        tags: was ? seatTags : { ...seatTags, Role: role },
        keyName: this.access.keyName,
        userKey: this.access.privateKey,
        hostKey: this.access.hostKeys[role]!,
        authorizedKeys: peerKey ? [peerKey.publicKeyOpenssh] : undefined,
        ...(was
          ? {
              // The key file its README has always named, and the lab host of its messages.
              keyFile: "criu-lab.pem",
              nameTags: {
                instance: `${was.name}-host-instance`,
                root: `${was.name}-host-root`,
                address: `${was.name}-address`,
              },
            }
          : {
              keyFile: keyFileOf(args.seat),
              nameTags: { instance: hostName, root: `${hostName}-root`, address: hostName },
              label: `seat ${args.seat} host ${role} (${hostName})`,
            }),
      });
      // The seats output names the host of old after the lab, as the readers always did.
      return { ...host, role, hostName: was ? was.name : hostName };
    });

    this.peers = [];
    const [a, b] = this.hosts;
    if (a && b && peerKey) {
      for (const [self, other] of [
        [a, b],
        [b, a],
      ] as const) {
        this.peers.push(
          new command.remote.Command(
            `${self.hostName}-peer`,
            {
              connection: pinnedConnection({
                host: self.publicIp,
                user: args.sshUser,
                privateKey: this.access.privateKey,
                hostPublicKey: self.hostPublicKey,
              }),
              create: `bash -s  # criu-lab: set up the peer ${other.hostName} (script on stdin)`,
              // Secret: it carries the host-to-host private key.
              stdin: pulumi.secret(
                pulumi
                  .all([other.instance.privateIp, other.hostPublicKey, peerKey.privateKeyOpenssh])
                  .apply(([ip, hostKey, key]) =>
                    peerSetupScript({ peerName: other.hostName, peerIp: ip, hostKey, key }),
                  ),
              ),
              // A new instance (either one) or a new peer address or key: set up again.
              triggers: [
                self.instance.instanceId,
                other.instance.privateIp,
                other.hostPublicKey,
                peerKey.publicKeyOpenssh,
              ],
              logging: "stdout",
              addPreviousOutputInEnv: false,
            },
            {
              parent: this,
              dependsOn: [
                self.instance.instance,
                self.instance.running,
                self.addressAssociation,
                self.files.ready,
              ],
              customTimeouts: { create: "15m", update: "15m" },
            },
          ),
        );
      }
      const modeAsked = args.config.migrationMode ?? defaultConfig().migrationMode;
      const where = `seat ${args.seat} host a (${a.hostName}) migrating to host b (${b.hostName})`;
      if (args.config.verify && a.verification && b.verification) {
        const step = remoteStep(migrationCheck(`${args.sshUser}@${b.hostName}`, modeAsked), where);
        const limit = `${migrationCheck("").timeoutSeconds + 300}s`;
        this.migration = new command.remote.Command(
          `${name}-migration`,
          {
            connection: pinnedConnection({
              host: a.publicIp,
              user: args.sshUser,
              privateKey: this.access.privateKey,
              hostPublicKey: a.hostPublicKey,
            }),
            create: step.create,
            stdin: step.stdin,
            // Another migrationMode migrates again in the new mode: a changed trigger re-runs
            // `create` (@pulumi/command remote/command.d.ts `triggers`), as does the new stdin.
            triggers: [
              a.instance.userDataHash,
              a.instance.instanceId,
              b.instance.userDataHash,
              b.instance.instanceId,
              modeAsked,
            ],
            logging: "stdout",
            addPreviousOutputInEnv: false,
          },
          {
            parent: this,
            // Both hosts verified, both know each other.
            dependsOn: [a.verification.demoCommand, b.verification.demoCommand, ...this.peers],
            customTimeouts: { create: limit, update: limit },
          },
        );
        // A Command that succeeded passed the judge on a (remoteStep): its stdout ends with the
        // scenario's JSON. Reading it still fails loudly, naming the seat, should it not.
        this.migrationOutput = this.migration.stdout.apply((out) => {
          try {
            return seatMigrationOutput(out, modeAsked);
          } catch (err) {
            if (!(err instanceof CheckOutputError)) throw err;
            throw new Error(
              `criu-lab verification failed: ${where}: ${err.message}; it printed: ${JSON.stringify(out.slice(0, 500))}`,
            );
          }
        });
      } else {
        // No migration ran (verify false): what the verifier will ask for, nothing measured.
        this.migrationOutput = pulumi.output({ modeAsked, mode: null, downtimeMs: null });
      }
    }

    this.output = pulumi
      .all([
        this.access.privateKey,
        pulumi.all(this.hosts.map((h) => h.output)),
        this.migrationOutput ?? pulumi.output(undefined),
      ])
      .apply(([privateKey, hosts, migration]): SeatOutput => ({
        seat: args.seat,
        sshUser: args.sshUser,
        privateKey,
        autoStopMinutes: args.config.autoStopMinutes,
        hosts: hosts.map((h, i) => ({
          role: this.hosts[i]!.role,
          name: this.hosts[i]!.hostName,
          ...h,
        })),
        // Two-host seats only: a one-host seat has no migration field, as stacks before it.
        ...(migration ? { migration } : {}),
      }));

    this.registerOutputs({});
  }
}
