/**
 * Answers to the provider lookups (invokes) the program makes. An offline plan has no cloud
 * account, so each answer is a placeholder that is valid for the program but marked "looked up
 * at deploy" wherever it shows in the plan. A lookup without an entry here fails the plan and
 * names its token, so a new lookup in the program is noticed rather than silently faked.
 */

/** Marks a value in the printed plan. */
export const LOOKED_UP_AT_DEPLOY = "looked up at deploy";

/** A documentation address (RFC 5737 TEST-NET-3): never a real deployer's IP. */
export const PLACEHOLDER_PUBLIC_IP = "203.0.113.10";
/** A well-formed AMI id that no region has. */
export const PLACEHOLDER_AMI = "ami-00000000000000000";
/** A well-formed VPC id that no account has. */
export const PLACEHOLDER_VPC = "vpc-00000000000000000";

export interface InvokeContext {
  /** `aws:region` from the stack config, when set. */
  region?: string;
}

export interface InvokeAnswer {
  /** The lookup's result as the provider would return it (the args echoed, plus answers). */
  result: Record<string, unknown>;
  /** What the placeholder stands for, for the plan's "lookups" section. */
  note: string;
  /** Placeholder strings: wherever one appears in a resource's inputs it is marked. */
  placeholders: string[];
}

export class UnknownInvokeError extends Error {
  override name = "UnknownInvokeError";
  constructor(readonly token: string) {
    super(
      `the offline plan has no placeholder for the lookup '${token}': add one to plan/placeholders.ts`,
    );
  }
}

type Answer = (args: Record<string, unknown>, ctx: InvokeContext) => InvokeAnswer;

/** The zones answered for a region: the first three letters, as most regions have. */
function zonesOf(ctx: InvokeContext): string[] {
  const region = ctx.region ?? "us-east-1";
  return ["a", "b", "c"].map((letter) => `${region}${letter}`);
}

/** Graviton families have a `g` after the generation digit (t4g, m7g, c7gn, r8g...). */
function architectureOf(instanceType: unknown): "arm64" | "x86_64" {
  const family = typeof instanceType === "string" ? instanceType.split(".")[0] : "";
  return /^[a-z]+\d+g/.test(family) ? "arm64" : "x86_64";
}

/**
 * vCPUs of a type from its size name, as most families number them (large 2, xlarge 4,
 * 8xlarge 32; smaller sizes 2, as t3's): a placeholder, EC2 answers at deploy.
 */
function vcpusOf(instanceType: unknown): number {
  const size = typeof instanceType === "string" ? (instanceType.split(".")[1] ?? "") : "";
  const match = /^(\d*)xlarge$/.exec(size);
  if (match) return 4 * Number(match[1] || "1");
  return 2;
}

const QUOTA_TOKEN = "aws:servicequotas/getServiceQuota:getServiceQuota";

