import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  USAGE,
  main,
  parseFlags,
  parseStackOutputs,
  resolveTarget,
  summary,
} from "../../verify/cli";
import { isRetryable } from "../../verify/session";
import { UsageError, readStackOutputs } from "../../verify/cliCommon";
import {
  VerifyReport,
  parseLogSections,
  secretScrubber,
  stoppedHostHint,
  verifyLab,
} from "../../verify/verifier";
import { shellQuote } from "../../contract/checks";
import { scratchDir } from "./support/scratch";

// Not a real key: shaped like one, so that scrubbing and "never printed" can be checked.
const PRIVATE_KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
  "QyNTUxOQAAACCbPpbMoy4RelhWEMnNVzlnP2V9KNT9l7FP0b78pqO9PgAAAJgTRy1NE0ct",
  "-----END OPENSSH PRIVATE KEY-----",
  "",
].join("\n");
/** Another seat's key: every seat has its own (contract/seats.ts refuses a shared one). */
const OTHER_PRIVATE_KEY = PRIVATE_KEY.replace("b3BlbnNzaC1", "c3BlbnNzaC1");
const HOST_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs+lsyjLhF6WNSYyc1XOWc/ZX0o1P2XsU/Rvvymo70+ fixture";

const dir = scratchDir("criulab-verify-unit");

describe("parseFlags", () => {
  it("has the documented defaults", () => {
    expect(parseFlags(["--host", "lab.example.org"])).toEqual({
      host: "lab.example.org",
      stack: undefined,
      port: undefined,
      user: undefined,
      keyFile: undefined,
      hostKey: undefined,
      scenarios: [],
      timeoutSeconds: 3600,
      stoppedAfterSeconds: 180,
      progress: false,
      json: false,
      help: false,
    });
  });

  it("reads every flag", () => {
    const f = parseFlags([
      "--stack=dev",
      "--port",
      "2222",
      "--user",
      "admin",
      "--key-file",
      "k.pem",
      "--host-key",
      HOST_KEY,
      "--timeout",
      "90",
      "--stopped-after",
      "45",
      "--scenarios",
      "game,training",
      "--json",
    ]);
    expect(f).toMatchObject({
      stack: "dev",
      port: 2222,
      user: "admin",
      keyFile: "k.pem",
      hostKey: HOST_KEY,
      timeoutSeconds: 90,
      stoppedAfterSeconds: 45,
      scenarios: ["training", "game"],
      json: true,
    });
    expect(parseFlags(["-h"]).help).toBe(true);
  });

  it("refuses bad flags with a message naming the flag and what is allowed", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--hots", "x"], /Unknown option '--hots'/],
      [["positional"], /Unexpected argument 'positional'/],
      [["--host"], /--host/],
      [["--port", "0"], /--port: '0' is not a whole number from 1 to 65535/],
      [["--port", "65536"], /--port: '65536'/],
      [["--port", "22x"], /--port: '22x'/],
      [["--timeout", "1.5"], /--timeout: '1.5' is not a whole number of seconds from 1 to 86400/],
      [["--timeout", "-3"], /--timeout: '-3' is not a whole number of seconds from 1 to 86400/],
      [
        ["--stopped-after", "0"],
        /^--stopped-after: '0' is not a whole number of seconds from 1 to 86400$/,
      ],
      [["--stopped-after", "-5"], /^--stopped-after: '-5' is not a whole number of seconds/],
      [["--stopped-after", "3m"], /^--stopped-after: '3m' is not a whole number of seconds/],
      [["--stopped-after", "1.5"], /^--stopped-after: '1.5' is not a whole number of seconds/],
      [["--stopped-after"], /--stopped-after/],
      [["--user", " "], /--user: must not be empty/],
      [["--json=yes"], /--json/],
      [
        ["--scenarios", "training,chess"],
        /^--scenarios: 'chess' is not a scenario; allowed: training, game$/,
      ],
      [
        ["--scenarios", "migration"],
        /^--scenarios: 'migration' cannot run on one host: it needs a second host \(`criu-lab scenario run migration --to USER@HOST`\)/,
      ],
      [["--scenarios", ","], /^--scenarios: ',' names no scenario; allowed: training, game$/],
      [["--scenarios"], /--scenarios/],
    ];
    for (const [argv, message] of cases) {
      expect(() => parseFlags(argv), argv.join(" ")).toThrow(UsageError);
      expect(() => parseFlags(argv), argv.join(" ")).toThrow(message);
    }
  });
});

