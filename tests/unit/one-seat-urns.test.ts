/**
 * A stack of one seat of one host keeps every resource across upgrades of this package: each
 * URN such a stack held (tests/unit/fixtures/one-seat-urns.json, recorded from the code
 * before a one-host lab became a class of one seat) is the URN, or an alias, of a resource the
 * program makes today, so the engine plans no replacement (docs/design.md "Contracts").
 *
 * Aliases are computed as @pulumi/pulumi does: a resource's own `aliases` collapsed to URNs,
 * and for each alias of its parent an inherited one (node_modules/@pulumi/pulumi/resource.js
 * `allAliases`, `inheritedChildAlias`: the child under the parent's old URN, its name's
 * parent prefix swapped for the old name). With alias specs (runtime/resource.js
 * `prepareResource`, `supportsAliasSpecs`) the engine does the same from the parent's full
 * alias set, inherited ones included, so the computation below recurses up the parents.
 */
import * as pulumi from "@pulumi/pulumi";
import { allAliases, createUrn } from "@pulumi/pulumi/resource";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LabMocks, setupMocks, valueOf } from "./support/mocks";
import { newLab, settled } from "./support/lab";
import type { CriuLab } from "../../components/lab";

let mocks: LabMocks;
let CriuLabClass: typeof CriuLab;

interface Made {
  resource: pulumi.Resource;
  name: string;
  type: string;
  custom: boolean;
  urn: string;
  aliases: string[];
}

const FIXTURE = join(__dirname, "fixtures", "one-seat-urns.json");

/** Every resource of the lab `criu-lab` (as index.ts names it) with its URN and aliases. */
async function buildLab(): Promise<Made[]> {
  const { log } = await settled(
    mocks,
    newLab(CriuLabClass, "criu-lab", {
      // Every kind of resource a one-host lab can have.
      verifyScenarios: ["training", "game"],
      budget: { monthlyUsd: 20, email: "teacher@example.com" },
    }),
  );
  // The lab's own transformations see the lab too: every resource is in the log.
  const entries = log.constructed;
  const byResource = new Map(entries.map((e) => [e.resource, e]));
  // The engine's URN, its type the chain of every ancestor's (resource.js `createUrn`); the
  // mocks' own URNs leave the parents out, so they are computed here.
  const known = new Map<pulumi.Resource, Promise<{ urn: string; aliases: string[] }>>();
  const identity = (resource: pulumi.Resource) => {
    const cached = known.get(resource);
    if (cached) return cached;
    const computed = (async () => {
      const entry = byResource.get(resource)!;
      const parent = entry.opts.parent;
      const parentEntry = parent ? byResource.get(parent) : undefined;
      if (!parent || !parentEntry) {
        const urn = await valueOf(createUrn(entry.name, entry.type));
        const own = (entry.opts.aliases ?? []).map((a) => valueOf(pulumi.output(a as string)));
        return { urn, aliases: await Promise.all(own) };
      }
      const p = await identity(parent);
      // The parent as allAliases reads it: its engine URN, its whole alias set.
      const asParent = Object.create(parent, {
        urn: { value: pulumi.output(p.urn) },
        __aliases: { value: p.aliases.map((a) => pulumi.output(a)) },
      }) as pulumi.Resource;
      const urn = await valueOf(createUrn(entry.name, entry.type, asParent));
      const aliases = allAliases(
        entry.opts.aliases ?? [],
        entry.name,
        entry.type,
        asParent,
        parentEntry.name,
      );
      return { urn, aliases: await Promise.all(aliases.map((a) => valueOf(a))) };
    })();
    known.set(resource, computed);
    return computed;
  };
  return Promise.all(
    entries.map(async (e) => ({
      resource: e.resource,
      name: e.name,
      type: e.type,
      custom: pulumi.CustomResource.isInstance(e.resource),
      ...(await identity(e.resource)),
    })),
  );
}

beforeAll(async () => {
  mocks = await setupMocks();
  CriuLabClass = (await import("../../components/lab")).CriuLab;
});

describe("a stack of one seat of one host, as made by code from before seats were one path", () => {
  let made: Made[];
  const recorded = JSON.parse(readFileSync(FIXTURE, "utf8")) as Array<{
    urn: string;
    custom: boolean;
  }>;

  beforeAll(async () => {
    made = await buildLab();
  });

  it("finds every recorded resource under its URN or an alias, each once", () => {
    const claims = recorded.map(({ urn }) => ({
      urn,
      by: made.filter((m) => m.urn === urn || m.aliases.includes(urn)).map((m) => m.urn),
    }));
    expect(claims.filter((c) => c.by.length !== 1)).toEqual([]);
  });

  it("adds no cloud resource (only components may be new)", () => {
    const old = new Set(recorded.map((r) => r.urn));
    const added = made.filter((m) => !old.has(m.urn) && !m.aliases.some((a) => old.has(a)));
    expect(added.filter((m) => m.custom).map((m) => m.urn)).toEqual([]);
  });

  it("recorded a whole lab (the fixture is not empty or partial)", () => {
    expect(recorded.filter((r) => r.custom).length).toBeGreaterThanOrEqual(20);
    expect(recorded.map((r) => r.urn)).toContain(
      "urn:pulumi:dev::criu-lab::criu-lab:lab:CriuLab$criu-lab:instance:LabInstance$aws:ec2/instance:Instance::criu-lab-host-instance",
    );
  });
});
