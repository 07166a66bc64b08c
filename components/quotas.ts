/**
 * The account quotas a class runs into, read before any resource is created (index.ts awaits
 * the check, as it does resolveSshCidrs): a default account has 5 Elastic IPs per region, and
 * the sixth host of a class failed with AddressLimitExceeded, leaving a half-built class; a new
 * account's on-demand vCPU quota can be smaller than a class of t3.small hosts.
 *
 * What counts:
 * - Elastic IPs (quota L-0263D0A3): every address allocated in the region counts, associated
 *   or not (DescribeAddresses through `aws.ec2.getEips`). The stack's own addresses (tagged
 *   Project=criu-lab and Stack=<stack>, as components/tags.ts tags them) are already among
 *   them: the class needs only its hosts minus those, so an update of a built class never
 *   refuses itself. Two criu-lab stacks of the same name in one account and region (another
 *   deployer's `dev`) share those tags: each then counts the other's addresses as its own, and
 *   the check can pass a class AWS will stop; it never refuses one that fits.
 * - On-demand vCPUs (quota L-1216C47A, the "Standard" families A, C, D, H, I, M, R, T, Z): the
 *   class's hosts running at once must fit. Other running instances count too, but reading
 *   their types would mean describing every instance of the account; the check compares the
 *   class alone and says the others count. Types of other families (G, P, X, Inf, Trn...) have
 *   quotas of their own: the check says it skipped them.
 *
 * A quota that cannot be read (e.g. AccessDenied: servicequotas:GetServiceQuota is not in
 * every deployer's policy) is skipped with a warning rather than refused: the check is a guard
 * that saves a half-built class, not a permission the lab needs.
 *
 * In a preview (`pulumi preview`, the preview of `pulumi up`, the offline plan) a shortfall is
 * a warning, since the offline plan answers with placeholders; the update itself stops before
 * anything is created.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE } from "./config";
import { Tags } from "./tags";

export const ELASTIC_IP_QUOTA = "L-0263D0A3";
export const STANDARD_VCPU_QUOTA = "L-1216C47A";

/**
 * Family prefixes (the letters before the generation digit) under the Standard on-demand
 * quota: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances". i-family variants
 * (im4gn, is4gen) are storage-optimised I; Inf, Trn, DL, HPC, Mac and U have quotas of their own.
 * https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html
 */
const STANDARD_FAMILIES = new Set(["a", "c", "d", "h", "i", "im", "is", "m", "r", "t", "z"]);

/** True when `instanceType` counts against the Standard on-demand vCPU quota. */
export function isStandardFamily(instanceType: string): boolean {
  const letters = /^([a-z]+)\d/.exec(instanceType)?.[1];
  return letters !== undefined && STANDARD_FAMILIES.has(letters);
}

/**
 * Where to ask for more of a quota: the Service Quotas console in the region (the console's
 * own region when the provider did not say which).
 */
export function quotaUrl(region: string | undefined, quotaCode = ""): string {
  const host = region ? `${region}.console.aws.amazon.com` : "console.aws.amazon.com";
  return `https://${host}/servicequotas/home/services/ec2/quotas/${quotaCode}`.replace(/\/$/, "");
}

/** A read that may fail: the value, or why it could not be read. */
export type Read<T> = { value: T } | { error: string };

export interface QuotaFacts {
  /** The deploy region, as the quota lookup reports it (undefined when it did not). */
  region?: string;
  instanceType: string;
  /** Hosts of the stack: seats x hostsPerSeat. */
  hosts: number;
  elasticIpQuota: Read<number>;
  /** Addresses allocated in the region, and those of them tagged with this stack. */
  addresses: Read<{ all: number; ours: number }>;
  /** Undefined when the type is outside the Standard families (not read). */
  vcpuQuota?: Read<number>;
  vcpusPerHost: Read<number>;
}

export interface QuotaAssessment {
  /** What the check found, one line each (shown by `pulumi up` and the offline plan). */
  found: string[];
  /** Quotas that could not be read or were not checked. */
  skipped: string[];
  /** Shortfalls: each says the numbers, what to request and where. */
  short: string[];
}