/** The `seats` output of a one-host stack, as components/seat.ts writes it. */
function seatsOutput(ip: string, o: { autoStopMinutes?: number; instanceId?: string } = {}) {
  return [
    {
      seat: "01",
      sshUser: "ubuntu",
      privateKey: PRIVATE_KEY,
      autoStopMinutes: o.autoStopMinutes ?? 0,
      hosts: [
        {
          role: "a",
          name: "criu-lab",
          instanceId: o.instanceId ?? "i-0123456789abcdef0",
          publicIp: ip,
          privateIp: "10.0.1.10",
          sshCommand: `ssh -i criu-lab.pem ubuntu@${ip}`,
          knownHostsLine: `${ip} ${HOST_KEY}`,
        },
      ],
    },
  ];
}

describe("parseStackOutputs", () => {
  const outputs = {
    publicIp: "203.0.113.9",
    publicDns: "ec2-203-0-113-9.compute.amazonaws.com",
    sshUser: "ubuntu",
    privateKey: PRIVATE_KEY,
    knownHostsLine: `203.0.113.9 ${HOST_KEY}`,
  };

  it("takes publicIp, sshUser, privateKey and knownHostsLine", () => {
    expect(parseStackOutputs("dev", outputs)).toEqual({
      host: "203.0.113.9",
      user: "ubuntu",
      privateKey: PRIVATE_KEY,
      hostKey: `203.0.113.9 ${HOST_KEY}`,
    });
  });

  it("takes seat 01's host a from `seats`, with its auto-stop and the region", () => {
    const withSeats = {
      ...outputs,
      seats: seatsOutput("203.0.113.9", {
        autoStopMinutes: 120,
        instanceId: "i-0abc12345678def90",
      }),
      region: "ap-southeast-1",
    };
    expect(parseStackOutputs("dev", withSeats)).toEqual({
      host: "203.0.113.9",
      user: "ubuntu",
      privateKey: PRIVATE_KEY,
      hostKey: `203.0.113.9 ${HOST_KEY}`,
      autoStop: { minutes: 120, instanceId: "i-0abc12345678def90", region: "ap-southeast-1" },
    });
    // A stack from before `seats` says nothing of its auto-stop.
    expect(parseStackOutputs("dev", outputs).autoStop).toBeUndefined();
    // A region that is not one is left out, never printed into a command; an instance id that
    // is not one makes the outputs unusable (named, exit 2).
    expect(parseStackOutputs("dev", { ...withSeats, region: "$(id)" }).autoStop).toEqual({
      minutes: 120,
      instanceId: "i-0abc12345678def90",
    });
    const badId = {
      ...outputs,
      seats: seatsOutput("203.0.113.9", { instanceId: "i-1; rm -rf ~" }),
    };
    expect(() => parseStackOutputs("dev", badId)).toThrow(UsageError);
    expect(() => parseStackOutputs("dev", badId)).toThrow(
      /--stack dev: stack output 'seats\[0\]\.hosts\[0\]\.instanceId' is 'i-1; rm -rf ~'/,
    );
    // A class: the first seat's host a.
    const [first] = seatsOutput("203.0.113.9");
    const second = { ...first!, seat: "02", privateKey: OTHER_PRIVATE_KEY };
    expect(parseStackOutputs("dev", { seats: [first, second] }).host).toBe("203.0.113.9");
  });

  it("falls back to publicDns and the ubuntu user", () => {
    const rest: Partial<typeof outputs> = { ...outputs };
    delete rest.publicIp;
    delete rest.sshUser;
    expect(parseStackOutputs("dev", rest)).toMatchObject({
      host: outputs.publicDns,
      user: "ubuntu",
    });
  });

  it("names what is missing and what is present, never echoing the outputs", async () => {
    const rest: Partial<typeof outputs> = { ...outputs };
    delete rest.privateKey;
    delete rest.publicIp;
    delete rest.publicDns;
    expect(() => parseStackOutputs("dev", rest)).toThrow(
      "--stack dev: stack output 'publicDns' is missing (present: knownHostsLine, sshUser); has `pulumi up` run for this stack?",
    );
    expect(() => parseStackOutputs("dev", {})).toThrow(/present: none/);
    const printed = async () => `${JSON.stringify(outputs)} trailing`;
    await expect(readStackOutputs("dev", printed)).rejects.toThrow(/did not print JSON/);
    try {
      await readStackOutputs("dev", printed);
    } catch (err) {
      expect((err as Error).message).not.toContain("b3BlbnNzaC1rZXktdjEA");
    }
    expect(() => parseStackOutputs("dev", [])).toThrow(
      /outputs should be a JSON object, got an array/,
    );
    expect(() => parseStackOutputs("dev", { ...outputs, sshUser: 7 })).toThrow(
      /output 'sshUser' should be a non-empty string, got a number/,
    );
  });
});

