/**
 * Tags on everything taggable: Name per resource, Project and Stack from the lab. Explicit
 * per-resource tags rather than the provider's defaultTags, so that the unit tests (Pulumi
 * mocks see each resource's inputs, not a provider's) can check every resource has them.
 */
import * as pulumi from "@pulumi/pulumi";

export type Tags = Record<string, string>;

/** The tags every resource of one lab shares. */
export function labTags(): Tags {
  return { Project: "criu-lab", Stack: pulumi.getStack() };
}

/** `base` plus this resource's Name. */
export function named(name: string, base: Tags | undefined): Tags {
  return { ...base, Name: name };
}
