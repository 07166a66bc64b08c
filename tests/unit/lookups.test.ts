/** The pure halves of the lookups: image query, architecture choice, zone choice. */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import {
  AVAILABILITY_ZONES_QUERY,
  CANONICAL_OWNER_ID,
  architectureFor,
  pickAvailabilityZone,
  ubuntuAmiQuery,
} from "../../components/lookups";

describe("ubuntuAmiQuery", () => {
  const nameFilter = (q: ReturnType<typeof ubuntuAmiQuery>) =>
    q.filters?.find((f) => f.name === "name")?.values;
  const archFilter = (q: ReturnType<typeof ubuntuAmiQuery>) =>
    q.filters?.find((f) => f.name === "architecture")?.values;

  it("asks Canonical (099720109477) for the newest image", () => {
    const q = ubuntuAmiQuery("24.04", "x86_64");
    expect(CANONICAL_OWNER_ID).toBe("099720109477");
    expect(q.owners).toEqual(["099720109477"]);
    expect(q.mostRecent).toBe(true);
  });

  it.each([
    ["24.04", "x86_64", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"],
    ["24.04", "arm64", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*"],
    ["22.04", "x86_64", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"],
    ["22.04", "arm64", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*"],
  ] as const)("%s on %s matches %s", (release, arch, name) => {
    const q = ubuntuAmiQuery(release, arch);
    expect(nameFilter(q)).toEqual([name]);
    expect(archFilter(q)).toEqual([arch]);
  });
});

describe("architectureFor", () => {
  it("prefers what EC2 reports", () => {
    expect(architectureFor("t3.small", ["i386", "x86_64"])).toBe("x86_64");
    expect(architectureFor("t4g.small", ["arm64"])).toBe("arm64");
  });
  it("rejects types without a Linux server image, naming the key", () => {
    expect(() => architectureFor("mac2.metal", ["arm64_mac"])).toThrow(
      /criu-lab:instanceType: "mac2.metal" supports \[arm64_mac\]; allowed: .*x86_64 or arm64/,
    );
  });
});

describe("pickAvailabilityZone", () => {
  const real = ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"];
  it("picks the first zone by name whatever order EC2 answers in", () => {
    expect(pickAvailabilityZone("t3.small", ["ap-southeast-1c", "ap-southeast-1a"], real)).toBe(
      "ap-southeast-1a",
    );
    expect(pickAvailabilityZone("t3.small", ["ap-southeast-1a", "ap-southeast-1c"], real)).toBe(
      "ap-southeast-1a",
    );
  });
  it("never picks a Local Zone, whose name sorts first", () => {
    const offered = ["us-west-2b", "us-west-2-lax-1a", "us-west-2a"];
    expect([...offered].sort()[0]).toBe("us-west-2-lax-1a");
    expect(pickAvailabilityZone("t3.small", offered, ["us-west-2a", "us-west-2b"])).toBe(
      "us-west-2a",
    );
  });
  it("keeps the lab's zone while it offers the type, though another sorts first", () => {
    const offered = ["ap-southeast-1c", "ap-southeast-1b", "ap-southeast-1a"];
    expect(pickAvailabilityZone("t3.large", offered, real, "ap-southeast-1b")).toBe(
      "ap-southeast-1b",
    );
    // The kept zone lacks the type: the first that offers it.
    expect(
      pickAvailabilityZone(
        "c7i.large",
        ["ap-southeast-1c", "ap-southeast-1a"],
        real,
        "ap-southeast-1b",
      ),
    ).toBe("ap-southeast-1a");
    // A kept value that is no real zone of the region (a Local Zone) is not kept.
    expect(
      pickAvailabilityZone(
        "t3.small",
        [...offered, "ap-southeast-1-bkk-1a"],
        real,
        "ap-southeast-1-bkk-1a",
      ),
    ).toBe("ap-southeast-1a");
  });
  it("says so when no zone offers the type", () => {
    expect(() => pickAvailabilityZone("p5.48xlarge", [], real)).toThrow(
      /criu-lab:instanceType: "p5.48xlarge" is not offered in any availability zone/,
    );
    // Offered only in a Local Zone is not offered for the lab.
    expect(() => pickAvailabilityZone("p5.48xlarge", ["ap-southeast-1-bkk-1a"], real)).toThrow(
      /is not offered in any availability zone/,
    );
  });
  it("throws RunErrors, which `pulumi up` prints without a stack trace", () => {
    let error: unknown;
    try {
      pickAvailabilityZone("p5.48xlarge", [], real);
    } catch (err) {
      error = err;
    }
    expect(pulumi.RunError.isInstance(error)).toBe(true);
  });
});

describe("AVAILABILITY_ZONES_QUERY", () => {
  it("asks only for available zones of zone-type availability-zone", () => {
    expect(AVAILABILITY_ZONES_QUERY).toEqual({
      state: "available",
      filters: [{ name: "zone-type", values: ["availability-zone"] }],
    });
  });
});