describe("readStackOutputs", () => {
  it("says the pulumi CLI is needed when it is not on PATH", async () => {
    const path = process.env.PATH;
    process.env.PATH = dir; // holds no pulumi
    try {
      await expect(readStackOutputs("dev")).rejects.toThrow(
        "--stack needs the pulumi CLI on PATH (https://www.pulumi.com/docs/install/)",
      );
    } finally {
      process.env.PATH = path;
    }
  });
});

describe("resolveTarget", () => {
  const stack = async () => ({
    publicIp: "203.0.113.9",
    privateKey: PRIVATE_KEY,
    sshUser: "ubuntu",
    knownHostsLine: `203.0.113.9 ${HOST_KEY}`,
  });

  it("builds the target from a stack, with flags overriding it", async () => {
    const keyFile = join(dir, "other.pem");
    writeFileSync(keyFile, "OTHER KEY", { mode: 0o600 });
    const target = await resolveTarget(
      parseFlags(["--stack", "dev", "--port", "2222", "--user", "admin", "--key-file", keyFile]),
      stack,
    );
    expect(target).toEqual({
      host: "203.0.113.9",
      port: 2222,
      user: "admin",
      privateKey: "OTHER KEY",
      hostKey: `203.0.113.9 ${HOST_KEY}`,
    });
  });

  it("keeps the stack's auto-stop for the stack's host only, not for another --host", async () => {
    const withAutoStop = async () => ({
      publicIp: "203.0.113.9",
      privateKey: PRIVATE_KEY,
      instanceId: "i-0123456789abcdef0",
      region: "eu-west-1",
      seats: seatsOutput("203.0.113.9", { autoStopMinutes: 60 }),
    });
    const fromStack = await resolveTarget(parseFlags(["--stack", "dev"]), withAutoStop);
    expect(fromStack.autoStop).toEqual({
      minutes: 60,
      instanceId: "i-0123456789abcdef0",
      region: "eu-west-1",
    });
    const other = await resolveTarget(
      parseFlags(["--stack", "dev", "--host", "198.51.100.4"]),
      withAutoStop,
    );
    expect(other.autoStop).toBeUndefined();
  });

  it("needs a host and a key from flags when there is no stack", async () => {
    const never = async (): Promise<unknown> => {
      throw new Error("no stack was asked for");
    };
    await expect(resolveTarget(parseFlags([]), never)).rejects.toThrow("--host is required");
    await expect(resolveTarget(parseFlags(["--host", "h"]), never)).rejects.toThrow(
      "--key-file is required (or --stack NAME)",
    );
    await expect(
      resolveTarget(parseFlags(["--host", "h", "--key-file", join(dir, "nope")]), never),
    ).rejects.toThrow(/--key-file .*nope: cannot read it \(ENOENT\)/);
  });
});

