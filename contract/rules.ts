/**
 * The rules a check's JSON must keep to pass, stated once, as data (rules.json): per check the
 * fields and their JSON types, and comparisons between fields or with a value. Two judges read
 * the same file: judgeContract below (the verifier, and the program's parsers) and the host's
 * `criu-lab judge` (host/criu_lab/judge.py, beside which rules.json is linked and shipped
 * with the lab's files), which `pulumi up`'s remote Commands run (components/verification.ts).
 */
import table from "./rules.json";

/** The JSON types a contract can require of a field. */
export type JsonFieldType = "string" | "number" | "boolean" | "object" | "array";

/**
 * `field is than`: the other side is another field (plus a number) or a value. Both sides
 * are typed by `fields` before any rule is read.
 */
export interface ContractRule {
  field: string;
  is: "==" | ">=";
  than: { field: string; plus?: number } | { value: number | boolean | string };
  /** Why it failed: `{field}` is replaced by the field's value. */
  message: string;
}

export interface JsonContract {
  fields: Record<string, JsonFieldType>;
  requires: readonly ContractRule[];
}

/** The checks that have a contract, by the name the host's judge takes. */
export type ContractName = "check" | "doctor" | "demo" | "training" | "game" | "migration";

/** rules.json, typed (a test holds the file to these types: tests/unit/contract.test.ts). */
export const CONTRACTS: Readonly<Record<ContractName, JsonContract>> = table as Record<
  ContractName,
  JsonContract
>;

/** Raised when a check's output is not what the contract says; carries the raw text. */
export class CheckOutputError extends Error {
  constructor(
    message: string,
    readonly raw: string,
  ) {
    super(message);
    this.name = "CheckOutputError";
  }
}

/** A JSON object as parsed, its fields not yet typed. */
export type Json = Record<string, unknown>;

/** Whether `value` is a JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The last line of `stdout` that parses as a JSON object (progress lines may precede it). */
export function lastJsonObject(what: string, stdout: string): Json {
  const lines = stdout.trim().split("\n").reverse();
  for (const line of lines) {
    const text = line.trim();
    if (!text.startsWith("{")) continue;
    try {
      const value: unknown = JSON.parse(text);
      if (isJsonObject(value)) return value;
    } catch {
      // not JSON: keep looking
    }
  }
  throw new CheckOutputError(`${what}: no JSON object in its output`, stdout);
}

/** Whether `value` has the contract's JSON type (numbers finite, as judge.py's `typed`). */
export function hasType(value: unknown, type: JsonFieldType): boolean {
  switch (type) {
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return isJsonObject(value);
    default:
      return typeof value === type;
  }
}

/** Whether the rule holds for `r` (its fields already typed). */
export function ruleHolds(rule: ContractRule, r: Json): boolean {
  const left = r[rule.field];
  const right =
    "field" in rule.than
      ? rule.than.plus === undefined
        ? r[rule.than.field]
        : Number(r[rule.than.field]) + rule.than.plus
      : rule.than.value;
  if (rule.is === "==") return left === right;
  return typeof left === "number" && typeof right === "number" && left >= right;
}

/** A rule's message with `{field}` replaced by the field's value. */
export function formatRule(message: string, r: Json): string {
  return message.replace(/\{(\w+)\}/g, (_, key: string) => String(r[key]));
}

/** The messages of the rules `r` breaks, in the table's order. */
export function brokenRules(contract: JsonContract, r: Json): string[] {
  return contract.requires
    .filter((rule) => !ruleHolds(rule, r))
    .map((rule) => formatRule(rule.message, r));
}

/** The verdict of a JSON result held to its contract. */
export interface ContractVerdict {
  ok: boolean;
  /** Why it did not pass: the result's own error, a mistyped field or a broken rule. */
  error?: string;
  /** The result as the host printed it (the last JSON object of its output). */
  result: Json;
}

/**
 * A check's output held to its contract: `ok: true`, every field of its type, every rule.
 * The same verdict as the host's judge (judge.py). Throws CheckOutputError when the output
 * has no JSON object.
 */
export function judgeContract(
  what: string,
  contract: JsonContract,
  stdout: string,
): ContractVerdict {
  const result = lastJsonObject(what, stdout);
  if (result.ok !== true) {
    const error = typeof result.error === "string" ? result.error.trim() : "";
    return { ok: false, error: error || "it reported ok: false without an error", result };
  }
  for (const [key, type] of Object.entries(contract.fields)) {
    if (!hasType(result[key], type)) {
      return {
        ok: false,
        error: `field '${key}' should be ${/^[aeiou]/.test(type) ? "an" : "a"} ${type}, got ${JSON.stringify(result[key] ?? null)}`,
        result,
      };
    }
  }
  const [broken] = brokenRules(contract, result);
  return broken === undefined ? { ok: true, result } : { ok: false, error: broken, result };
}
