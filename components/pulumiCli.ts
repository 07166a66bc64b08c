/**
 * The Pulumi CLI this program needs, checked before anything else (index.ts awaits it). What
 * sets the floor, from pulumi/pulumi's own sources and changelog:
 * - `requirePulumiVersion` is the engine's RequirePulumiVersion call, first in CLI 3.217.0
 *   (3.216 named it CheckPulumiVersion): an older engine answers UNIMPLEMENTED, which the SDK
 *   reports as "does not support the `RequirePulumiVersion` RPC".
 * - Before 3.226.0 a preview compared a resource's replacementTrigger as sent by the program
 *   (wrapped) with the plain value in the state (https://github.com/pulumi/pulumi/pull/22119):
 *   every Stash with a trigger (the image, the zone) and, after a new Canonical image, every
 *   host with its address association, file copy and verification previewed as replaced,
 *   though the update itself replaced nothing.
 * - An engine older than 3.208 refuses `pulumi:index:Stash` as an unknown resource type.
 * So 3.226.0: the first CLI whose preview shows what the update does.
 */
import * as pulumi from "@pulumi/pulumi";

/** The oldest CLI that runs this program and previews it truthfully. */
export const PULUMI_CLI_MINIMUM = "3.226.0";
/** The range passed to the engine (blang/semver syntax, as requirePulumiVersion takes it). */
export const PULUMI_CLI_RANGE = `>=${PULUMI_CLI_MINIMUM}`;

export const PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/iac/download-install/";

/** The engine's version check; injectable for the tests (Pulumi mocks have no engine). */
export type VersionCheck = (range: string) => Promise<void>;

/** Refuses an older CLI with what it lacks and how to upgrade (a RunError: no stack trace). */
export async function requirePulumiCli(
  check: VersionCheck = (range) => pulumi.requirePulumiVersion(range),
): Promise<void> {
  await check(PULUMI_CLI_RANGE).catch((err: unknown) => {
    const reason = err instanceof Error ? err.message : String(err);
    throw new pulumi.RunError(
      `criu-lab needs Pulumi CLI ${PULUMI_CLI_MINIMUM} or newer (${PULUMI_CLI_RANGE}): older ` +
        "engines lack the version check (before 3.217.0) or preview every kept image and zone, " +
        `and with them the hosts, as replaced when nothing is (before 3.226.0): ${reason}. ` +
        `Upgrade the CLI: ${PULUMI_INSTALL_URL}`,
    );
  });
}
