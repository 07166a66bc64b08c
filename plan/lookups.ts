/**
 * The one table of answers to the provider lookups (invokes) the program makes, read by the
 * offline plan (plan/placeholders.ts: placeholder values, marked "looked up at deploy") and by
 * the unit tests' Pulumi mocks (tests/unit/support/mocks.ts: values of their own). Both answer
 * a lookup the same way from the values they pass in, so a change in what the program asks is
 * answered once, here. A lookup without an entry fails and names its token, so a new lookup in
 * the program is noticed rather than silently faked. No I/O: pure answers.
 */

/** What a lookup is answered from: the world the plan or a test pretends to deploy into. */
export interface LookupValues {
  region: string;
  /** The region's own zones, in the order EC2 lists them. */
  zones: string[];
  /**
   * Opted-in Local Zones: EC2 offers instance types there as "availability-zone" locations,
   * and DescribeAvailabilityZones leaves them out when asked for zone-type availability-zone.
   */
  localZones: string[];
  /** The image id the AMI lookup answers, by architecture. */
  amis: Record<"x86_64" | "arm64", string>;
  /** The VPC an existing subnet (`subnetId`) belongs to. */
  vpcId: string;
  /** What the deployer's public IP lookup (`sshAllowedCidrs: auto`) answers. */
  deployerIp: string;
}

/** A lookup's answer: the result the provider would return, and what it stands for. */
export interface LookupAnswer {
  /** The lookup's result as the provider would return it (the args echoed, plus answers). */
  result: Record<string, unknown>;
  /** What the answer stands for, for the plan's "lookups" section. */
  note: string;
  /** Answered strings that are only as good as the values passed in (the plan marks them). */
  placeholders: string[];
}

export class UnknownInvokeError extends Error {
  override name = "UnknownInvokeError";
  constructor(readonly token: string) {
    super(
      `the offline plan has no placeholder for the lookup '${token}': add one to plan/lookups.ts`,
    );
  }
}

export type LookupAnswers = Record<string, (args: Record<string, unknown>) => LookupAnswer>;

/** Graviton families have a `g` after the generation digit (t4g, m7g, c7gn, r8g...). */
export function architectureOf(instanceType: unknown): "arm64" | "x86_64" {
  const family = typeof instanceType === "string" ? instanceType.split(".")[0] : "";
  return /^[a-z]+\d+g/.test(family) ? "arm64" : "x86_64";
}

/**
 * vCPUs of a type from its size name, as most families number them (large 2, xlarge 4,
 * 8xlarge 32; smaller sizes 2, as t3's): a stand-in, EC2 answers at deploy.
 */
function vcpusOf(instanceType: unknown): number {
  const size = typeof instanceType === "string" ? (instanceType.split(".")[1] ?? "") : "";
  const match = /^(\d*)xlarge$/.exec(size);
  if (match) return 4 * Number(match[1] || "1");
  return 2;
}

const QUOTA_TOKEN = "aws:servicequotas/getServiceQuota:getServiceQuota";

/** The quotas the program reads (components/quotas.ts), answered with these values. */
export const DEFAULT_QUOTAS: Record<string, { name: string; value: number; why: string }> = {
  "L-0263D0A3": {
    name: "Elastic IPs per region",
    value: 5,
    why: "AWS's default (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html#using-instance-addressing-limit)",
  },
  "L-1216C47A": {
    name: "on-demand Standard vCPUs",
    value: 32,
    why: "a placeholder (accounts differ widely, new ones often have less)",
  },
};

/** Values of the filter `name` in an AWS lookup's `filters` argument. */
function filterValues(args: Record<string, unknown>, name: string): string[] | undefined {
  const filters = Array.isArray(args.filters) ? args.filters : [];
  for (const filter of filters) {
    if (typeof filter === "object" && filter !== null && "name" in filter && "values" in filter) {
      const f = filter as { name: unknown; values: unknown };
      if (f.name === name && Array.isArray(f.values)) {
        return f.values.filter((v): v is string => typeof v === "string");
      }
    }
  }
  return undefined;
}

const firstFilterValue = (args: Record<string, unknown>, name: string) =>
  filterValues(args, name)?.[0];

