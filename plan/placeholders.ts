/**
 * The offline plan's answers to the provider lookups (invokes) the program makes. An offline
 * plan has no cloud account, so each answer comes from placeholder values that are valid for
 * the program but marked "looked up at deploy" wherever they show in the plan. The answers
 * themselves are the shared table in plan/lookups.ts, which the unit tests' mocks read too.
 */
import { LookupAnswer, lookupAnswers, UnknownInvokeError } from "./lookups";

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

/** Answers a lookup with the placeholders, or throws UnknownInvokeError naming it. */
export function answerInvoke(
  token: string,
  args: Record<string, unknown>,
  ctx: InvokeContext,
): LookupAnswer {
  const region = ctx.region ?? "us-east-1";
  const answer = lookupAnswers({
    region,
    // The first three letters, as most regions have.
    zones: ["a", "b", "c"].map((letter) => `${region}${letter}`),
    localZones: [],
    amis: { x86_64: PLACEHOLDER_AMI, arm64: PLACEHOLDER_AMI },
    vpcId: PLACEHOLDER_VPC,
    deployerIp: PLACEHOLDER_PUBLIC_IP,
  })[token];
  if (answer === undefined) throw new UnknownInvokeError(token);
  return answer(args);
}
