/**
 * The quota check before anything is created (components/quotas.ts): the numbers it compares
 * (pure), then the real reads through the AWS provider's invokes under the mocks: the
 * addresses this stack already holds, a denied Service Quotas read, a preview.
 */
import * as pulumi from "@pulumi/pulumi";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type * as Quotas from "../../components/quotas";
import { LabMocks, setupMocks } from "./support/mocks";

let mocks: LabMocks;
let quotas: typeof Quotas;

beforeAll(async () => {
  mocks = await setupMocks();
  quotas = await import("../../components/quotas");
});

const facts = (overrides: Partial<Quotas.QuotaFacts> = {}): Quotas.QuotaFacts => ({
  region: "ap-southeast-1",
  instanceType: "t3.small",
  hosts: 1,
  elasticIpQuota: { value: 5 },
  addresses: { value: { all: 0, ours: 0 } },
  vcpuQuota: { value: 32 },
  vcpusPerHost: { value: 2 },
  ...overrides,
});

describe("assessQuotas", () => {
  it("refuses the sixth host of a default account (5 Elastic IPs), with the numbers and where to ask", () => {
    const { short, found } = quotas.assessQuotas(facts({ hosts: 6 }));
    expect(found[0]).toBe(
      "Elastic IPs in ap-southeast-1: quota 5 (L-0263D0A3), 0 allocated (0 of them this " +
        "stack's); this stack needs 6 (one a host), 6 new",
    );
    expect(short).toHaveLength(1);
    expect(short[0]).toContain(
      "6 hosts need 6 new Elastic IPs, but ap-southeast-1 allows 5 (quota L-0263D0A3) and 0 " +
        "are allocated, so only 5 more can be. Ask for 6 or more: " +
        "https://ap-southeast-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-0263D0A3",
    );
    expect(short[0]).toContain("--quota-code L-0263D0A3 --desired-value 6 --region ap-southeast-1");
    expect(quotas.assessQuotas(facts({ hosts: 5 })).short).toEqual([]);
  });

  it("counts this stack's own addresses as its own: an update of a built class passes", () => {
    const built = facts({ hosts: 5, addresses: { value: { all: 5, ours: 5 } } });
    expect(quotas.assessQuotas(built).short).toEqual([]);
    // One more seat: one new address, none free.
    const grown = facts({ hosts: 6, addresses: { value: { all: 5, ours: 5 } } });
    expect(quotas.assessQuotas(grown).short[0]).toContain("6 hosts need 1 new Elastic IPs");
  });

  it("counts other addresses of the region: they take the room first", () => {
    const others = facts({ hosts: 3, addresses: { value: { all: 3, ours: 0 } } });
    const [line] = quotas.assessQuotas(others).short;
    expect(line).toContain("3 hosts need 3 new Elastic IPs");
    expect(line).toContain("3 are allocated, so only 2 more can be. Ask for 6 or more");
  });

  it("refuses a class whose hosts need more on-demand vCPUs than the quota", () => {
    // 50 seats x 2 hosts x t3.small (2 vCPUs): 200.
    const big = facts({
      hosts: 100,
      elasticIpQuota: { value: 120 },
      vcpuQuota: { value: 32 },
    });
    const { short, found } = quotas.assessQuotas(big);
    expect(found[1]).toContain(
      "quota 32 (L-1216C47A); this stack needs 200 (100 x t3.small, 2 each)",
    );
    expect(short).toHaveLength(1);
    expect(short[0]).toContain(
      "100 x t3.small need 200 vCPUs running at once, but ap-southeast-1 allows 32 on-demand " +
        "Standard vCPUs (quota L-1216C47A)",
    );
    expect(short[0]).toContain("/servicequotas/home/services/ec2/quotas/L-1216C47A");
  });

  it("skips what it cannot read, saying why and what happens past the quota", () => {
    const denied =
      "AccessDeniedException: not authorized to perform: servicequotas:GetServiceQuota";
    const { short, skipped, found } = quotas.assessQuotas(
      facts({ hosts: 6, elasticIpQuota: { error: denied }, vcpuQuota: { error: denied } }),
    );
    expect(short).toEqual([]);
    expect(found).toEqual([]);
    expect(skipped[0]).toBe(
      `Elastic IPs (L-0263D0A3) not checked: ${denied}. This stack needs 6; past the quota, ` +
        "`pulumi up` stops at AddressLimitExceeded with part of the class built.",
    );
    expect(skipped[1]).toContain(`On-demand vCPUs (L-1216C47A) not checked: ${denied}`);
  });

  it("names no region it was not told (the console's own region instead)", () => {
    const [line] = quotas.assessQuotas(facts({ hosts: 6, region: undefined })).short;
    expect(line).toContain("but this region allows 5");
    expect(line).toContain(
      "https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-0263D0A3 ",
    );
    expect(line).toContain("--desired-value 6`");
  });

  it("says a type outside the Standard families has a quota of its own (not checked)", () => {
    const gpu = quotas.assessQuotas(facts({ instanceType: "g5.xlarge", vcpuQuota: undefined }));
    expect(gpu.skipped).toEqual([
      expect.stringContaining(
        "g5.xlarge is not in the Standard families (A, C, D, H, I, M, R, T, Z)",
      ),
    ]);
  });

  it("knows which families the Standard quota covers", () => {
    for (const type of [
      "t3.small",
      "t4g.small",
      "m7g.large",
      "c6gn.large",
      "r7i.large",
      "z1d.large",
      "im4gn.large",
      "i4i.large",
      "d3en.xlarge",
      "h1.2xlarge",
      "a1.large",
    ]) {
      expect(quotas.isStandardFamily(type), type).toBe(true);
    }
    for (const type of [
      "g5.xlarge",
      "p4d.24xlarge",
      "inf2.xlarge",
      "trn1.2xlarge",
      "dl1.24xlarge",
      "x2idn.16xlarge",
      "u-6tb1.metal",
      "mac1.metal",
      "hpc7g.4xlarge",
      "vt1.3xlarge",
      "f1.2xlarge",
    ]) {
      expect(quotas.isStandardFamily(type), type).toBe(false);
    }
  });
});

