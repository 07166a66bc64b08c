/**
 * `criu-lab-verify --progress`: the flag, the parser of the host's `criu-lab progress --json`
 * (held to the real command of this checkout, run without root on an empty home), the seat
 * rows and the table; and the CLI against a class whose hosts nothing answers (every cell
 * "?", exit 3). The view against real sshd and real hosts is tests/host/verify-progress.test.ts.
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { main, parseFlags, USAGE } from "../../verify/cli";
import {
  EXERCISES,
  HostProgress,
  ProgressReport,
  judgeProgress,
  parseProgress,
  progressTable,
  seatRows,
} from "../../verify/progress";

const ROOT = path.resolve(__dirname, "../..");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs+lsyjLhF6WNSYyc1XOWc/ZX0o1P2XsU/Rvvymo70+";
const TABLE = JSON.parse(
  fs.readFileSync(path.join(ROOT, "host/criu_lab/exercises.json"), "utf8"),
) as { exercises: Array<{ id: string }> };

describe("--progress flags", () => {
  it("is off by default; on, --timeout defaults to 30 s a host, and a given one wins", () => {
    expect(parseFlags(["--stack", "s"])).toMatchObject({ progress: false, timeoutSeconds: 3600 });
    expect(parseFlags(["--stack", "s", "--progress"])).toMatchObject({
      progress: true,
      timeoutSeconds: 30,
    });
    expect(parseFlags(["--stack", "s", "--progress", "--timeout", "5"]).timeoutSeconds).toBe(5);
    expect(USAGE).toContain("--stack NAME --progress");
  });

  it("refuses --scenarios with --progress (exit 2), before reading the stack", async () => {
    const err: string[] = [];
    let reads = 0;
    const code = await main(["--stack", "s", "--progress", "--scenarios", "training"], {
      out: () => undefined,
      err: (t) => err.push(t),
      readStack: async () => {
        reads++;
        return "{}";
      },
    });
    expect(code).toBe(2);
    expect(err[0]).toContain("--scenarios runs scenarios; --progress only asks");
    expect(reads).toBe(0);
  });
});

describe("the exercises", () => {
  it("are the host command's table, in its order", () => {
    expect(EXERCISES.map((e) => e.id)).toEqual(TABLE.exercises.map((e) => e.id));
    expect(EXERCISES.filter((e) => e.twoHosts).map((e) => e.id)).toEqual([
      "migration",
      "link",
      "faults",
    ]);
  });
});

describe("parseProgress", () => {
  it("reads the real `criu-lab progress --json` of this checkout", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "progress-unit-"));
    try {
      fs.mkdirSync(path.join(dir, "home"));
      const ran = spawnSync(
        "/usr/bin/python3",
        [path.join(ROOT, "host/criu-lab"), "progress", "--json"],
        {
          encoding: "utf8",
          env: {
            ...process.env,
            CRIU_LAB_STATE_DIR: path.join(dir, "state"),
            CRIU_LAB_HOME: path.join(dir, "home"),
          },
        },
      );
      expect(ran.status, ran.stderr).toBe(0);
      const judged = judgeProgress({ stdout: ran.stdout, stderr: ran.stderr, code: ran.status });
      expect(judged).toMatchObject({ status: "ok", exitCode: 0, done: {} });
      expect(judged.known).toEqual(EXERCISES.map((e) => e.id));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps what each done exercise says, and ignores progress lines before the JSON", () => {
    const stdout =
      "note\n" +
      JSON.stringify({
        ok: true,
        exercises: [
          { id: "counter", done: true, at: "2026-12-06T22:15:14Z", how: "restore of counter.py" },
          { id: "demo", done: false, at: null, how: null },
        ],
      });
    expect(parseProgress(stdout)).toEqual({
      done: { counter: { at: "2026-12-06T22:15:14Z", how: "restore of counter.py" } },
      known: ["counter", "demo"],
    });
  });

  it("judges an older host (no 'progress') not ready (3), a bad answer broken (1)", () => {
    expect(
      judgeProgress({
        stdout: "",
        stderr: "criu-lab: error: argument command: invalid choice: 'progress' (choose from ...)",
        code: 2,
      }),
    ).toMatchObject({ status: "not available", exitCode: 3 });
    for (const r of [
      { stdout: "{}", stderr: "", code: 0 },
      { stdout: '{"ok": true, "exercises": [{"id": 1}]}', stderr: "", code: 0 },
      { stdout: "", stderr: "Traceback ...\nKeyError: 'x'", code: 1 },
    ]) {
      const judged = judgeProgress(r);
      expect(judged, r.stdout).toMatchObject({ status: "fail", exitCode: 1 });
      expect(judged.error).toContain("sudo criu-lab progress --json");
    }
  });
});

const host = (
  seat: string,
  role: "a" | "b",
  done: string[],
  status: HostProgress["status"] = "ok",
): HostProgress => ({
  seat,
  role,
  host: `192.0.2.${Number(seat)}${role === "a" ? 1 : 2}`,
  port: 22,
  status,
  exitCode: status === "ok" ? 0 : 3,
  done: Object.fromEntries(done.map((id) => [id, { at: "2026-12-06T22:15:14Z", how: "test" }])),
  known: status === "ok" ? EXERCISES.map((e) => e.id) : [],
  ...(status === "ok" ? {} : { error: "cannot reach it before the deadline\nmore" }),
});

describe("the seat rows and the table", () => {
  const hosts = [
    host("02", "a", ["counter", "demo", "migration"]),
    host("02", "b", ["training"]),
    host("01", "a", ["counter", "demo"]),
    host("03", "a", [], "unreachable"),
  ];
  const report: ProgressReport = {
    ok: false,
    exitCode: 3,
    exercises: EXERCISES,
    seats: seatRows(hosts),
    hosts,
    durationMs: 1,
  };

  it("a seat did what either host did; a two-host exercise is not for a one-host seat", () => {
    const [one, two, three] = report.seats;
    expect(report.seats.map((s) => s.seat)).toEqual(["01", "02", "03"]);
    expect(one).toMatchObject({ done: 2, total: 7 });
    expect(one?.cells).toMatchObject({ counter: "done", images: "todo", migration: "n/a" });
    expect(two).toMatchObject({ done: 4, total: 10 });
    expect(two?.cells).toMatchObject({ training: "done", migration: "done", game: "todo" });
    expect(three).toMatchObject({ done: 0, total: 7 });
    expect(three?.cells).toMatchObject({ counter: "unknown", migration: "n/a" });
  });

  it("prints seats by exercise, the legend, the hosts not reached and the verdict", () => {
    expect(progressTable(report)).toBe(
      [
        "seat  counter  demo  images  checkpoint  doctor  training  game  migration  link  faults  done",
        "01    ✓        ✓     ·       ·           ·       ·         ·     -          -     -       2/7",
        "02    ✓        ✓     ·       ·           ·       ✓         ·     ✓          ·     ·       4/10",
        "03    ?        ?     ?       ?           ?       ?         ?     -          -     -       0/7",
        "",
        "✓ done   · not yet   ? host not reached   - needs a two-host seat",
        "  counter     checkpoint and restore the counter by hand",
        "  demo        the one-command demo",
        "  images      a tour of the image files",
        "  checkpoint  a checkpoint you can trust and move",
        "  doctor      what this host can do",
        "  training    periodic checkpoints and crash recovery",
        "  game        players stay connected",
        "  migration   migrate a process to another host",
        "  link        a slower link: each mode's downtime",
        "  faults      break a migration on purpose and recover",
        "",
        "seat 03 host a 192.0.2.31:22: unreachable (exit 3): cannot reach it before the deadline",
        "",
        // Migration is for seat 02 only, which did it.
        "3 of 4 host(s) answered; done by every seat: migration; exit 3",
      ].join("\n"),
    );
  });
});

describe("criu-lab-verify --stack NAME --progress on a class nothing answers", () => {
  it("asks every host, prints every cell '?' and exits 3, no key printed", async () => {
    const keys: string[] = [];
    const seats = ["01", "02"].map((seat, i) => {
      const { privateKey } = generateKeyPairSync("rsa", {
        modulusLength: 2048,
        privateKeyEncoding: { type: "pkcs1", format: "pem" },
        publicKeyEncoding: { type: "pkcs1", format: "pem" },
      });
      keys.push(privateKey);
      return {
        seat,
        sshUser: "ubuntu",
        privateKey,
        autoStopMinutes: 120,
        hosts: (i === 1 ? ["a", "b"] : ["a"]).map((role, j) => ({
          role,
          name: `criu-lab-seat-${seat}-${role}`,
          instanceId: `i-0123456789abcde${i}${j}`,
          // TEST-NET-1 (RFC 5737): nothing answers.
          publicIp: `192.0.2.${i * 2 + j + 1}`,
          sshCommand: "ssh ...",
          knownHostsLine: `192.0.2.${i * 2 + j + 1} ${HOST_KEY}`,
        })),
      };
    });
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(["--stack", "class", "--progress", "--timeout", "2", "--json"], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      readStack: async () => JSON.stringify({ seats }),
    });
    expect(code).toBe(3);
    const report = JSON.parse(out.join("\n")) as ProgressReport;
    expect(report.hosts.map((h) => [h.seat, h.role, h.status, h.exitCode])).toEqual([
      ["01", "a", "unreachable", 3],
      ["02", "a", "unreachable", 3],
      ["02", "b", "unreachable", 3],
    ]);
    expect(report.seats.map((s) => Object.values(s.cells))).toEqual([
      [...Array(7).fill("unknown"), "n/a", "n/a", "n/a"],
      Array(10).fill("unknown"),
    ]);
    expect(err.filter((l) => l.startsWith("[progress] [seat "))).toHaveLength(3);
    for (const key of keys) expect(out.join("") + err.join("")).not.toContain(key.split("\n")[1]);
  });
});
