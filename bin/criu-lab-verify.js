#!/usr/bin/env node
// `criu-lab-verify` = `criu-lab-local verify`: the package ships TypeScript, loaded through tsx.
require("tsx/cjs");
// cli.ts loads its subcommands with `await import()`, which goes through the ESM loader:
// without tsx's ESM hook it cannot resolve the extension-less "./verify/cli".
require("tsx/esm");
const { run } = require("../cli.ts");
// run() answers every error itself (verify/cliCommon.ts runMain): it never rejects.
run(["verify", ...process.argv.slice(2)]).then((code) => {
  process.exitCode = code;
});
