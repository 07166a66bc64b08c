#!/usr/bin/env node
// `criu-lab-local` = cli.ts (verify | plan | vm): the package ships TypeScript, loaded through
// tsx. Named apart from the host's `criu-lab` command, which it is not (docs/design.md, intro).
require("tsx/cjs");
// cli.ts loads its subcommands with `await import()`, which goes through the ESM loader:
// without tsx's ESM hook it cannot resolve the extension-less "./plan/cli".
require("tsx/esm");
const { run } = require("../cli.ts");
// run() answers every error itself (verify/cliCommon.ts runMain): it never rejects.
run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