describe("main", () => {
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, deps: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) } };
  };

  it("--help prints the usage with the exit codes and exits 0", async () => {
    const c = capture();
    expect(await main(["--help"], c.deps)).toBe(0);
    expect(c.out).toEqual([USAGE]);
    expect(USAGE).toMatch(/exit codes: 0 .*\n2 usage or bad input; 3 unreachable/);
  });

  it("bad flags: exit 2, the message and the usage on stderr, nothing on stdout", async () => {
    const c = capture();
    expect(await main(["--port", "x", "--host", "h"], c.deps)).toBe(2);
    expect(c.out).toEqual([]);
    expect(c.err.join("\n")).toMatch(
      /^criu-lab-verify: --port: 'x'.*\n\nusage: npx criu-lab-verify/s,
    );
  });

  it("marks --key-file as required in the usage", () => {
    expect(USAGE).toMatch(/^usage: npx criu-lab-verify --host HOST --key-file PATH \[options\]$/m);
    expect(USAGE).toMatch(/--key-file PATH +required \(unless --stack\)/);
  });

  it("names a .pub given as --key-file as the mistake it is (exit 2)", async () => {
    const pub = join(dir, "lab.pub");
    writeFileSync(pub, `${HOST_KEY}\n`);
    const c = capture();
    expect(await main(["--host", "h", "--key-file", pub], c.deps)).toBe(2);
    expect(c.err.join("\n")).toContain(
      `criu-lab-verify: --key-file ${pub}: this is a public key (ssh-ed25519); ` +
        `--key-file takes the private key, e.g. ${join(dir, "lab")}`,
    );
    expect(c.out).toEqual([]);
  });

  it("--timeout -5 is a range error, not node's 'argument is ambiguous' (exit 2)", async () => {
    for (const args of [["--timeout", "-5"], ["--timeout=-5"]]) {
      const c = capture();
      expect(await main(["--host", "h", "--key-file", "k", ...args], c.deps)).toBe(2);
      expect(c.err[0]).toMatch(
        /^criu-lab-verify: --timeout: '-5' is not a whole number of seconds from 1 to 86400\n/,
      );
    }
    const c = capture();
    expect(await main(["--host", "h", "--port", "-22"], c.deps)).toBe(2);
    expect(c.err[0]).toMatch(/^criu-lab-verify: --port: '-22' is not a whole number from 1/);
  });

  it("a stack that cannot be read: exit 2 with the reader's message", async () => {
    const c = capture();
    const code = await main(["--stack", "gone"], {
      ...c.deps,
      readStack: async () => {
        throw new UsageError("--stack gone: `pulumi stack output` failed: no stack named 'gone'");
      },
    });
    expect(code).toBe(2);
    expect(c.err.join("\n")).toContain("no stack named 'gone'");
  });

  it("a key ssh2 cannot read: exit 2, the key's text never printed", async () => {
    const keyFile = join(dir, "bad.pem");
    writeFileSync(keyFile, PRIVATE_KEY, { mode: 0o600 });
    const c = capture();
    const code = await main(
      ["--host", "127.0.0.1", "--port", "9", "--key-file", keyFile, "--json"],
      c.deps,
    );
    expect(code).toBe(2);
    const report = JSON.parse(c.out[0] ?? "") as VerifyReport;
    expect(report.error).toMatch(/the private key cannot be used/);
    for (const line of PRIVATE_KEY.split("\n").slice(1, 3)) {
      expect(c.out.join("") + c.err.join("")).not.toContain(line);
    }
  });
});

/** A port that was just free on loopback: nothing listens there. */
function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** A key ssh2 accepts, so that the attempts reach the network. */
function rsaKey(): string {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "pkcs1", format: "pem" },
  }).privateKey;
}

