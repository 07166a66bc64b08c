/**
 * What every local command shares (verify/cliCommon.ts): runMain's answers (a UsageError with
 * the usage, a known error's exit code, anything else 1, never a private key), readStackOutputs,
 * and every command answering through them: the same error, the same kind of message.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { run, USAGE as LOCAL_USAGE } from "../../cli";
import { main as handoutMain } from "../../handout/cli";
import { main as planMain, USAGE as PLAN_USAGE } from "../../plan/cli";
import {
  Command,
  StackOutputError,
  UsageError,
  parseFlagArgs,
  readStackOutputs,
  runMain,
} from "../../verify/cliCommon";
import { main as verifyMain } from "../../verify/cli";
import { main as vmMain } from "../../vm/cli";
import { USAGE as VM_USAGE } from "../../vm/options";

// Not a real key: shaped like one, so that "never printed" can be checked.
const KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
  "-----END OPENSSH PRIVATE KEY-----",
].join("\n");

afterEach(() => vi.restoreAllMocks());

/** Runs `main` through runMain as command `cmd`, collecting what it printed. */
async function answer(main: () => Promise<number>, known?: Command["known"]) {
  const err: string[] = [];
  const code = await runMain(
    { name: "cmd", usage: "usage: cmd [options]", known, err: (t) => err.push(t) },
    main,
  );
  return { code, err };
}

/** What `action` printed through console.error, and its exit code. */
async function consoleErr(action: () => Promise<number>): Promise<[number, string]> {
  const lines: string[] = [];
  vi.spyOn(console, "error").mockImplementation((...parts: unknown[]) => {
    lines.push(parts.map(String).join(" "));
  });
  return [await action(), lines.join("\n")];
}

describe("runMain", () => {
  it("returns main's exit code and prints nothing of its own", async () => {
    expect(await answer(async () => 3)).toEqual({ code: 3, err: [] });
  });

  it("a UsageError: exit 2, the command's name, the message and the usage in one message", async () => {
    const r = await answer(async () => {
      throw new UsageError("--port: 'x' is not a whole number");
    });
    expect(r).toEqual({
      code: 2,
      err: ["cmd: --port: 'x' is not a whole number\n\nusage: cmd [options]"],
    });
  });

  it("an error the command knows: its exit code, its message, the usage only when asked", async () => {
    class Gone extends Error {}
    const known = (e: unknown) =>
      e instanceof Gone ? { exitCode: 3 as const, message: `error: ${e.message}` } : undefined;
    expect(
      await answer(async () => {
        throw new Gone("no such stack");
      }, known),
    ).toEqual({ code: 3, err: ["cmd: error: no such stack"] });
    const withUsage = () => ({ exitCode: 2 as const, usage: true });
    expect(
      await answer(async () => {
        throw new Gone("bad");
      }, withUsage),
    ).toEqual({ code: 2, err: ["cmd: bad\n\nusage: cmd [options]"] });
  });

  it("anything else: exit 1 with its message, never a private key", async () => {
    const r = await answer(async () => {
      throw new Error(`boom: ${KEY}\nafter`);
    });
    expect(r).toEqual({ code: 1, err: ["cmd: boom: [redacted]\nafter"] });
    // A key cut short (a truncated stderr) is redacted to the end.
    const cut = await answer(async () => {
      throw new Error(`boom: ${KEY.slice(0, 60)}`);
    });
    expect(cut.err).toEqual(["cmd: boom: [redacted]"]);
    expect(
      await answer(async () => {
        throw "a string";
      }),
    ).toEqual({ code: 1, err: ["cmd: a string"] });
  });
});

describe("parseFlagArgs", () => {
  it("is node's parseArgs, its errors UsageErrors naming the flag", () => {
    const config = { options: { host: { type: "string" } }, strict: true } as const;
    expect(parseFlagArgs({ ...config, args: ["--host", "h"] }).values).toEqual({ host: "h" });
    expect(() => parseFlagArgs({ ...config, args: ["--hots", "h"] })).toThrow(UsageError);
    expect(() => parseFlagArgs({ ...config, args: ["--hots", "h"] })).toThrow(
      /^Unknown option '--hots'/,
    );
  });
});

describe("readStackOutputs", () => {
  it("parses what the runner printed, asking for the stack named", async () => {
    const asked: string[] = [];
    const outputs = await readStackOutputs("dev", async (stack) => {
      asked.push(stack);
      return '{"publicIp":"203.0.113.9"}';
    });
    expect(outputs).toEqual({ publicIp: "203.0.113.9" });
    expect(asked).toEqual(["dev"]);
  });

  it("a runner's own failure is a StackOutputError with its message", async () => {
    const failed = readStackOutputs("dev", async () => {
      throw new Error("no stack named 'dev'");
    });
    await expect(failed).rejects.toThrow(new StackOutputError("no stack named 'dev'"));
    await expect(failed).rejects.toBeInstanceOf(StackOutputError);
  });
});

describe("every local command answers through runMain", () => {
  it("criu-lab-local: an unknown command, even one named like an object's own key (exit 2)", async () => {
    for (const command of ["nope", "toString", "constructor"]) {
      const [code, text] = await consoleErr(() => run([command]));
      expect(code, command).toBe(2);
      expect(text).toBe(`criu-lab-local: unknown command '${command}'\n\n${LOCAL_USAGE}`);
    }
  });

  it("lab:vm and plan: a bad flag's message is followed by the usage, as verify's and the handout's", async () => {
    const [vmCode, vm] = await consoleErr(() => vmMain(["--image", "fedora"]));
    expect(vmCode).toBe(2);
    expect(vm).toBe(
      `criu-lab-local vm: --image: 'fedora' is not allowed: use one of ubuntu, debian\n\n${VM_USAGE}`,
    );
    const [planCode, plan] = await consoleErr(() => planMain(["--timeout", "soon"]));
    expect(planCode).toBe(2);
    expect(plan).toBe(
      `criu-lab-local plan: --timeout 'soon': expected a whole number of seconds > 0\n\n${PLAN_USAGE}`,
    );
  });

  it("verify and the handout: an unexpected error is exit 1 with their name, no key printed", async () => {
    const boom = () => {
      throw new Error(`boom ${KEY}`);
    };
    for (const main of [verifyMain, handoutMain]) {
      const err: string[] = [];
      const code = await main(["--help"], { out: boom, err: (t) => err.push(t) });
      expect(code).toBe(1);
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(/^criu-lab-(verify|handout): boom \[redacted\]$/);
    }
  });
});
