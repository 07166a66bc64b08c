#!/usr/bin/env node
// `criu-lab-verify` = `criu-lab-local verify`: the package ships TypeScript, loaded through tsx.
require("tsx/cjs");
// cli.ts loads its subcommands with `await import()`, which goes through the ESM loader:
// without tsx's ESM hook it cannot resolve the extension-less "./verify/cli".
require("tsx/esm");
const { run } = require("../cli.ts");
run(["verify", ...process.argv.slice(2)]).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`criu-lab-verify: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