const errorOf = <T>(read: Read<T>): string | undefined =>
  "error" in read ? read.error : undefined;

/** The check itself, on the numbers read: pure, for the tests. */
export function assessQuotas(f: QuotaFacts): QuotaAssessment {
  const result: QuotaAssessment = { found: [], skipped: [], short: [] };
  const { hosts } = f;
  const region = f.region ?? "this region";
  const regionFlag = f.region ? ` --region ${f.region}` : "";

  const eipError = errorOf(f.elasticIpQuota) ?? errorOf(f.addresses);
  if ("value" in f.elasticIpQuota && "value" in f.addresses) {
    const quota = f.elasticIpQuota.value;
    const { all, ours } = f.addresses.value;
    const needed = Math.max(0, hosts - ours);
    const free = Math.max(0, quota - all);
    result.found.push(
      `Elastic IPs in ${region}: quota ${quota} (${ELASTIC_IP_QUOTA}), ${all} allocated ` +
        `(${ours} of them this stack's); this stack needs ${hosts} (one a host), ${needed} new`,
    );
    if (needed > free) {
      const wanted = all - ours + hosts;
      result.short.push(
        `${hosts} hosts need ${needed} new Elastic IPs, but ${region} allows ${quota} ` +
          `(quota ${ELASTIC_IP_QUOTA}) and ${all} are allocated, so only ${free} more can be. ` +
          `Ask for ${wanted} or more: ${quotaUrl(f.region, ELASTIC_IP_QUOTA)} (or \`aws ` +
          `service-quotas request-service-quota-increase --service-code ec2 --quota-code ` +
          `${ELASTIC_IP_QUOTA} --desired-value ${wanted}${regionFlag}\`), or release ` +
          `addresses nothing uses, or lower ${CONFIG_NAMESPACE}:seats.`,
      );
    }
  } else {
    result.skipped.push(
      `Elastic IPs (${ELASTIC_IP_QUOTA}) not checked: ${eipError}. This stack needs ${hosts}; ` +
        `past the quota, \`pulumi up\` stops at AddressLimitExceeded with part of the class built.`,
    );
  }

  if (f.vcpuQuota === undefined) {
    result.skipped.push(
      `On-demand vCPUs not checked: ${f.instanceType} is not in the Standard families (A, C, D, ` +
        `H, I, M, R, T, Z) of quota ${STANDARD_VCPU_QUOTA}; its family has a quota of its own ` +
        `(${quotaUrl(f.region)}).`,
    );
  } else {
    const quotaError = errorOf(f.vcpuQuota) ?? errorOf(f.vcpusPerHost);
    if ("value" in f.vcpuQuota && "value" in f.vcpusPerHost) {
      const quota = f.vcpuQuota.value;
      const needed = hosts * f.vcpusPerHost.value;
      result.found.push(
        `On-demand Standard vCPUs in ${region}: quota ${quota} (${STANDARD_VCPU_QUOTA}); ` +
          `this stack needs ${needed} (${hosts} x ${f.instanceType}, ${f.vcpusPerHost.value} ` +
          "each) while all its hosts run; other running instances count too",
      );
      if (needed > quota) {
        result.short.push(
          `${hosts} x ${f.instanceType} need ${needed} vCPUs running at once, but ${region} ` +
            `allows ${quota} on-demand Standard vCPUs (quota ${STANDARD_VCPU_QUOTA}), and ` +
            `other running instances count too. Ask for ${needed} or more plus what else ` +
            `runs: ${quotaUrl(f.region, STANDARD_VCPU_QUOTA)} (or \`aws service-quotas ` +
            `request-service-quota-increase --service-code ec2 --quota-code ` +
            `${STANDARD_VCPU_QUOTA} --desired-value ${needed}${regionFlag}\`), or lower ` +
            `${CONFIG_NAMESPACE}:seats, or pick a smaller ${CONFIG_NAMESPACE}:instanceType.`,
        );
      }
    } else {
      result.skipped.push(
        `On-demand vCPUs (${STANDARD_VCPU_QUOTA}) not checked: ${quotaError}. Past the quota, ` +
          "`pulumi up` stops at VcpuLimitExceeded with part of the class built.",
      );
    }
  }
  return result;
}

