/**
 * `criu-lab scenario run game` for real: game_server.py on 127.0.0.1 with game_client.py
 * players in their own processes, dumped with --tcp-established and the network lock the
 * doctor picks, restored after a maintenance pause. It passes with every player on its
 * original connection and score, and fails when connections are lost (a restore with
 * --tcp-close) or when a client reconnects (and says all is well).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../verify/checks";
import { cannotRun, needCommand, needRoot } from "../support/requirements";
import { alive, CLOUD_INIT, HOST, run, tempDir } from "./support/lab-helpers";

const LAB = path.join(CLOUD_INIT, "criu-lab");

interface Game {
  ok: boolean;
  error?: string;
  clients: number;
  clientsStillConnected: number;
  scoresPreserved: boolean;
  pauseMs: number;
  pid: number;
  restoredPid: number;
  clientPids: number[];
  networkLock: string;
  frozenUs: number;
  imagesDir: string;
  players: Array<{
    player: string;
    conn: number;
    port: number;
    originalConnection: boolean;
    scoreBefore: number | null;
    scoreAfter: number | null;
  }>;
}

describe.skipIf(
  cannotRun("game scenario", [
    needRoot(),
    needCommand(HOST.criu, "run `sudo npm run setup:host` first"),
    needCommand(HOST.crit, "run `sudo npm run setup:host` first"),
  ]),
)("criu-lab scenario run game", () => {
  let dir: string;
  let logs: string;
  const lab = (args: string[], env: Record<string, string> = {}) =>
    run(LAB, ["scenario", "run", "game", ...args], {
      env: { ...process.env, CRIU_LAB_LOG_DIR: logs, ...env },
    });
  /** Every process the run started is gone. */
  const ended = (r: Game) => {
    for (const pid of [r.pid, ...r.clientPids]) expect(alive(pid), `PID ${pid}`).toBe(false);
  };
  beforeAll(() => {
    dir = tempDir("game");
    logs = path.join(dir, "logs");
    fs.mkdirSync(logs);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("--json: every player keeps its original connection and its score", () => {
    const ran = lab(["--clients", "3", "--maintenance", "1", "--json"]);
    expect(ran.stdout.trim().split("\n"), ran.stderr).toHaveLength(1);
    const r: Game = JSON.parse(ran.stdout);
    expect(ran.code, r.error).toBe(ExitCode.ok);
    expect(r.ok).toBe(true);
    expect(r.clients).toBe(3);
    expect(r.clientsStillConnected).toBe(3);
    expect(r.scoresPreserved).toBe(true);
    expect(r.restoredPid).toBe(r.pid);
    const doctor = JSON.parse(run(LAB, ["doctor", "--json"]).stdout);
    expect(r.networkLock).toBe(doctor.networkLock);
    // The server was away for the 1 s of maintenance at least: every player waited that long.
    expect(r.pauseMs).toBeGreaterThanOrEqual(1000);
    expect(r.players.map((p) => p.player).sort()).toEqual(["player-1", "player-2", "player-3"]);
    for (const p of r.players) {
      expect(p.originalConnection).toBe(true);
      expect(p.scoreAfter!).toBeGreaterThanOrEqual(p.scoreBefore!);
      expect(p.scoreBefore!).toBeGreaterThan(0);
    }
    // The images hold the server's TCP connections (crit decodes them): the listener and
    // one established connection per player, to the player's own port.
    const files = JSON.parse(run(HOST.crit, ["show", path.join(r.imagesDir, "files.img")]).stdout);
    const tcp = files.entries
      .filter((e: { isk?: { proto: string } }) => e.isk?.proto === "TCP")
      .map((e: { isk: { state: string; dst_port: number } }) => e.isk);
    expect(tcp.filter((s: { state: string }) => s.state === "LISTEN")).toHaveLength(1);
    expect(
      tcp
        .filter((s: { state: string }) => s.state === "ESTABLISHED")
        .map((s: { dst_port: number }) => s.dst_port)
        .sort(),
    ).toEqual(r.players.map((p) => p.port).sort());
    ended(r);
    console.log(
      `game: ${r.clients} players, pause ${r.pauseMs} ms (1 s maintenance), frozen ${(r.frozenUs / 1000).toFixed(1)} ms, lock ${r.networkLock}`,
    );
  });

  it("draws its timeline in the terminal", () => {
    const ran = lab(["--clients", "2", "--maintenance", "0.5"]);
    expect(ran.code, ran.stdout).toBe(ExitCode.ok);
    expect(ran.stdout).toMatch(/^time \(s\) +0\.0/m);
    expect(ran.stdout).toMatch(/^server +F+\.+R+=+$/m);
    expect(ran.stdout).toMatch(/^players +-*$/m);
    expect(ran.stdout).toMatch(
      /F dump with --tcp-established --network-lock (iptables|nftables): \d+ ms/,
    );
    expect(ran.stdout).toMatch(/R restore in \d+ ms after 0\.5 s of maintenance/);
    expect(ran.stdout).toContain("players: 2/2 on their original connection, scores intact");
  });

  /** A criu that restores the server's connections closed (--tcp-close): they are lost. */
  const closingCriu = () => {
    const fake = path.join(dir, "criu");
    fs.writeFileSync(
      fake,
      `#!/bin/sh\nif [ "$1" = restore ]; then exec ${HOST.criu} "$@" --tcp-close; fi\nexec ${HOST.criu} "$@"\n`,
      { mode: 0o755 },
    );
    return fake;
  };

  it("fails when the restored server has lost the connections", () => {
    const ran = lab(["--clients", "2", "--maintenance", "0", "--json"], {
      CRIU_LAB_CRIU: closingCriu(),
    });
    expect(ran.code).toBe(ExitCode.labBroken);
    const r: Game = JSON.parse(ran.stdout);
    expect(r.ok).toBe(false);
    expect(r.clientsStillConnected).toBe(0);
    expect(r.error).toContain("player-1: not on its original connection");
    expect(fs.existsSync(path.join(r.imagesDir, "pstree.img"))).toBe(true);
    ended(r);
  });

  it("catches a client that reconnects, even one that says its connection is fine", () => {
    // A player that comes back on a new connection every 0.7 s, through the real client:
    // each new client believes its connection is the original one.
    const sneaky = path.join(dir, "reconnecting_game_client.py");
    fs.writeFileSync(
      sneaky,
      [
        "import signal, subprocess, sys",
        "child = None",
        "def forward(signum, _frame):",
        "    if child: child.send_signal(signum)",
        "    if signum == signal.SIGTERM: sys.exit(0)",
        "signal.signal(signal.SIGUSR1, forward)",
        "signal.signal(signal.SIGTERM, forward)",
        "while True:",
        `    child = subprocess.Popen([sys.executable, ${JSON.stringify(path.join(CLOUD_INIT, "game_client.py"))}, *sys.argv[1:]])`,
        "    try:",
        "        child.wait(0.7)",
        "    except subprocess.TimeoutExpired:",
        "        child.terminate()",
        "        child.wait()",
        "",
      ].join("\n"),
    );
    const ran = lab(["--clients", "2", "--maintenance", "0", "--json"], {
      CRIU_LAB_GAME_CLIENT: sneaky,
    });
    expect(ran.code).toBe(ExitCode.labBroken);
    const r: Game = JSON.parse(ran.stdout);
    expect(r.clientsStillConnected).toBeLessThan(2);
    expect(r.error).toMatch(/player-\d: not on its original connection/);
    ended(r);
  });

  it.each([
    [["--clients", "0"], "--clients: '0' is not a number of clients from 1 to 64"],
    [["--maintenance", "-1"], "--maintenance: '-1' is not a number of seconds from 0 to 600"],
    [["--network-lock", "pf"], "--network-lock: invalid choice: 'pf'"],
  ])("bad flags %j: exit 2 naming the flag, nothing started", (args, message) => {
    const before = fs.readdirSync(logs);
    const ran = lab([...args, "--json"]);
    expect(ran.code).toBe(ExitCode.usage);
    expect(ran.stderr).toContain(message);
    expect(fs.readdirSync(logs)).toEqual(before);
  });

  it("game_client.py without a server says so and exits 1 (it never retries)", () => {
    const ran = run("/usr/bin/python3", [
      path.join(CLOUD_INIT, "game_client.py"),
      "--port",
      "1",
      "--name",
      "x",
    ]);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain("cannot connect to 127.0.0.1:1:");
  });
});