describe("checkQuotas through the provider's invokes", () => {
  const QUOTA = "aws:servicequotas/getServiceQuota:getServiceQuota";
  const EIPS = "aws:ec2/getEips:getEips";
  const saved = {
    quota: undefined as LabMocks["answers"][string] | undefined,
    eips: undefined as LabMocks["answers"][string] | undefined,
  };
  const tags = { Project: "criu-lab", Stack: "dev" };

  beforeAll(() => {
    saved.quota = mocks.answers[QUOTA];
    saved.eips = mocks.answers[EIPS];
  });
  afterEach(() => {
    mocks.answers[QUOTA] = saved.quota!;
    mocks.answers[EIPS] = saved.eips!;
    vi.restoreAllMocks();
  });

  it("reads both quotas of ec2, every address and this stack's (by its tags)", async () => {
    mocks.invokes.length = 0;
    // Five addresses in the region, three of them this stack's (a class of three seats).
    mocks.answers[EIPS] = (inputs) => ({
      allocationIds: inputs.tags ? ["a", "b", "c"] : ["a", "b", "c", "x", "y"],
    });
    const info = vi.spyOn(pulumi.log, "info");
    const result = await quotas.checkQuotas({ instanceType: "t3.small", hosts: 3, tags });
    expect(result.short).toEqual([]);
    expect(
      mocks
        .invokesOf(QUOTA)
        .map((i) => i.inputs)
        .sort((a, b) => (a.quotaCode < b.quotaCode ? -1 : 1)),
    ).toEqual([
      { serviceCode: "ec2", quotaCode: "L-0263D0A3" },
      { serviceCode: "ec2", quotaCode: "L-1216C47A" },
    ]);
    expect(mocks.invokesOf(EIPS).map((i) => i.inputs)).toContainEqual({ tags });
    expect(info.mock.calls.map(([m]) => m)).toContainEqual(
      "criu-lab quota check: Elastic IPs in ap-southeast-1: quota 5 (L-0263D0A3), 5 allocated " +
        "(3 of them this stack's); this stack needs 3 (one a host), 0 new",
    );
  });

  it("refuses an update past the quota before anything is created (a RunError, no stack trace)", async () => {
    const error = (await quotas
      .checkQuotas({ instanceType: "t3.small", hosts: 6, tags, preview: false })
      .catch((err: unknown) => err)) as Error;
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect(error.message).toMatch(
      /^criu-lab: not enough quota; nothing was created\. 6 hosts need 6 new Elastic IPs/,
    );
    expect(error.message).toContain("take a few days");
  });

  it("warns in a preview instead, with the same numbers", async () => {
    const warn = vi.spyOn(pulumi.log, "warn");
    await quotas.checkQuotas({ instanceType: "t3.small", hosts: 6, tags, preview: true });
    expect(warn.mock.calls.map(([m]) => m)).toContainEqual(
      expect.stringMatching(
        /^criu-lab quota check: `pulumi up` will stop before creating anything: 6 hosts need 6 new Elastic IPs/,
      ),
    );
  });

  it("goes on with a warning when Service Quotas is denied (AccessDenied)", async () => {
    // The provider's failure as the engine reports it (terraform-provider-aws, GetServiceQuota).
    mocks.answers[QUOTA] = () => {
      throw new Error(
        "reading Service Quotas Service Quota (ec2/L-0263D0A3): operation error Service Quotas: " +
          "GetServiceQuota, https response error StatusCode: 400, api error " +
          "AccessDeniedException: User is not authorized to perform: servicequotas:GetServiceQuota",
      );
    };
    const warn = vi.spyOn(pulumi.log, "warn");
    const result = await quotas.checkQuotas({
      instanceType: "t3.small",
      hosts: 6,
      tags,
      preview: false,
    });
    expect(result.short).toEqual([]);
    const warnings = warn.mock.calls.map(([m]) => m);
    expect(warnings).toContainEqual(
      expect.stringMatching(
        /^criu-lab quota check: Elastic IPs \(L-0263D0A3\) not checked: .*AccessDeniedException.*This stack needs 6/,
      ),
    );
    expect(warnings).toContainEqual(
      expect.stringContaining("On-demand vCPUs (L-1216C47A) not checked"),
    );
  });
});
