/**
 * The lookups the lab makes instead of hard-coding: the CPU architecture of the instance type,
 * an availability zone that offers it (kept once chosen), and Canonical's Ubuntu image for that
 * architecture.
 * The pure parts (filters, choices) are exported for the unit tests.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE, UbuntuRelease } from "./config";

/** Canonical's AWS account, the owner of the official Ubuntu images. */
export const CANONICAL_OWNER_ID = "099720109477";

export type Architecture = "x86_64" | "arm64";

/**
 * Image name prefixes as Canonical publishes them
 * (https://documentation.ubuntu.com/aws/aws-how-to/instances/find-ubuntu-images/): 24.04 images
 * live under hvm-ssd-gp3, 22.04 under hvm-ssd; the name says amd64 where EC2 says x86_64.
 */
const RELEASES: Record<UbuntuRelease, { codename: string; volume: string }> = {
  "24.04": { codename: "noble", volume: "hvm-ssd-gp3" },
  "22.04": { codename: "jammy", volume: "hvm-ssd" },
};

/** The getAmi arguments for the newest Canonical Ubuntu server image of a release and arch. */
export function ubuntuAmiQuery(release: UbuntuRelease, arch: Architecture): aws.ec2.GetAmiArgs {
  const { codename, volume } = RELEASES[release];
  const nameArch = arch === "x86_64" ? "amd64" : "arm64";
  return {
    owners: [CANONICAL_OWNER_ID],
    mostRecent: true,
    filters: [
      {
        name: "name",
        values: [`ubuntu/images/${volume}/ubuntu-${codename}-${release}-${nameArch}-server-*`],
      },
      { name: "architecture", values: [arch] },
      { name: "virtualization-type", values: ["hvm"] },
      { name: "root-device-type", values: ["ebs"] },
    ],
  };
}

/**
 * The image architecture for an instance type, from EC2's own `supportedArchitectures`
 * (DescribeInstanceTypes) rather than a name pattern: Graviton family names (a1, t4g, c6gn,
 * m8g, r8gd...) keep growing, and the lookup also fails early on a type the region lacks.
 */
export function architectureFor(
  instanceType: string,
  supportedArchitectures: readonly string[],
): Architecture {
  if (supportedArchitectures.includes("arm64")) return "arm64";
  if (supportedArchitectures.includes("x86_64")) return "x86_64";
  throw new pulumi.RunError(
    `${CONFIG_NAMESPACE}:instanceType: "${instanceType}" supports [${supportedArchitectures.join(", ")}]; ` +
      "allowed: a type with x86_64 or arm64 (Ubuntu server images exist for those)",
  );
}

/**
 * The DescribeAvailabilityZones filter for real availability zones only. An opted-in Local
 * Zone (us-west-2-lax-1a) or Wavelength Zone is also an "availability-zone" location to
 * DescribeInstanceTypeOfferings, and its name sorts before the region's own zones; it has no
 * internet gateway route of the usual kind and other prices.
 * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html
 */
export const AVAILABILITY_ZONES_QUERY: aws.GetAvailabilityZonesArgs = {
  state: "available",
  filters: [{ name: "zone-type", values: ["availability-zone"] }],
};

/**
 * A zone that offers the instance type and is a real availability zone of the region: `kept`
 * (the lab's zone) while it offers the type, else the first by name, so that repeated
 * `pulumi up`s keep the same subnet.
 */
export function pickAvailabilityZone(
  instanceType: string,
  offered: readonly string[],
  availabilityZones: readonly string[],
  kept?: string,
): string {
  const real = new Set(availabilityZones);
  const sorted = offered.filter((zone) => real.has(zone)).sort();
  if (sorted.length === 0) {
    throw new pulumi.RunError(
      `${CONFIG_NAMESPACE}:instanceType: "${instanceType}" is not offered in any availability ` +
        "zone of this region; allowed: a type the region offers (see `aws ec2 " +
        "describe-instance-type-offerings --location-type availability-zone`)",
    );
  }
  return kept !== undefined && sorted.includes(kept) ? kept : sorted[0];
}

