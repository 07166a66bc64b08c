/**
 * The criu-lab Pulumi program: read and validate the config, resolve `auto` SSH CIDRs, build
 * the lab, export its outputs (names in DESIGN.md's contract). An async program so that a bad
 * config or an unresolvable `auto` fails before any resource is created.
 */
import { loadConfig } from "./components/config";
import { CriuLab } from "./components/lab";
import { resolveSshCidrs } from "./components/sshCidrs";

export = async () => {
  const config = loadConfig();
  const sshAllowedCidrs = await resolveSshCidrs(config.sshAllowedCidrs);
  const lab = new CriuLab("criu-lab", { ...config, sshAllowedCidrs });
  return {
    instanceId: lab.instanceId,
    publicIp: lab.publicIp,
    publicDns: lab.publicDns,
    sshUser: lab.sshUser,
    sshCommand: lab.sshCommand,
    privateKey: lab.privateKey,
    knownHostsLine: lab.knownHostsLine,
    criuVersion: lab.criuVersion,
    verification: lab.verificationResult,
  };
};
