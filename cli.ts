#!/usr/bin/env -S npx tsx
/**
 * The local CLI: `criu-lab-local <verify|plan|vm> [options]` (bin/criu-lab-local.js). npm
 * scripts `verify`, `plan` and `lab:vm` call it; the `criu-lab-verify` bin is its `verify`.
 * The host's `criu-lab` is a different command (Python, installed by cloud-init): no local
 * usage text may call itself `criu-lab ...` (docs/design.md, intro).
 * Exit codes: 0 ok, 1 the lab does not work, 2 usage or bad input, 3 not reachable/not ready.
 */
import { ExitCode } from "./contract/checks";
import { runMain, UsageError } from "./verify/cliCommon";

export const USAGE = `usage: npx criu-lab-local <command> [options]

commands (each also an npm script of this project):
  verify   check a lab host over SSH (criu check + checkpoint/restore demo)
           = npx criu-lab-verify, npm run verify --
  plan     show what \`pulumi up\` would create, offline (no cloud, credentials or CLI)
           = npm run plan --
  vm       run the lab in a local QEMU VM from the same cloud-init
           = npm run lab:vm --

Run \`npx criu-lab-local <command> --help\` for a command's options. (On a lab host,
\`criu-lab\` is the host's own command: check, demo, status...)`;

type Main = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Main>> = {
  verify: async () => (await import("./verify/cli")).main,
  plan: async () => (await import("./plan/cli")).main,
  vm: async () => (await import("./vm/cli")).main,
};

/** Runs a subcommand; never rejects (runMain answers what a subcommand's loading throws). */
export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  return runMain({ name: "criu-lab-local", usage: USAGE }, async () => {
    if (command === "--help" || command === "-h") {
      console.log(USAGE);
      return ExitCode.ok;
    }
    if (command === undefined) {
      console.error(USAGE);
      return ExitCode.usage;
    }
    // Own keys only: `toString` is no command.
    if (!Object.hasOwn(commands, command)) throw new UsageError(`unknown command '${command}'`);
    return (await commands[command]!())(rest);
  });
}

if (require.main === module) {
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