/** Looks up the architecture of `instanceType` in the deploy region. */
export function lookupArchitecture(
  instanceType: string,
  opts: pulumi.InvokeOutputOptions,
): pulumi.Output<Architecture> {
  return aws.ec2
    .getInstanceTypeOutput({ instanceType }, opts)
    .apply((info) => architectureFor(instanceType, info.supportedArchitectures));
}

/** Looks up the availability zones (never Local Zones) of the deploy region offering `instanceType`. */
function lookupOfferedZones(
  instanceType: string,
  opts: pulumi.InvokeOutputOptions,
): pulumi.Output<{ offered: string[]; real: string[] }> {
  const offerings = aws.ec2.getInstanceTypeOfferingsOutput(
    {
      locationType: "availability-zone",
      filters: [{ name: "instance-type", values: [instanceType] }],
    },
    opts,
  );
  const zones = aws.getAvailabilityZonesOutput(AVAILABILITY_ZONES_QUERY, opts);
  return pulumi.all([offerings.locations, zones.names]).apply(([offered, real]) => ({
    offered,
    real,
  }));
}

/**
 * The lab subnet's availability zone, kept across `pulumi up`s in a Stash, as the image is:
 * the first zone (by name) offering the type when the Stash is made, then that zone for as long
 * as it offers the type. Without it, a new `instanceType`, or EC2 offering the type in a zone
 * whose name sorts first, re-picked the zone and replaced the subnet and every host with it,
 * though the lab's zone offered the type.
 *
 * The Stash has no replacementTrigger: the condition for a new zone (the kept one lacks the
 * type) depends on the kept value itself, which the program reads only after registering the
 * Stash. So when the kept zone lacks the type, the subnet moves to the first zone offering it
 * while the Stash still holds the old zone, and a warning gives the command that makes the new
 * zone the kept one. A stack made before the Stash existed gets one holding the zone picked
 * today: its subnet's zone, unless the type (or EC2's offerings) changed since.
 */
export function keptAvailabilityZone(
  name: string,
  instanceType: string,
  opts: pulumi.CustomResourceOptions & { parent: pulumi.Resource },
): { zone: pulumi.Output<string>; stash: pulumi.Stash } {
  const zones = lookupOfferedZones(instanceType, { parent: opts.parent });
  const stash = new pulumi.Stash(
    `${name}-zone`,
    {
      input: zones.apply(({ offered, real }) => pickAvailabilityZone(instanceType, offered, real)),
    },
    opts,
  );
  const zone = pulumi
    .all([zones, stash.output, stash.urn])
    .apply(([{ offered, real }, stored, urn]) => {
      const kept = typeof stored === "string" ? stored : undefined;
      const chosen = pickAvailabilityZone(instanceType, offered, real, kept);
      if (kept !== undefined && chosen !== kept) {
        void pulumi.log.warn(
          `${CONFIG_NAMESPACE}:instanceType: "${instanceType}" is not offered in the lab's ` +
            `zone ${kept}: the subnet moves to ${chosen}, which replaces every host. Once that ` +
            `\`pulumi up\` is done, keep ${chosen} as the lab's zone with ` +
            `\`pulumi up --replace '${urn}'\` (it replaces only the stash).`,
          stash,
        );
      }
      return chosen;
    });
  return { zone, stash };
}

/** Looks up the newest Canonical Ubuntu image id for the release and architecture. */
export function lookupUbuntuAmi(
  release: UbuntuRelease,
  arch: pulumi.Input<Architecture>,
  opts: pulumi.InvokeOutputOptions,
): pulumi.Output<string> {
  return pulumi
    .output(arch)
    .apply((a) => aws.ec2.getAmiOutput(ubuntuAmiQuery(release, a), opts))
    .apply((ami) => ami.id);
}