/** The answers to every lookup the program makes, from `values`. */
export function lookupAnswers(values: LookupValues): LookupAnswers {
  const { region, zones, localZones } = values;
  return {
    "aws:ec2/getAmi:getAmi": (args) => {
      const architecture = firstFilterValue(args, "architecture") === "arm64" ? "arm64" : "x86_64";
      const ami = values.amis[architecture];
      return {
        result: {
          ...args,
          id: ami,
          imageId: ami,
          name: firstFilterValue(args, "name") ?? "(the newest image matching the filters)",
          architecture,
          ownerId: Array.isArray(args.owners) ? args.owners[0] : undefined,
          rootDeviceName: "/dev/sda1",
          virtualizationType: "hvm",
        },
        note: "AMI id of the newest image matching the filters",
        placeholders: [ami],
      };
    },
    "aws:index/getAvailabilityZones:getAvailabilityZones": (args) => {
      // As EC2 filters: zone-type availability-zone leaves Local Zones out.
      const zoneTypes = filterValues(args, "zone-type");
      const names =
        zoneTypes === undefined || zoneTypes.includes("local-zone")
          ? [...zones, ...localZones]
          : zones;
      return {
        result: {
          ...args,
          id: region,
          names,
          zoneIds: names.map((_, i) => `zone-id-${i + 1}`),
          groupNames: names.map(() => region),
        },
        note: "availability zones of the region",
        placeholders: names,
      };
    },
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": (args) => {
      const locations = [...zones, ...localZones];
      const instanceType = firstFilterValue(args, "instance-type") ?? "t3.small";
      return {
        result: {
          ...args,
          id: region,
          instanceTypes: locations.map(() => instanceType),
          locations,
          locationTypes: locations.map(() => args.locationType ?? "availability-zone"),
        },
        note: `zones that offer ${instanceType}`,
        placeholders: locations,
      };
    },
    "aws:ec2/getInstanceType:getInstanceType": (args) => ({
      result: {
        ...args,
        id: String(args.instanceType),
        supportedArchitectures: [architectureOf(args.instanceType)],
        defaultVcpus: vcpusOf(args.instanceType),
      },
      note:
        `architecture and vCPUs of ${String(args.instanceType)} (from its family and size ` +
        "names; EC2's own figures at deploy)",
      placeholders: [],
    }),
    [QUOTA_TOKEN]: (args) => {
      const code = String(args.quotaCode);
      const known = DEFAULT_QUOTAS[code];
      if (known === undefined) throw new UnknownInvokeError(`${QUOTA_TOKEN} (quotaCode: ${code})`);
      return {
        result: {
          ...args,
          id: `ec2/${code}`,
          region,
          value: known.value,
          defaultValue: known.value,
          adjustable: true,
        },
        note: `${known.name}: ${known.value}, ${known.why}; your account's quota is read at deploy`,
        placeholders: [],
      };
    },
    "aws:ec2/getEips:getEips": (args) => ({
      result: { ...args, id: region, allocationIds: [], publicIps: [] },
      note:
        args.tags === undefined
          ? "Elastic IPs allocated in the region: none (a new account); counted at deploy"
          : "Elastic IPs of this stack (by its tags): none (a new stack); counted at deploy",
      placeholders: [],
    }),
    // The stopped-host lookup (components/instance.ts): every host runs, none is listed.
    "aws:ec2/getInstances:getInstances": (args) => ({
      result: {
        ...args,
        id: region,
        ids: [],
        instanceTags: {},
        ipv6Addresses: [],
        privateIps: [],
        publicIps: [],
        region,
      },
      note: "stopped hosts of the stack: none (every host runs); read at deploy",
      placeholders: [],
    }),
    "aws:ec2/getSubnet:getSubnet": (args) => ({
      // `subnetId` set: the subnet exists, its VPC and zone are read from AWS at deploy.
      result: {
        ...args,
        id: args.id,
        subnetId: args.id,
        vpcId: values.vpcId,
        availabilityZone: zones[0],
        mapPublicIpOnLaunch: true,
      },
      note: `VPC and zone of the existing subnet ${String(args.id)}`,
      placeholders: [values.vpcId],
    }),
    "aws:index/getRegion:getRegion": (args) => ({
      result: {
        ...args,
        id: region,
        name: region,
        region,
        endpoint: `ec2.${region}.amazonaws.com`,
      },
      note: "the stack's aws:region",
      placeholders: [],
    }),
    "command:local:run": (args) => {
      const cmd = typeof args.command === "string" ? args.command : "";
      // The only local command the program runs at plan time is the deployer's public IP
      // lookup (`sshAllowedCidrs: auto`); anything else is a new lookup that must not be faked.
      if (!/checkip|ipify|ifconfig|icanhazip|myip/i.test(cmd)) {
        throw new UnknownInvokeError(`command:local:run (command: ${cmd})`);
      }
      return {
        result: { ...args, stdout: `${values.deployerIp}\n`, stderr: "" },
        note: "the deployer's public IP",
        placeholders: [values.deployerIp],
      };
    },
  };
}
