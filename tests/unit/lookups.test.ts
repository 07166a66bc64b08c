/** The pure halves of the lookups: image query, architecture choice, zone choice. */
import { describe, expect, it } from "vitest";
import {
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
  it("picks the first zone by name whatever order EC2 answers in", () => {
    expect(pickAvailabilityZone("t3.small", ["ap-southeast-1c", "ap-southeast-1a"])).toBe(
      "ap-southeast-1a",
    );
    expect(pickAvailabilityZone("t3.small", ["ap-southeast-1a", "ap-southeast-1c"])).toBe(
      "ap-southeast-1a",
    );
  });
  it("says so when no zone offers the type", () => {
    expect(() => pickAvailabilityZone("p5.48xlarge", [])).toThrow(
      /criu-lab:instanceType: "p5.48xlarge" is not offered in any availability zone/,
    );
  });
});
