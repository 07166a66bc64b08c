import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { Tags, named } from "./tags";

export interface LabAccessArgs {
  /** Tags for the EC2 key pair (the only taggable child); it also gets its own Name. */
  tags?: Tags;
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

  constructor(name: string, args: LabAccessArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:access:LabAccess", name, {}, opts);

    const userKey = new tls.PrivateKey(
      `${name}-user-key`,
      { algorithm: "ED25519" },
      { parent: this },
    );
    const keyPair = new aws.ec2.KeyPair(
      `${name}-key-pair`,
      { publicKey: userKey.publicKeyOpenssh, tags: named(`${name}-key-pair`, args.tags) },
      { parent: this },
    );
    const hostKey = new tls.PrivateKey(
      `${name}-host-key`,
      { algorithm: "ED25519" },
      { parent: this },
    );

    // The tls provider marks private keys secret; saying so here as well keeps them secret
    // whatever the provider does, and lets the unit tests (mocks) check it.
    this.privateKey = pulumi.secret(userKey.privateKeyOpenssh);
    this.publicKey = userKey.publicKeyOpenssh;
    this.keyName = keyPair.keyName;
    this.hostPrivateKey = pulumi.secret(hostKey.privateKeyOpenssh);
    this.hostPublicKey = hostKey.publicKeyOpenssh.apply((key) => key.trim());

    this.registerOutputs({
      publicKey: this.publicKey,
      keyName: this.keyName,
      hostPublicKey: this.hostPublicKey,
    });
  }
}
