/**
 * The local commands' names: the host's command is `criu-lab` (check, demo, ...), so
 * no local usage text or message may call itself `criu-lab <subcommand>` (docs/design.md), and
 * every command a usage text names exists: an npm script or a bin of this package.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { run, USAGE as LOCAL_USAGE } from "../../cli";
import { USAGE as HANDOUT_USAGE } from "../../handout/cli";
import { main as planMain, USAGE as PLAN_USAGE } from "../../plan/cli";
import { USAGE as VERIFY_USAGE } from "../../verify/cli";
import { main as vmMain } from "../../vm/cli";
import { USAGE as VM_USAGE } from "../../vm/options";

const ROOT = join(__dirname, "..", "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  scripts: Record<string, string>;
  bin: Record<string, string>;
};
const USAGES = {
  local: LOCAL_USAGE,
  plan: PLAN_USAGE,
  verify: VERIFY_USAGE,
  vm: VM_USAGE,
  handout: HANDOUT_USAGE,
};

/** `criu-lab` followed by a local subcommand, or a usage line that starts with `criu-lab `. */
const HOST_NAME_MISUSED = /(^|[^-\w])criu-lab (verify|plan|vm)\b|usage: criu-lab /m;

async function stderrOf(action: () => Promise<number>): Promise<[number, string]> {
  const err: string[] = [];
  const spy = vi.spyOn(console, "error").mockImplementation((...parts: unknown[]) => {
    err.push(parts.map(String).join(" "));
  });
  try {
    return [await action(), err.join("\n")];
  } finally {
    spy.mockRestore();
  }
}

describe("local command names", () => {
  it.each(Object.entries(USAGES))("the %s usage never calls itself criu-lab", (_, usage) => {
    expect(usage).not.toMatch(HOST_NAME_MISUSED);
  });

  it.each(Object.entries(USAGES))("every command the %s usage names exists", (_, usage) => {
    const scripts = [...usage.matchAll(/npm run (?:-s )?([\w:]+)/g)].map((m) => m[1]);
    const bins = [...usage.matchAll(/(?:npx |^usage: )(criu-lab-[\w-]+)/gm)].map((m) => m[1]);
    expect(scripts.length + bins.length).toBeGreaterThan(0);
    for (const script of scripts) expect(Object.keys(pkg.scripts)).toContain(script);
    for (const bin of bins) {
      expect(Object.keys(pkg.bin)).toContain(bin);
      expect(existsSync(join(ROOT, pkg.bin[bin]))).toBe(true);
    }
  });

  it("the npm scripts run the subcommands their usage texts belong to", () => {
    expect(pkg.scripts.verify).toBe("tsx cli.ts verify");
    expect(pkg.scripts.plan).toBe("tsx cli.ts plan");
    expect(pkg.scripts["lab:vm"]).toBe("tsx cli.ts vm");
  });

  it("messages name the command that exists, never `criu-lab <subcommand>`", async () => {
    const results = [
      await stderrOf(() => run(["nope"])),
      await stderrOf(() => planMain(["--bogus"])),
      await stderrOf(() => vmMain(["--image", "fedora"])),
    ];
    expect(results.map(([code]) => code)).toEqual([2, 2, 2]);
    const [local, plan, vm] = results.map(([, text]) => text);
    expect(local).toMatch(/^criu-lab-local: unknown command 'nope'/);
    expect(plan).toMatch(/^criu-lab-local plan: Unknown option '--bogus'/);
    expect(vm).toMatch(/^criu-lab-local vm: --image/);
    for (const text of [local, plan, vm]) expect(text).not.toMatch(HOST_NAME_MISUSED);
  });

  it("the bins run: criu-lab-local prints its usage, criu-lab-verify the verifier's", async () => {
    const help = (bin: string, args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [join(ROOT, pkg.bin[bin]), ...args], (err, stdout) =>
          err ? reject(err) : resolve(stdout),
        ),
      );
    expect((await help("criu-lab-local", ["--help"])).trimEnd()).toBe(LOCAL_USAGE);
    expect((await help("criu-lab-local", ["plan", "--help"])).trimEnd()).toBe(PLAN_USAGE);
    expect((await help("criu-lab-verify", ["--help"])).trimEnd()).toBe(VERIFY_USAGE);
  }, 60_000);
});
