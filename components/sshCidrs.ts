/**
 * Resolves `auto` in `criu-lab:sshAllowedCidrs` to the deployer's public IPv4 as a /32, before
 * any resource is created (index.ts awaits it), so a deployer whose address cannot be found
 * gets the exact command to set the key instead of a lab nobody can reach.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { AUTO_CIDR, CONFIG_NAMESPACE, SET_CIDR_HINT, isIpv4 } from "./config";

/** Returns the deployer's public IPv4 address (text; it is validated by the caller). */
export type PublicIpLookup = () => Promise<string>;

/** AWS's own "what is my IP" endpoint: it answers with the address and a newline. */
export const CHECKIP_COMMAND = "curl -fsS --max-time 10 https://checkip.amazonaws.com";

/**
 * The default lookup runs curl through the command provider's `command:local:run` invoke
 * rather than Node's fetch, so Pulumi mocks and the offline plan can answer it as an invoke.
 * `logging: "none"`: the provider otherwise logs the command's output, the deployer's own
 * address, on every preview and update.
 */
export const checkipLookup: PublicIpLookup = async () => {
  const result = await command.local.run({ command: CHECKIP_COMMAND, logging: "none" });
  return result.stdout;
};

/** The CIDR list with `auto` replaced by `<ip>/32`; throws how to set the key on failure. */
export async function resolveSshCidrs(
  cidrs: string[],
  lookup: PublicIpLookup = checkipLookup,
): Promise<string[]> {
  if (!cidrs.includes(AUTO_CIDR)) return cidrs;
  let answer: string;
  try {
    answer = (await lookup()).trim();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw autoFailure(reason.trim() || "the lookup failed without a message");
  }
  if (!isIpv4(answer)) {
    throw autoFailure(`the lookup answered ${JSON.stringify(answer.slice(0, 80))}, not an IPv4`);
  }
  const resolved = cidrs.map((cidr) => (cidr === AUTO_CIDR ? `${answer}/32` : cidr));
  return [...new Set(resolved)];
}

/** A RunError: `pulumi up` prints its message alone, without a stack trace. */
function autoFailure(reason: string): Error {
  return new pulumi.RunError(
    `${CONFIG_NAMESPACE}:sshAllowedCidrs is '${AUTO_CIDR}', but this machine's public IPv4 ` +
      `could not be found (${CHECKIP_COMMAND}: ${reason}). ` +
      `Set the addresses allowed to SSH in yourself, e.g.\n` +
      `  ${SET_CIDR_HINT}\n` +
      `(your address as a /32; add more with [1], [2]...).`,
  );
}
