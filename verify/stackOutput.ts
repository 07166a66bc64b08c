/**
 * Reads a stack's outputs with the Pulumi CLI, for `--stack` in the verifier and the handout.
 * The outputs hold private keys: the caller keeps them in memory and scrubs its messages.
 */
import { execFile } from "node:child_process";

/** Runs `pulumi stack output --json --show-secrets --stack NAME`; resolves to its stdout. */
export type StackOutputReader = (stack: string) => Promise<string>;

/** The Pulumi CLI is missing or `pulumi stack output` failed; the message says which. */
export class StackOutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackOutputError";
  }
}

export const pulumiStackOutput: StackOutputReader = (stack) =>
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
