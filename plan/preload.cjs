// Preloaded (`node --require`) into the program's process by plan/runner.ts.
//
// @pulumi/pulumi's runner prints an uncaught program error with util.inspect(err, { colors: true })
// (cmd/run/error.js). On Node 20.20, colouring a stack frame such as
// "node_modules/@pulumi/resource.ts" (a scoped directory followed by a file, as the SDK's source
// maps produce) loops until "Invalid string length": tens of seconds of CPU and gigabytes of
// memory before the SDK falls back to plain text (https://github.com/nodejs/node/issues/64011,
// fixed upstream by https://github.com/nodejs/node/pull/64022). Every config error the program
// throws goes through there. The plan strips colours anyway, so errors are inspected without them.
"use strict";
const util = require("node:util");

const inspect = util.inspect;
function inspectErrorsWithoutColors(value, options) {
  if (value instanceof Error && options !== null && typeof options === "object" && options.colors) {
    return inspect(value, { ...options, colors: false });
  }
  return inspect.apply(this, arguments);
}
for (const key of Reflect.ownKeys(inspect)) {
  if (!["length", "name", "prototype"].includes(key)) {
    Object.defineProperty(
      inspectErrorsWithoutColors,
      key,
      Object.getOwnPropertyDescriptor(inspect, key),
    );
  }
}
util.inspect = inspectErrorsWithoutColors;
