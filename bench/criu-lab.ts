/**
 * The host's `criu-lab` for the bench cases (training, game): this checkout's launcher
 * (host/criu-lab) under the system python3, through sudo when not root. Returns the
 * parsed JSON, whatever its verdict: a benchmark reports, it does not judge (a failed run is
 * logged and left out of the figures by the case). ENV: variables for it (e.g. its log dir).
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";

const LAUNCHER = path.join(__dirname, "..", "host", "criu-lab");

export function criuLab(args: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const argv = ["/usr/bin/python3", LAUNCHER, ...args, "--json"];
  const root = process.getuid?.() === 0;
  const [command, ...rest] = root
    ? argv
    : ["sudo", "env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv];
  const ran = spawnSync(command, rest, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, ...env },
  });
  if (ran.error) throw ran.error;
  try {
    return JSON.parse(ran.stdout) as Record<string, unknown>;
  } catch {
    return { ok: false, error: `exit ${ran.status}: ${ran.stderr.trim().slice(-300)}` };
  }
}

/** A positive number from the environment, or the default. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!(value > 0)) throw new Error(`${name}=${raw}: expected a positive number`);
  return value;
}
