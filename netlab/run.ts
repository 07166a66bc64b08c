/**
 * Running a command to completion and polling for a condition: what the two-host namespace
 * lab (netns.ts), the host tests and the bench share.
 */
import { spawnSync, type SpawnSyncOptions } from "node:child_process";

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never throws on a non-zero exit (the tests assert on it). */
export function run(command: string, args: string[], options: SpawnSyncOptions = {}): Ran {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    timeout: 15 * 60_000,
    ...options,
  });
  if (result.error) throw result.error;
  return {
    code: result.status ?? 128,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

/** Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes; a guard
 * against hanging, not a timed assertion. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