/** What the plan answers for the quotas the program reads (components/quotas.ts). */
const DEFAULT_QUOTAS: Record<string, { name: string; value: number; why: string }> = {
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

/** First value of the filter `name` in an AWS lookup's `filters` argument. */
function filterValue(args: Record<string, unknown>, name: string): string | undefined {
  const filters = Array.isArray(args.filters) ? args.filters : [];
  for (const filter of filters) {
    if (typeof filter === "object" && filter !== null && "name" in filter && "values" in filter) {
      const f = filter as { name: unknown; values: unknown };
      if (f.name === name && Array.isArray(f.values) && typeof f.values[0] === "string") {
        return f.values[0];
      }
    }
  }
  return undefined;
}

const ANSWERS: Record<string, Answer> = {
  "aws:ec2/getAmi:getAmi": (args) => {
    const name = filterValue(args, "name") ?? "(the newest image matching the filters)";
    return {
      result: {
        ...args,
        id: PLACEHOLDER_AMI,
        imageId: PLACEHOLDER_AMI,
        name,
        architecture: filterValue(args, "architecture") ?? "x86_64",
        ownerId: Array.isArray(args.owners) ? args.owners[0] : undefined,
        rootDeviceName: "/dev/sda1",
        virtualizationType: "hvm",
      },
      note: "AMI id of the newest image matching the filters",
      placeholders: [PLACEHOLDER_AMI],
    };
  },
  "aws:index/getAvailabilityZones:getAvailabilityZones": (args, ctx) => {
    const names = zonesOf(ctx);
    return {
      result: {
        ...args,
        id: ctx.region ?? "us-east-1",
        names,
        zoneIds: names.map((_, i) => `zone-id-${i + 1}`),
        groupNames: names.map(() => ctx.region ?? "us-east-1"),
      },
      note: "availability zones of the region",
      placeholders: names,
    };
  },
  "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": (args, ctx) => {
    const names = zonesOf(ctx);
    const instanceType = filterValue(args, "instance-type") ?? "t3.small";
    return {
      result: {
        ...args,
        id: ctx.region ?? "us-east-1",
        instanceTypes: names.map(() => instanceType),
        locations: names,
        locationTypes: names.map(() => args.locationType ?? "availability-zone"),
      },
      note: `zones that offer ${instanceType}`,
      placeholders: names,
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
  "aws:servicequotas/getServiceQuota:getServiceQuota": (args, ctx) => {
    const code = String(args.quotaCode);
    const known = DEFAULT_QUOTAS[code];
    if (known === undefined) throw new UnknownInvokeError(`${QUOTA_TOKEN} (quotaCode: ${code})`);
    return {
      result: {
        ...args,
        id: `ec2/${code}`,
        region: ctx.region ?? "us-east-1",
        value: known.value,
        defaultValue: known.value,
        adjustable: true,
      },
      note: `${known.name}: ${known.value}, ${known.why}; your account's quota is read at deploy`,
      placeholders: [],
    };
  },
  "aws:ec2/getEips:getEips": (args, ctx) => ({
    result: { ...args, id: ctx.region ?? "us-east-1", allocationIds: [], publicIps: [] },
    note:
      args.tags === undefined
        ? "Elastic IPs allocated in the region: none (a new account); counted at deploy"
        : "Elastic IPs of this stack (by its tags): none (a new stack); counted at deploy",
    placeholders: [],
  }),
  "aws:ec2/getSubnet:getSubnet": (args, ctx) => ({
    // `subnetId` set: the subnet exists, its VPC and zone are read from AWS at deploy.
    result: {
      ...args,
      id: args.id,
      subnetId: args.id,
      vpcId: PLACEHOLDER_VPC,
      availabilityZone: zonesOf(ctx)[0],
      mapPublicIpOnLaunch: true,
    },
    note: `VPC and zone of the existing subnet ${String(args.id)}`,
    placeholders: [PLACEHOLDER_VPC],
  }),
  "aws:index/getRegion:getRegion": (args, ctx) => {
    const region = ctx.region ?? "us-east-1";
    return {
      result: {
        ...args,
        id: region,
        name: region,
        region,
        endpoint: `ec2.${region}.amazonaws.com`,
      },
      note: "the stack's aws:region",
      placeholders: [],
    };
  },
  "command:local:run": (args) => {
    const cmd = typeof args.command === "string" ? args.command : "";
    // The only local command the program runs at plan time is the deployer's public IP lookup
    // (`sshAllowedCidrs: auto`); anything else is a new lookup the plan must not fake.
    if (!/checkip|ipify|ifconfig|icanhazip|myip/i.test(cmd)) {
      throw new UnknownInvokeError(`command:local:run (command: ${cmd})`);
    }
    return {
      result: { ...args, stdout: `${PLACEHOLDER_PUBLIC_IP}\n`, stderr: "" },
      note: "the deployer's public IP",
      placeholders: [PLACEHOLDER_PUBLIC_IP],
    };
  },
};

/** Answers a lookup or throws UnknownInvokeError naming it. */
export function answerInvoke(
  token: string,
  args: Record<string, unknown>,
  ctx: InvokeContext,
): InvokeAnswer {
  const answer = ANSWERS[token];
  if (answer === undefined) throw new UnknownInvokeError(token);
  return answer(args, ctx);
}