/** The reads, through the AWS provider's invokes (so mocks and the offline plan answer them). */
export interface QuotaLookups {
  quota(quotaCode: string): Promise<{ value: number; region: string }>;
  addresses(tags?: Tags): Promise<number>;
  vcpus(instanceType: string): Promise<number>;
}

export const awsQuotaLookups: QuotaLookups = {
  quota: async (quotaCode) => {
    const q = await aws.servicequotas.getServiceQuota({ serviceCode: "ec2", quotaCode });
    return { value: q.value, region: q.region };
  },
  addresses: async (tags) => (await aws.ec2.getEips(tags ? { tags } : {})).allocationIds.length,
  vcpus: async (instanceType) => (await aws.ec2.getInstanceType({ instanceType })).defaultVcpus,
};

/** An invoke's failure as one line: the provider's message without its trailing detail. */
function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.trim().split("\n")[0] || "the lookup failed without a message";
}

async function read<T>(lookup: () => Promise<T>): Promise<Read<T>> {
  try {
    return { value: await lookup() };
  } catch (err) {
    return { error: reasonOf(err) };
  }
}

export interface QuotaCheckArgs {
  instanceType: string;
  hosts: number;
  /** The stack's Project and Stack tags, which its addresses carry. */
  tags: Tags;
  /** A preview warns of a shortfall; an update refuses. Default: pulumi.runtime.isDryRun(). */
  preview?: boolean;
}

/**
 * Reads the quotas and the addresses in use, logs what it found, and throws a RunError on a
 * shortfall in an update (a warning in a preview). Returns the assessment.
 */
export async function checkQuotas(
  args: QuotaCheckArgs,
  lookups: QuotaLookups = awsQuotaLookups,
): Promise<QuotaAssessment> {
  const standard = isStandardFamily(args.instanceType);
  const [elasticIpQuota, all, ours, vcpuQuota, vcpusPerHost] = await Promise.all([
    read(() => lookups.quota(ELASTIC_IP_QUOTA)),
    read(() => lookups.addresses()),
    read(() => lookups.addresses(args.tags)),
    standard ? read(() => lookups.quota(STANDARD_VCPU_QUOTA)) : Promise.resolve(undefined),
    read(() => lookups.vcpus(args.instanceType)),
  ]);
  const region =
    ("value" in elasticIpQuota && elasticIpQuota.value.region) ||
    (vcpuQuota && "value" in vcpuQuota && vcpuQuota.value.region) ||
    undefined;
  const addresses: Read<{ all: number; ours: number }> =
    "value" in all && "value" in ours
      ? { value: { all: all.value, ours: ours.value } }
      : { error: errorOf(all) ?? errorOf(ours) ?? "" };
  const assessment = assessQuotas({
    region,
    instanceType: args.instanceType,
    hosts: args.hosts,
    elasticIpQuota:
      "value" in elasticIpQuota ? { value: elasticIpQuota.value.value } : elasticIpQuota,
    addresses,
    vcpuQuota: vcpuQuota && ("value" in vcpuQuota ? { value: vcpuQuota.value.value } : vcpuQuota),
    vcpusPerHost,
  });

  const prefix = "criu-lab quota check: ";
  for (const line of assessment.found) void pulumi.log.info(prefix + line);
  for (const line of assessment.skipped) void pulumi.log.warn(prefix + line);
  if (assessment.short.length > 0) {
    const text =
      assessment.short.join("\n") +
      "\nAn increase is often granted within minutes; some requests go to AWS Support for " +
      "review and take a few days.";
    if (args.preview ?? pulumi.runtime.isDryRun()) {
      void pulumi.log.warn(`${prefix}\`pulumi up\` will stop before creating anything: ${text}`);
    } else {
      throw new pulumi.RunError(`criu-lab: not enough quota; nothing was created. ${text}`);
    }
  }
  return assessment;
}
