/**
 * Property values as the Pulumi SDK serialises them over gRPC (a protobuf Struct with special
 * signature objects: https://github.com/pulumi/pulumi, sdk/nodejs/runtime/rpc.ts), turned into
 * plain data for the plan. A secret becomes the text SECRET here, before anything can print it.
 */

/** Plain data: what the printer and `--json` see. */
export type PlanValue =
  null | boolean | number | string | PlanValue[] | { [key: string]: PlanValue };

/** Shown instead of every secret value. */
export const SECRET = "[secret]";
/** Shown for a value that only exists after deploy (an output of a resource not yet created). */
export const UNKNOWN = "[known after deploy]";

// Signatures and the unknown sentinel of @pulumi/pulumi runtime/rpc.js (copied rather than
// imported: importing the SDK's runtime would load its whole gRPC client side into the CLI;
// tests/unit/plan-values.test.ts checks that they still match).
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e";
export const OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4";
export const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
export const ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7";
export const UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The name part of a URN (`urn:pulumi:stack::project::type::name`). */
export function urnName(urn: string): string {
  return urn.split("::").slice(3).join("::");
}

/** A serialised property value (from `Struct.toJavaScript()`) as plain plan data. */
export function toPlanValue(value: unknown): PlanValue {
  if (value === UNKNOWN_SENTINEL) return UNKNOWN;
  if (value === null || value === undefined) return null;
  if (typeof value === "boolean" || typeof value === "number" || typeof value === "string") {
    return value;
  }
  if (Array.isArray(value)) return value.map(toPlanValue);
  if (!isRecord(value)) return String(value);
  const sig = value[SIG_KEY];
  switch (sig) {
    case undefined:
      return Object.fromEntries(
        Object.entries(value)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => [k, toPlanValue(v)]),
      );
    case SECRET_SIG:
      return SECRET;
    case OUTPUT_SIG:
      if (value.secret === true) return SECRET;
      return "value" in value ? toPlanValue(value.value) : UNKNOWN;
    case RESOURCE_SIG:
      return `[resource ${urnName(String(value.urn))}]`;
    case ASSET_SIG:
      return `[asset ${String(value.path ?? value.uri ?? "(text)")}]`;
    case ARCHIVE_SIG:
      return `[archive ${String(value.path ?? value.uri ?? "(assets)")}]`;
    default:
      return `[unrecognised value ${String(sig)}]`;
  }
}

/** A Struct's fields as plan data. */
export function toPlanObject(value: unknown): Record<string, PlanValue> {
  const plan = toPlanValue(value);
  return isRecord(plan) ? (plan as Record<string, PlanValue>) : {};
}
