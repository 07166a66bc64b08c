import { execFileSync } from "node:child_process";

/**
 * Decides whether a suite that needs this machine (root, a command, a built CRIU...) can run.
 * Returns true when it must be skipped, after printing why. Under CI=true a missing
 * requirement is a failure, not a skip: CI installs everything, so a gap there is a defect.
 *
 *   describe.skipIf(cannotRun("criu-lab demo", [needRoot(), needCommand("criu")]))(...)
 */
export function cannotRun(suite: string, problems: Array<string | undefined>): boolean {
  // A problem two lists share (root, say) is said once.
  const found = [...new Set(problems.filter((p): p is string => Boolean(p)))];
  if (found.length === 0) return false;
  const message = `${suite}: cannot run here: ${found.join("; ")}`;
  if (process.env.CI === "true") {
    throw new Error(`${message} (CI=true, so this is a failure, not a skip)`);
  }
  console.warn(`SKIPPED ${message}`);
  return true;
}

/** A problem string when this process is not root, for `cannotRun`. */
export function needRoot(): string | undefined {
  return process.getuid?.() === 0 ? undefined : "needs root";
}

/** A problem string when `command` is not on PATH (or not at the absolute path given). */
export function needCommand(command: string, hint?: string): string | undefined {
  try {
    execFileSync("sh", ["-c", 'command -v "$1"', "sh", command], { stdio: "ignore" });
    return undefined;
  } catch {
    return `${command} is not installed${hint ? ` (${hint})` : ""}`;
  }
}
