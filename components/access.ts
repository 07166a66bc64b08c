import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { Tags, named } from "./tags";

export interface LabAccessArgs {
  /** Tags for the EC2 key pair (the only taggable child); it also gets its own Name. */
  tags?: Tags;
  /** The hosts that get a host key each, by role: `${name}-host-key-<role>`. */
  hostRoles: string[];
  /**
   * A host-to-host key for a two-host seat (`${name}-peer-key`): both hosts hold its private
   * key and authorize its public key, so `criu-lab migrate` goes from one to the other.
   */
  peerKey?: boolean;
  /**
   * The name this LabAccess had in a lab of one host from before seats (it aliases that one):
   * the key pair keeps its Name tag `${formerly}-key-pair`, and the first host's key, then
   * `${formerly}-host-key`, its URN (an alias).
   */
  formerly?: string;
}

/** One host's generated SSH host key. */
export interface HostKey {
  /** OpenSSH private key (secret): it only travels inside user-data. */
  privateKeyOpenssh: pulumi.Output<string>;
  /** OpenSSH public key line (`ssh-ed25519 AAAA...`). */
  publicKeyOpenssh: pulumi.Output<string>;
}

/**
 * The lab's keys: an ED25519 user key registered as an EC2 key pair (cloud-init puts it in
 * ~ubuntu/.ssh/authorized_keys) and a generated ED25519 SSH *host* key that cloud-init installs
 * as the host's only key, so every connection (remote Commands, plain ssh via knownHostsLine,
 * the verifier) can pin the host instead of trusting the first key it sees.
 */
export class LabAccess extends pulumi.ComponentResource {
  /** The user key's OpenSSH private key (secret). */
  public readonly privateKey: pulumi.Output<string>;
  /** The user key's OpenSSH public key line. */
  public readonly publicKey: pulumi.Output<string>;
  /** Name of the EC2 key pair. */
  public readonly keyName: pulumi.Output<string>;
  /** The host key's OpenSSH private key (secret): it only travels inside user-data. */
  public readonly hostPrivateKey: pulumi.Output<string>;
  /** The host key's OpenSSH public key line (`ssh-ed25519 AAAA...`). */
  public readonly hostPublicKey: pulumi.Output<string>;
  /** Every host's key by role (`hostRoles`). */
  public readonly hostKeys: Record<string, HostKey>;
  /** The host-to-host key (with `peerKey`): private (secret) and public line. */
  public readonly peerKey?: HostKey;

  constructor(name: string, args: LabAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:access:LabAccess", name, {}, opts);

    const userKey = new tls.PrivateKey(
      `${name}-user-key`,
      { algorithm: "ED25519" },
      { parent: this },
    );
    const keyPair = new aws.ec2.KeyPair(
      `${name}-key-pair`,
      {
        publicKey: userKey.publicKeyOpenssh,
        tags: named(`${args.formerly ?? name}-key-pair`, args.tags),
      },
      { parent: this },
    );
    const key = (keyName: string, opts: pulumi.CustomResourceOptions = {}): HostKey => {
      const generated = new tls.PrivateKey(
        keyName,
        { algorithm: "ED25519" },
        { parent: this, ...opts },
      );
      return {
        privateKeyOpenssh: pulumi.secret(generated.privateKeyOpenssh),
        publicKeyOpenssh: generated.publicKeyOpenssh.apply((k) => k.trim()),
      };
    };
    this.hostKeys = Object.fromEntries(
      args.hostRoles.map((role, i) => [
        role,
        key(
          `${name}-host-key-${role}`,
          // No parent in the alias: this LabAccess (@pulumi/pulumi runtime/resource.js
          // mapAliasesForRequest sends the resource's own), and through its own alias
          // (inherited, resource.js allAliases) the old LabAccess's `${oldName}-host-key`.
          args.formerly && i === 0 ? { aliases: [{ name: `${name}-host-key` }] } : {},
        ),
      ]),
    );
    if (args.peerKey) this.peerKey = key(`${name}-peer-key`);
    const first = Object.values(this.hostKeys)[0];
    if (first === undefined) throw new Error(`${name}: hostRoles must name at least one host`);

    // The tls provider marks private keys secret; saying so here as well keeps them secret
    // whatever the provider does, and lets the unit tests (mocks) check it.
    this.privateKey = pulumi.secret(userKey.privateKeyOpenssh);
    this.publicKey = userKey.publicKeyOpenssh;
    this.keyName = keyPair.keyName;
    this.hostPrivateKey = first.privateKeyOpenssh;
    this.hostPublicKey = first.publicKeyOpenssh;

    this.registerOutputs({
      publicKey: this.publicKey,
      keyName: this.keyName,
      hostPublicKey: this.hostPublicKey,
    });
  }
}
