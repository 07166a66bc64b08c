/**
 * The criu-lab Pulumi program: read and validate the config, resolve `auto` SSH CIDRs, build
 * the lab, export its outputs (names in docs/design.md "Contracts"). An async program so that a bad
 * config, a Pulumi CLI too old (components/pulumiCli.ts), an unresolvable `auto` or a class past
 * the account's quotas (components/quotas.ts) fails before any resource is created.
 */
import { loadConfig } from "./components/config";
import { CriuLab } from "./components/lab";
import { requirePulumiCli } from "./components/pulumiCli";
import { checkQuotas } from "./components/quotas";
import { resolveSshCidrs } from "./components/sshCidrs";
import { labTags } from "./components/tags";

export = async () => {
  const config = loadConfig();
  await requirePulumiCli();
  const sshAllowedCidrs = await resolveSshCidrs(config.sshAllowedCidrs);
  await checkQuotas({
    instanceType: config.instanceType,
    hosts: config.seats * config.hostsPerSeat,
    tags: labTags(),
  });
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
    // With an instance id, what `aws ec2 start-instances` needs: criu-lab-verify names it.
    region: lab.region,
    // Per seat its hosts and key (secret): what criu-lab-verify --stack and criu-lab-handout
    // read. A one-host lab is seat 01.
    seats: lab.seatsOutput,
  };
};
