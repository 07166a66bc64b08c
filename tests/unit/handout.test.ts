import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_REPOSITORY, GUIDE_WEB_URL, card, guideWebUrl } from "../../handout/cards";
import { USAGE, main } from "../../handout/cli";
import { StackOutputError } from "../../verify/cliCommon";
import { parseSeatOutputs } from "../../contract/seats";
import { scratchDir } from "./support/scratch";

/** A real ED25519 key pair: the private key as PEM, the public one as an OpenSSH line. */
function keyPair(): { privateKey: string; publicLine: string; base64: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519", {
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "der" },
  });
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length, 0);
    return Buffer.concat([len, b]);
  };
  const base64 = Buffer.concat([
    str(Buffer.from("ssh-ed25519")),
    str(publicKey.subarray(-32)),
  ]).toString("base64");
  return { privateKey, publicLine: `ssh-ed25519 ${base64}`, base64 };
}

function classOutputs() {
  const keys = [keyPair(), keyPair()];
  const hostKeys = [keyPair(), keyPair(), keyPair()];
  const host = (seat: string, role: "a" | "b", ip: string, hk: ReturnType<typeof keyPair>) => ({
    role,
    name: `criu-lab-seat-${seat}-${role}`,
    instanceId: "i-0123456789abcdef0",
    publicIp: ip,
    sshCommand: `ssh -i seat-${seat}.pem ubuntu@${ip}`,
    knownHostsLine: `${ip} ${hk.publicLine}`,
  });
  return {
    keys: keys.map((k) => k.privateKey),
    hostKeys,
    outputs: {
      region: "ap-southeast-1",
      seats: [
        {
          seat: "01",
          sshUser: "ubuntu",
          privateKey: keys[0]!.privateKey,
          autoStopMinutes: 120,
          hosts: [host("01", "a", "203.0.113.10", hostKeys[0]!)],
        },
        {
          seat: "02",
          sshUser: "ubuntu",
          privateKey: keys[1]!.privateKey,
          autoStopMinutes: 45,
          hosts: [
            host("02", "a", "203.0.113.20", hostKeys[1]!),
            host("02", "b", "203.0.113.21", hostKeys[2]!),
          ],
        },
      ],
    },
  };
}

const root = scratchDir("criulab-handout-unit");
let n = 0;
const freshDir = () => join(root, `out-${++n}`);

