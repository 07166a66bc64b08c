#!/usr/bin/env node
// `criu-lab-handout`: the instructor's handout (handout/cli.ts), loaded through tsx as the
// package ships TypeScript.
require("tsx/cjs");
const { main } = require("../handout/cli.ts");
// main() answers every error itself (verify/cliCommon.ts runMain): it never rejects.
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
