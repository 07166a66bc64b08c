#!/usr/bin/env -S npx tsx
/**
 * The local CLI: `criu-lab <verify|plan|vm> [options]`. npm scripts `verify`, `plan` and
 * `lab:vm` call it; the `criu-lab-verify` bin is its `verify`. (The host's `criu-lab` is a
 * different, shell command installed by cloud-init.)
 * Exit codes: 0 ok, 1 the lab does not work, 2 usage or bad input, 3 not reachable/not ready.
 */
import { ExitCode } from "./verify/checks";

const USAGE = `usage: criu-lab <command> [options]

commands:
  verify   check a lab host over SSH (criu check + checkpoint/restore demo)
  plan     show what \`pulumi up\` would create, offline (no cloud, credentials or CLI)
  vm       run the lab in a local QEMU VM from the same cloud-init

Run \`criu-lab <command> --help\` for a command's options.`;

type Main = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Main>> = {
  verify: async () => (await import("./verify/cli")).main,
  plan: async () => (await import("./plan/cli")).main,
  vm: async () => (await import("./vm/cli")).main,
};

export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--help" || command === "-h") {
    console.log(USAGE);
    return ExitCode.ok;
  }
  const load = command === undefined ? undefined : commands[command];
  if (!load) {
    console.error(
      command === undefined ? USAGE : `criu-lab: unknown command '${command}'\n\n${USAGE}`,
    );
    return ExitCode.usage;
  }
  return (await load())(rest);
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`criu-lab: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = ExitCode.labBroken;
    },
  );
}
