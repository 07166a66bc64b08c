/**
 * What every local command shares (cli.ts with its verify, plan and vm; criu-lab-handout): the
 * usage error, runMain (a command's errors -> its message on stderr and its exit code) and the
 * read of a stack's outputs. Kept apart from the SSH client, as ./argv, so that the plan does
 * not load it.
 */
import { execFile } from "node:child_process";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ExitCode } from "../contract/checks";

/** Bad flags or input: exit 2, the message followed by the command's usage. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * node's parseArgs, its errors as UsageErrors: they name the flag ("Unknown option '--hots'",
 * "Option '--host <value>' argument missing"), which is what the user needs.
 */
export function parseFlagArgs<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** How a command answers an error it knows, besides a UsageError. */
export interface KnownError {
  exitCode: ExitCode;
  /** Printed instead of the error's message (after the command's name). */
  message?: string;
  /** The command's usage follows the message, as after a UsageError. */
  usage?: boolean;
}

export interface Command {
  /** How every message names the command: its bin, or `criu-lab-local <subcommand>`. */
  name: string;
  usage: string;
  /** The errors the command knows besides a UsageError; any other is exit 1. */
  known?: (e: unknown) => KnownError | undefined;
  /** Where the message goes, one call per error (default: stderr). */
  err?: (text: string) => void;
}

/** Any private key block, for text whose secrets are not known (e.g. a runner's message). */
const KEY_BLOCK = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g;

/** `text` with every private key block in it replaced by [redacted]. */
export function redactKeys(text: string): string {
  return text.replace(KEY_BLOCK, "[redacted]");
}

/**
 * Runs a command's main and answers what it throws: a UsageError exits 2 with its message and
 * the usage, an error `known` names exits with its code, anything else exits 1 with its
 * message. Never rejects, and never prints a private key: a message may quote what holds one
 * (a stack output, a runner's stderr).
 */
export async function runMain(command: Command, main: () => Promise<number>): Promise<number> {
  const err = command.err ?? ((text: string) => console.error(text));
  try {
    return await main();
  } catch (e) {
    const known: KnownError | undefined =
      e instanceof UsageError ? { exitCode: ExitCode.usage, usage: true } : command.known?.(e);
    const message = known?.message ?? (e instanceof Error ? e.message : String(e));
    err(`${command.name}: ${redactKeys(message)}${known?.usage ? `\n\n${command.usage}` : ""}`);
    return known?.exitCode ?? ExitCode.labBroken;
  }
}

/** Resolves to what `pulumi stack output --json --show-secrets --stack NAME` printed. */
export type StackOutputRunner = (stack: string) => Promise<string>;

/** A stack's outputs cannot be read: the Pulumi CLI is missing or failed, or printed no JSON. */
export class StackOutputError extends Error {
  override name = "StackOutputError";
}

const pulumiStackOutput: StackOutputRunner = (stack) =>
  new Promise((resolve, reject) => {
    execFile(
      "pulumi",
      ["stack", "output", "--json", "--show-secrets", "--stack", stack],
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException).code;
        reject(
          new StackOutputError(
            code === "ENOENT"
              ? "--stack needs the pulumi CLI on PATH (https://www.pulumi.com/docs/install/)"
              : `--stack ${stack}: \`pulumi stack output\` failed: ${stderr.trim().split("\n").slice(-5).join("\n") || err.message}`,
          ),
        );
      },
    );
  });

/**
 * A stack's outputs, parsed, for `--stack` in the verifier and the handout: through the pulumi
 * CLI, or `run` (tests inject their own). Any failure is a StackOutputError whose message never
 * quotes the outputs. They hold private keys: the caller keeps them in memory and scrubs what
 * it prints.
 */
export async function readStackOutputs(
  stack: string,
  run: StackOutputRunner = pulumiStackOutput,
): Promise<unknown> {
  let text: string;
  try {
    text = await run(stack);
  } catch (e) {
    throw e instanceof StackOutputError
      ? e
      : new StackOutputError(e instanceof Error ? e.message : String(e));
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new StackOutputError(
      `--stack ${stack}: \`pulumi stack output --json\` did not print JSON`,
    );
  }
}
