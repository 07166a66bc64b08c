/**
 * A temp directory for a test file or a describe block, removed when it ends.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll } from "vitest";

/** A fresh directory named PREFIX-… under the OS temp dir, removed after the enclosing describe
 * block (or the file, called at its top level). */
export function scratchDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