describe("verifyLab without a server", () => {
  it("retries a refused connection until the deadline, then exits 3 with the last error", async () => {
    const port = await freePort();
    const lines: string[] = [];
    const report = await verifyLab(
      { host: "127.0.0.1", port, user: "ubuntu", privateKey: rsaKey(), hostKey: HOST_KEY },
      { timeoutSeconds: 2, onProgress: (l) => lines.push(l) },
    );
    expect(report.exitCode).toBe(3);
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(
      new RegExp(
        `cannot reach ubuntu@127.0.0.1:${port} before the deadline \\(\\d+ attempts\\); last error: .*ECONNREFUSED`,
      ),
    );
    // Every announced retry happened: the last failed attempt is not announced as
    // "retrying in N s" just before giving up.
    const attempts = Number(/\((\d+) attempts\)/.exec(report.error ?? "")?.[1]);
    const retries = lines.filter((l) => /attempt \d+ failed .*; retrying in /.test(l));
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(retries).toHaveLength(attempts - 1);
    expect(lines.join("\n")).not.toContain(`attempt ${attempts} failed`);
    expect(report.steps).toHaveLength(1);
    expect(report.logs).toBeUndefined();
  });

  it("a host whose auto-stop is on and whose port never answers looks stopped: exit 3, how to start it", async () => {
    const port = await freePort();
    const lines: string[] = [];
    const report = await verifyLab(
      {
        host: "127.0.0.1",
        port,
        user: "ubuntu",
        privateKey: rsaKey(),
        hostKey: HOST_KEY,
        autoStop: { minutes: 120, instanceId: "i-0123456789abcdef0", region: "ap-southeast-1" },
      },
      // The deadline is far: only the silence ends it.
      { timeoutSeconds: 600, stoppedAfterSeconds: 2, onProgress: (l) => lines.push(l) },
    );
    expect(report.exitCode).toBe(3);
    expect(report.error).toMatch(
      new RegExp(
        `^cannot reach ubuntu@127\\.0\\.0\\.1:${port}: no answer on its port for 2 s \\(\\d+ attempts; ` +
          "last error: .*ECONNREFUSED.*\\): the host looks stopped by the auto-stop",
      ),
    );
    expect(report.error).toContain(
      "start it: aws ec2 start-instances --instance-ids i-0123456789abcdef0 --region ap-southeast-1, then verify again",
    );
    // As at the deadline: no retry is announced that never comes.
    const attempts = Number(/\((\d+) attempts;/.exec(report.error ?? "")?.[1]);
    expect(lines.filter((l) => /; retrying in /.test(l))).toHaveLength(attempts - 1);
    // Auto-stop off (0): a silent host is only unreachable, retried until the deadline.
    const never = await verifyLab(
      {
        host: "127.0.0.1",
        port,
        user: "ubuntu",
        privateKey: rsaKey(),
        autoStop: { minutes: 0 },
      },
      { timeoutSeconds: 2, stoppedAfterSeconds: 1 },
    );
    expect(never.error).toMatch(/before the deadline/);
    expect(never.error).not.toContain("stopped");
  });

  it("a malformed host key is bad input (exit 2) found before any connection", async () => {
    const report = await verifyLab(
      {
        host: "127.0.0.1",
        port: 9,
        user: "u",
        privateKey: PRIVATE_KEY,
        hostKey: "ssh-ed25519 ***",
      },
      { timeoutSeconds: 5 },
    );
    expect(report.exitCode).toBe(2);
    expect(report.steps).toEqual([]);
    expect(report.error).toMatch(/host key: the ssh-ed25519 key is not base64/);
  });

  it("warns when the host key is not pinned", async () => {
    const lines: string[] = [];
    await verifyLab(
      { host: "127.0.0.1", port: 9, user: "u", privateKey: "not a key" },
      { timeoutSeconds: 1, onProgress: (l) => lines.push(l) },
    );
    expect(lines[0]).toBe("warning: no host key given; the server's host key is NOT verified");
  });
});

describe("helpers", () => {
  it("stoppedHostHint: the auto-stop's minutes and the command that starts the host", () => {
    expect(
      stoppedHostHint({ minutes: 45, instanceId: "i-0123456789abcdef0", region: "us-east-2" }),
    ).toBe(
      "the host looks stopped by the auto-stop (it powers off after 45 idle minutes); start it: " +
        "aws ec2 start-instances --instance-ids i-0123456789abcdef0 --region us-east-2, then verify again",
    );
    // Without the id or the region (outputs from before `region`): pulumi up starts it.
    for (const partial of [{ minutes: 45 }, { minutes: 45, instanceId: "i-0123456789abcdef0" }]) {
      expect(stoppedHostHint(partial)).toBe(
        "the host looks stopped by the auto-stop (it powers off after 45 idle minutes); start it: " +
          "run `pulumi up`, which starts stopped hosts, then verify again",
      );
    }
  });

  it("secretScrubber removes the key whole and line by line", () => {
    const scrub = secretScrubber([PRIVATE_KEY]);
    const body = PRIVATE_KEY.split("\n")[2] as string;
    expect(scrub(`before ${PRIVATE_KEY.trim()} after`)).toBe("before [redacted] after");
    expect(scrub(`Cannot parse: ${body}`)).toBe("Cannot parse: [redacted]");
    expect(scrub("nothing secret")).toBe("nothing secret");
    expect(secretScrubber([""])("text")).toBe("text");
  });

  it("parseLogSections splits the fetcher's output by path, keeping text exactly", () => {
    const out =
      "\n=== criu-lab-verify log: /var/log/criu-lab/install.log\nline 1\nline 2\n" +
      "\n=== criu-lab-verify log: /var/log/criu-lab/demo-1/restore.log\nError: File exists";
    expect(parseLogSections(out)).toEqual({
      "/var/log/criu-lab/install.log": "line 1\nline 2\n",
      "/var/log/criu-lab/demo-1/restore.log": "Error: File exists",
    });
    expect(parseLogSections("")).toEqual({});
  });

  it("shellQuote survives quotes", () => {
    expect(shellQuote("/var/log/it's here")).toBe(`'/var/log/it'\\''s here'`);
  });

  it("isRetryable: the host is not up yet vs. a failure retrying cannot fix", () => {
    expect(
      isRetryable(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
    ).toBe(true);
    expect(isRetryable(Object.assign(new Error("Timed out"), { level: "client-timeout" }))).toBe(
      true,
    );
    expect(isRetryable(new Error("Connection lost before handshake"))).toBe(true);
    expect(
      isRetryable(
        Object.assign(new Error("All configured authentication methods failed"), {
          level: "client-authentication",
        }),
      ),
    ).toBe(false);
    expect(isRetryable(new Error("Handshake failed: no matching host key format"))).toBe(false);
  });

  /** A report of a host that passed its check on `kernel`, for summary() to word. */
  const passedOn = (kernel: string): VerifyReport => ({
    ok: true,
    exitCode: 0,
    target: { host: "h", port: 22, user: "ubuntu" },
    steps: [],
    durationMs: 1,
    check: { ok: true, criuVersion: "4.2.1", kernel },
  });

  it("summary: one line when ok; the error, the images and the log tails when not", () => {
    const base = passedOn("6.8.0");
    expect(summary(base)).toBe("criu-lab-verify: OK: ubuntu@h:22: CRIU 4.2.1, kernel 6.8.0");
    const failed = summary({
      ...base,
      ok: false,
      exitCode: 1,
      error: "checkpoint/restore demo failed: File exists",
      logs: { "/var/log/criu-lab/demo-1/restore.log": "Error: File exists\n" },
    });
    expect(failed).toBe(
      [
        "criu-lab-verify: FAILED (exit 1): ubuntu@h:22: checkpoint/restore demo failed: File exists",
        "--- /var/log/criu-lab/demo-1/restore.log (tail)",
        "Error: File exists",
      ].join("\n"),
    );
  });

  it("summary with scenarios: the doctor's line, then one line per scenario", async () => {
    const { parseDoctor } = await import("../../contract/checks");
    const { capturedStdout } = await import("./support/mocks");
    const report: VerifyReport = {
      ...passedOn("6.18.44-fc-v782"),
      doctor: parseDoctor(capturedStdout("doctor")),
      scenarios: [
        {
          name: "training",
          status: "pass",
          exitCode: 0,
          ms: 26_000,
          result: JSON.parse(capturedStdout("training")) as Record<string, unknown>,
        },
        {
          name: "game",
          status: "skipped",
          exitCode: 0,
          ms: 0,
          error: "the doctor says this host cannot run game: no network-lock backend",
        },
      ],
    };
    const lines = summary(report).split("\n");
    expect(lines[0]).toBe("criu-lab-verify: OK: ubuntu@h:22: CRIU 4.2.1, kernel 6.18.44-fc-v782");
    expect(lines[1]).toMatch(
      /^doctor: CRIU 4\.2\.1 on kernel 6\.18\.44-fc-v782, network lock nftables; can run: training-full, game, .*; cannot: training-incremental \(no dirty-page tracking/,
    );
    expect(lines[2]).toBe(
      "  pass    training: PID 17527 checkpointed 3 times (full), killed at step 33, restored as " +
        "PID 17527 at step 31 (the latest checkpoint's: 31), 2 steps lost, state matches, overhead 4.358 %",
    );
    expect(lines[3]).toBe(
      "  skipped game: the doctor says this host cannot run game: no network-lock backend",
    );
    expect(lines).toHaveLength(4);
  });
});
