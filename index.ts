/**
 * The criu-lab Pulumi program: read and validate the config, resolve `auto` SSH CIDRs, build
 * the lab, export its outputs (names in DESIGN.md's contract). An async program so that a bad
 * config or an unresolvable `auto` fails before any resource is created.
 */
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./components/config";
import { CriuLab } from "./components/lab";
import { resolveSshCidrs } from "./components/sshCidrs";

/**
 * The instance's `replacementTrigger` (a new Ubuntu release or architecture replaces the lab,
 * a newer build of the same image does not) needs the engine of Pulumi CLI 3.208.0 or later;
 * an older CLI would silently ignore it (https://github.com/pulumi/pulumi/pull/20936).
 */
const PULUMI_CLI_RANGE = ">=3.208.0";

export = async () => {
  const config = loadConfig();
  await pulumi.requirePulumiVersion(PULUMI_CLI_RANGE).catch((err: unknown) => {
    const reason = err instanceof Error ? err.message : String(err);
    throw new pulumi.RunError(
      `criu-lab needs Pulumi CLI ${PULUMI_CLI_RANGE} (its engine replaces the instance only ` +
        `when the Ubuntu release or architecture changes): ${reason}. Upgrade the CLI: ` +
        "https://www.pulumi.com/docs/iac/download-install/",
    );
  });
  const sshAllowedCidrs = await resolveSshCidrs(config.sshAllowedCidrs);
  const lab = new CriuLab("criu-lab", { ...config, sshAllowedCidrs });
  return {
    instanceId: lab.instanceId,
    publicIp: lab.publicIp,
    publicDns: lab.publicDns,
    amiId: lab.amiId,
    sshUser: lab.sshUser,
    sshCommand: lab.sshCommand,
    privateKey: lab.privateKey,
    knownHostsLine: lab.knownHostsLine,
    criuVersion: lab.criuVersion,
    verification: lab.verificationResult,
    doctor: lab.doctor,
    // Per seat its hosts and key (secret): what criu-lab-verify --stack and criu-lab-handout
    // read. A one-host lab is seat 01 (issue 10).
    seats: lab.seatsOutput,
  };
};