/** Runs main with an injected stack; collects what it printed. */
async function run(argv: string[], stackJson: string | (() => Promise<string>)) {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  const code = await main(argv, {
    readStack: async (stack) => {
      asked.push(stack);
      return typeof stackJson === "string" ? stackJson : stackJson();
    },
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  return { code, stdout: out.join("\n"), stderr: err.join("\n"), asked };
}

function expectNoKey(text: string, keys: string[]) {
  expect(text).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  for (const key of keys) {
    for (const line of key.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"))) {
      expect(text).not.toContain(line);
    }
  }
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe("criu-lab-handout", () => {
  it("writes a folder per seat: key 0600, known_hosts, config, card; nothing secret printed", async () => {
    const { outputs, keys, hostKeys } = classOutputs();
    const out = freshDir();
    const r = await run(["--stack", "class", "--out", out], JSON.stringify(outputs));
    expect(r.code, r.stderr).toBe(0);
    expect(r.asked).toEqual(["class"]);
    expect(r.stderr).toBe("");
    expectNoKey(r.stdout + r.stderr, keys);
    expect(r.stdout).toContain(
      `${join(out, "seat-02")}/  2 host(s): a 203.0.113.20, b 203.0.113.21; auto-stop 45 min`,
    );
    expect(r.stdout).toContain("wrote 2 seat folder(s)");

    expect(readdirSync(out).sort()).toEqual(["INSTRUCTOR.md", "seat-01", "seat-02"]);
    expect(mode(out)).toBe(0o700);
    const sheet = readFileSync(join(out, "INSTRUCTOR.md"), "utf8");
    expectNoKey(sheet, keys);
    expect(sheet).toContain(
      "| 02 | b | `criu-lab-seat-02-b` | `203.0.113.21` | `i-0123456789abcdef0` |",
    );
    expect(sheet).toContain(
      "aws ec2 start-instances --region ap-southeast-1 --instance-ids i-0123456789abcdef0 i-0123456789abcdef0   # seat 02",
    );
    for (const [i, seat] of ["01", "02"].entries()) {
      const dir = join(out, `seat-${seat}`);
      expect(mode(dir)).toBe(0o700);
      expect(readdirSync(dir).sort()).toEqual([
        "LAB-GUIDE.md",
        "README.md",
        "config",
        "known_hosts",
        `seat-${seat}.pem`,
      ]);
      const pem = join(dir, `seat-${seat}.pem`);
      expect(mode(pem)).toBe(0o600);
      expect(readFileSync(pem, "utf8")).toBe(keys[i]);
      for (const f of ["README.md", "config", "known_hosts", "LAB-GUIDE.md"]) {
        expect(mode(join(dir, f))).toBe(0o644);
        // A student's key is in their key file only, and never another seat's key anywhere.
        expectNoKey(readFileSync(join(dir, f), "utf8"), keys);
      }
    }
    // Seat 01's folder holds nothing of seat 02.
    expect(readFileSync(join(out, "seat-01", "seat-01.pem"), "utf8")).not.toContain(keys[1]);

    const known = readFileSync(join(out, "seat-02", "known_hosts"), "utf8");
    expect(known).toBe(
      `seat-02-a,203.0.113.20 ssh-ed25519 ${hostKeys[1]!.base64}\n` +
        `seat-02-b,203.0.113.21 ssh-ed25519 ${hostKeys[2]!.base64}\n`,
    );
    const config = readFileSync(join(out, "seat-02", "config"), "utf8");
    expect(config).toContain(
      [
        "Host seat-02-b",
        "  HostName 203.0.113.21",
        "  User ubuntu",
        "  IdentityFile seat-02.pem",
        "  IdentitiesOnly yes",
        "  UserKnownHostsFile known_hosts",
        "  HostKeyAlias seat-02-b",
        "  StrictHostKeyChecking yes",
      ].join("\n"),
    );

    const one = readFileSync(join(out, "seat-01", "README.md"), "utf8");
    // The heading says which class and which seat.
    expect(one).toMatch(/^# CRIU lab `class`: seat 01\n/);
    expect(one).toContain("ssh -F config seat-01-a\n");
    expect(one).toContain(
      "ssh -i seat-01.pem -o UserKnownHostsFile=known_hosts ubuntu@203.0.113.10",
    );
    expect(one).toContain('sudo criu dump -t "$PID" -D checkpoint_dir -v4 --shell-job');
    expect(one).toContain("is [LAB-GUIDE.md](LAB-GUIDE.md) in this folder");
    expect(one).toContain("powers itself off after 120 minutes with no SSH session");
    expect(one).not.toContain("Migration");
    const two = readFileSync(join(out, "seat-02", "README.md"), "utf8");
    expect(two).toContain("## Migration: from host a to host b");
    expect(two).toContain('sudo criu-lab migrate --to ubuntu@criu-lab-seat-02-b --pid "$PID"');
    // The lab guide's detached start (typed in a real terminal by tests/host/guide-migration).
    const start =
      "setsid -f sh -c 'echo $$ >counter.pid; exec ./counter.py </dev/null >counter.log 2>&1'";
    expect(two).toContain(start);
    expect(readFileSync(resolve(__dirname, "../../docs/lab-guide.md"), "utf8")).toContain(start);
    expect(two).toContain("sudo criu-lab scenario run migration --to ubuntu@criu-lab-seat-02-b");
    expect(two).toContain("ssh -F config seat-02-b");
    expect(two).toContain("after 45 minutes");
    // One page: a card, not a manual.
    expect(two.split("\n").length).toBeLessThan(70);
  });

  it("everything the card points to is in the seat's folder; the guide's links point inside it", async () => {
    const { outputs } = classOutputs();
    const out = freshDir();
    const r = await run(["--stack", "class", "--out", out], JSON.stringify(outputs));
    expect(r.code, r.stderr).toBe(0);
    const dir = join(out, "seat-02");
    const text = readFileSync(join(dir, "README.md"), "utf8");
    const targets = [...text.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1] as string);
    expect(targets).toContain("LAB-GUIDE.md");
    // Files in the folder, and the guide online (the one web address on the card).
    expect(targets).toContain(GUIDE_WEB_URL);
    for (const t of targets.filter((t) => t !== GUIDE_WEB_URL)) {
      expect(existsSync(join(dir, t)), t).toBe(true);
    }
    expect(text).toContain("`criu-lab guide`");
    expect(text).toContain("`sudo criu-lab progress`");

    const source = readFileSync(resolve(__dirname, "../../docs/lab-guide.md"), "utf8");
    const guide = readFileSync(join(dir, "LAB-GUIDE.md"), "utf8");
    expect(guide).toMatch(/^# CRIU lab guide\n/);
    // Every section of docs/lab-guide.md.
    const headings = source.match(/^##+ .+$/gm) ?? [];
    expect(headings.length).toBeGreaterThan(5);
    for (const h of headings) expect(guide).toContain(`${h}\n`);
    // In-page links only to headings of the guide itself (GitHub's anchors).
    const anchors = new Set(
      (guide.match(/^#{2,6} .+$/gm) ?? []).map((h) =>
        h
          .replace(/^#+ /, "")
          .replace(/`/g, "")
          .toLowerCase()
          .replace(/[^\w\- ]/g, "")
          .replace(/ /g, "-"),
      ),
    );
    for (const m of guide.matchAll(/\]\(#([^)]+)\)/g))
      expect(anchors.has(m[1] as string), m[1]).toBe(true);
  });

  it("the class docs' handout folder is a new one, never the project's own (which `rm -rf` would delete)", () => {
    const readme = readFileSync(resolve(__dirname, "../../docs/teaching.md"), "utf8");
    const outs = [...readme.matchAll(/criu-lab-handout [^\n]*--out (\S+)/g)].map((m) => m[1]);
    const removed = [...readme.matchAll(/^rm -rf (\S+)\s+# the seats' private keys/gm)].map(
      (m) => m[1],
    );
    expect(outs.length).toBeGreaterThan(0);
    expect(removed).toEqual([outs[0]]);
    for (const folder of [...outs, ...removed]) {
      expect(existsSync(resolve(__dirname, "../..", folder as string)), folder).toBe(false);
    }
  });

  it("the card's lab steps are the lab guide's commands (tested in a real terminal there)", () => {
    const { outputs } = classOutputs();
    const text = card(parseSeatOutputs(outputs)[0]!, "class");
    const guide = readFileSync(resolve(__dirname, "../../docs/lab-guide.md"), "utf8");
    for (const command of [
      "./counter.py & echo $! > counter.pid",
      "PID=$(cat counter.pid)",
      "mkdir checkpoint_dir",
      'sudo criu dump -t "$PID" -D checkpoint_dir -v4 --shell-job',
      "sudo criu restore -D checkpoint_dir -v4 --shell-job",
      "sudo criu-lab analyze checkpoint_dir",
      "sudo criu-lab demo",
      "sudo criu-lab check",
    ]) {
      expect(text).toContain(command);
      expect(guide).toContain(command);
    }
  });

  it("reads today's single-seat outputs as seat 01", async () => {
    const key = keyPair();
    const hk = keyPair();
    const out = freshDir();
    const r = await run(
      ["--stack", "dev", "--out", out],
      JSON.stringify({
        instanceId: "i-0123456789abcdef0",
        publicIp: "198.51.100.7",
        sshUser: "ubuntu",
        privateKey: key.privateKey,
        knownHostsLine: `198.51.100.7 ${hk.publicLine}`,
        sshCommand: "ssh -i criu-lab.pem ubuntu@198.51.100.7",
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["INSTRUCTOR.md", "seat-01"]);
    expect(readFileSync(join(out, "seat-01", "known_hosts"), "utf8")).toBe(
      `seat-01-a,198.51.100.7 ssh-ed25519 ${hk.base64}\n`,
    );
    expect(readFileSync(join(out, "seat-01", "README.md"), "utf8")).toContain(
      "after the stack's `autoStopMinutes` (120 by default) minutes",
    );
    expectNoKey(r.stdout + r.stderr, [key.privateKey]);
  });

  it("--seat N writes that seat only; 0 minutes says it never stops", async () => {
    const { outputs } = classOutputs();
    outputs.seats[1]!.autoStopMinutes = 0;
    const out = freshDir();
    const r = await run(["--stack", "class", "--out", out, "--seat", "2"], JSON.stringify(outputs));
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["INSTRUCTOR.md", "seat-02"]);
    expect(readFileSync(join(out, "seat-02", "README.md"), "utf8")).toContain(
      "This seat does not stop by itself",
    );
  });

  it("refuses a non-empty --out before reading the stack; --force replaces the seat folders", async () => {
    const { outputs } = classOutputs();
    const out = freshDir();
    mkdirSync(join(out, "seat-01"), { recursive: true });
    writeFileSync(join(out, "seat-01", "stale.txt"), "old");
    writeFileSync(join(out, "notes.txt"), "mine");
    const refused = await run(["--stack", "class", "--out", out], JSON.stringify(outputs));
    expect(refused.code).toBe(2);
    expect(refused.asked).toEqual([]);
    expect(refused.stderr).toMatch(/--out .*: exists and is not empty \(2 entries\); .*--force/);
    expect(refused.stderr).toContain("usage: criu-lab-handout");

    const forced = await run(
      ["--stack", "class", "--out", out, "--force"],
      JSON.stringify(outputs),
    );
    expect(forced.code, forced.stderr).toBe(0);
    expect(existsSync(join(out, "seat-01", "stale.txt"))).toBe(false);
    expect(readFileSync(join(out, "notes.txt"), "utf8")).toBe("mine");
    expect(mode(join(out, "seat-01", "seat-01.pem"))).toBe(0o600);

    const file = join(root, "a-file");
    writeFileSync(file, "x");
    const notDir = await run(
      ["--stack", "class", "--out", file, "--force"],
      JSON.stringify(outputs),
    );
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toContain("exists and is not a directory");
  });

  it("bad flags: exit 2 with the usage, nothing read or written", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--out", "x"], /--stack NAME is required/],
      [["--stack", "dev"], /--out DIR is required/],
      [["--stack", "", "--out", "x"], /--stack: must not be empty/],
      [["--stack", "dev", "--out", "x", "--seat", "two"], /--seat: 'two' is not a seat number/],
      [["--stak", "dev"], /Unknown option '--stak'/],
      [["--stack", "dev", "--out", "x", "extra"], /Unexpected argument 'extra'/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv, "{}");
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(USAGE);
      expect(r.asked).toEqual([]);
      expect(r.stdout).toBe("");
    }
    const help = await run(["--help"], "{}");
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(USAGE);
  });

  it("outputs that cannot be read or used: exit 3, nothing written, no key printed", async () => {
    const { outputs, keys } = classOutputs();
    const broken = (f: (o: typeof outputs) => unknown) =>
      JSON.stringify(f(structuredClone(outputs)));
    const cases: Array<[string | (() => Promise<string>), RegExp]> = [
      ["not json " + keys[0], /did not print JSON/],
      [
        async () =>
          Promise.reject(
            new StackOutputError("--stack class: `pulumi stack output` failed: no stack"),
          ),
        /failed: no stack/,
      ],
      // A runner's message that happens to hold a key is still scrubbed.
      [async () => Promise.reject(new Error(`boom ${keys[0]}`)), /boom \[redacted\]/],
      [broken(() => ({ instanceId: "i-0123456789abcdef0" })), /'publicDns' is missing/],
      [
        broken((o) => ({ seats: [{ ...o.seats[0], privateKey: "[secret]" }] })),
        /not a private key/,
      ],
      [
        broken((o) => ({
          seats: [{ ...o.seats[0], hosts: [{ ...o.seats[0]!.hosts[0], knownHostsLine: keys[1] }] }],
        })),
        /knownHostsLine' is not usable: .*a private key/,
      ],
    ];
    for (const [stack, message] of cases) {
      const out = freshDir();
      const r = await run(["--stack", "class", "--out", out], stack);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
      expectNoKey(r.stdout + r.stderr, keys);
    }
    const out = freshDir();
    const missing = await run(
      ["--stack", "class", "--out", out, "--seat", "9"],
      JSON.stringify(outputs),
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--seat 9: the stack has no seat 09 (it has 01, 02)");
    expect(existsSync(out)).toBe(false);
  });

  it("without the pulumi CLI: exit 3 naming what is missing", async () => {
    const path = process.env.PATH;
    process.env.PATH = root; // holds no pulumi
    try {
      const err: string[] = [];
      const code = await main(["--stack", "dev", "--out", freshDir()], {
        out: () => undefined,
        err: (t) => err.push(t),
      });
      expect(code).toBe(3);
      expect(err.join("\n")).toContain(
        "criu-lab-handout: --stack needs the pulumi CLI on PATH (https://www.pulumi.com/docs/install/)",
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it("the bin asks pulumi for the outputs with --show-secrets and writes the handout", () => {
    const { outputs, keys } = classOutputs();
    // The pulumi CLI is not on this machine: a stand-in that insists on the exact arguments.
    const fakeBin = join(root, "fake-pulumi");
    mkdirSync(fakeBin, { recursive: true });
    const json = join(fakeBin, "outputs.json");
    writeFileSync(json, JSON.stringify(outputs));
    writeFileSync(
      join(fakeBin, "pulumi"),
      [
        "#!/bin/sh",
        '[ "$*" = "stack output --json --show-secrets --stack class" ] || { echo "unexpected: $*" >&2; exit 9; }',
        `cat ${json}`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const out = freshDir();
    const bin = resolve(__dirname, "../../bin/criu-lab-handout.js");
    const r = spawnSync(process.execPath, [bin, "--stack", "class", "--out", out], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? ""}` },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["INSTRUCTOR.md", "seat-01", "seat-02"]);
    expectNoKey(r.stdout + r.stderr, keys);
    const failing = spawnSync(process.execPath, [bin, "--stack", "other", "--out", freshDir()], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? ""}` },
    });
    expect(failing.status).toBe(3);
    expect(failing.stderr).toContain("`pulumi stack output` failed: unexpected: stack output");
  });
});

describe("guideWebUrl", () => {
  it("is docs/lab-guide.md on main of package.json's repository, else of the default one", () => {
    const guide = "/blob/main/docs/lab-guide.md";
    for (const repository of [
      "https://github.com/someone/lab",
      "https://github.com/someone/lab.git",
      "git+https://github.com/someone/lab.git",
      "github:someone/lab",
      { type: "git", url: "git@github.com:someone/lab.git" },
    ]) {
      expect(guideWebUrl(repository), JSON.stringify(repository)).toBe(
        `https://github.com/someone/lab${guide}`,
      );
    }
    for (const none of [undefined, "", "https://gitlab.com/someone/lab", 42]) {
      expect(guideWebUrl(none)).toBe(`${DEFAULT_REPOSITORY}${guide}`);
    }
    // package.json names no repository today.
    expect(GUIDE_WEB_URL).toBe(`${DEFAULT_REPOSITORY}${guide}`);
  });
});
