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
import { ExitCode } from "../../contract/checks";
import { cannotRun } from "../support/requirements";
import { GUIDE, guideBlock } from "../support/guide-blocks";
import {
  faultyCriu,
  alive,
  HOST,
  HOST_DIR,
  hostProgram,
  itRefusesBadFlags,
  LAB,
  run,
  scenarioRunner,
  tempDir,
  waitFor,
} from "./support/lab-helpers";
import { needLabHost, needPanes } from "./support/needs";
import { Terminals, learnerSeat, leaveSeat } from "./support/terminals";

interface Game {
  ok: boolean;
  error?: string;
  clients: number;
  clientsStillConnected: number;
  scoresPreserved: boolean;
  pauseMs: number;
  downtimeMs: number;
  dumpMs: number;
  restoreMs: number;
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
    longestStallMs: number;
  }>;
}

const skipScenario = cannotRun("game scenario", needLabHost("criu", "crit"));
describe.skipIf(skipScenario)("criu-lab scenario run game", () => {
  let dir: string;
  let logs: string;
  const lab = scenarioRunner("game", () => ({ CRIU_LAB_LOG_DIR: logs }));
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
    const doctor = JSON.parse(run(LAB.command, ["doctor", "--json"]).stdout);
    expect(r.networkLock).toBe(doctor.networkLock);
    // The server was away for the 1 s of maintenance at least: every player waited that long.
    expect(r.pauseMs).toBeGreaterThanOrEqual(1000);
    // The tool's downtime (dump, 1 s down, restore) beside what each player saw: its longest
    // wait for a reply spans the server's time away, and the longest of them is pauseMs.
    expect(r.downtimeMs).toBeGreaterThanOrEqual(1000 + r.dumpMs + r.restoreMs - 1);
    for (const p of r.players) expect(p.longestStallMs, p.player).toBeGreaterThanOrEqual(1000);
    expect(r.pauseMs).toBe(Math.max(...r.players.map((p) => p.longestStallMs)));
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
      `game: ${r.clients} players, stalls ${r.players.map((p) => p.longestStallMs).join(", ")} ms, ` +
        `downtime ${r.downtimeMs} ms (1 s maintenance), frozen ${(r.frozenUs / 1000).toFixed(1)} ms, lock ${r.networkLock}`,
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
    expect(ran.stdout).toMatch(
      /^players: 2\/2 on their original connection, scores intact, longest pause \d+ ms \(the server was down \d+ ms by the tool's clock; look: /m,
    );
  });

  /** A criu that restores the server's connections closed (--tcp-close): they are lost. */
  const closingCriu = () =>
    faultyCriu(dir, [`if [ "$1" = restore ]; then exec ${HOST.criu} "$@" --tcp-close; fi`]);

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
        `    child = subprocess.Popen([sys.executable, ${JSON.stringify(path.join(HOST_DIR, "game_client.py"))}, *sys.argv[1:]])`,
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

  itRefusesBadFlags(
    [
      [["--clients", "0"], "--clients: '0' is not a number of clients from 1 to 64"],
      [["--maintenance", "-1"], "--maintenance: '-1' is not a number of seconds from 0 to 600"],
      [["--network-lock", "pf"], "--network-lock: invalid choice: 'pf'"],
    ],
    lab,
    () => logs,
  );

  it("game_client.py without a server says so and exits 1 (it never retries)", () => {
    const ran = hostProgram("game_client.py", ["--port", "1", "--name", "x"]);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain("cannot connect to 127.0.0.1:1:");
  });
});

const skipSteps = cannotRun("game lab steps", [...needLabHost("criu", "crit"), ...needPanes()]);
describe.skipIf(skipSteps)("the lab guide's game steps, typed into two panes", () => {
  const PORT = 7777; // as the guide types it
  const LEFT = 0;
  const RIGHT = 1;
  let work: string;
  let t: Terminals;
  let server = 0;
  let alice = 0;
  let alicePort = 0;
  const scores = (text: string) =>
    [...text.matchAll(/^alice: score (\d+) after \d+ plays on conn (\d+)$/gm)].map((m) => ({
      score: Number(m[1]),
      conn: Number(m[2]),
    }));
  const pidIn = (file: string) => Number(fs.readFileSync(path.join(work, file), "utf8"));

  beforeAll(() => {
    // The guide's port must be free on this machine's loopback.
    const busy = run("ss", ["-Htln", `sport = :${PORT}`]);
    expect(busy.stdout.trim(), `port ${PORT} is in use here`).toBe("");
    ({ work, t } = learnerSeat(
      "game-steps",
      [path.join(HOST_DIR, "game_server.py"), path.join(HOST_DIR, "game_client.py")],
      2,
    ));
  });
  afterAll(() => leaveSeat(work, t, [alice, server]));

  it("left: the server in the background; right: alice joins and plays", async () => {
    await t.typeAll(LEFT, guideBlock("game-server-start"));
    await t.until(LEFT, "the server to listen", (text) =>
      text.includes(`listening on 127.0.0.1:${PORT}`),
    );
    server = pidIn("server.pid");
    await t.typeAll(RIGHT, guideBlock("game-alice-start"));
    await t.until(RIGHT, "alice's score", (text) => scores(text).length >= 1);
    const joined = t.screen(RIGHT).match(/^joined player=alice conn=1 port=(\d+) score=0$/m);
    expect(joined).not.toBeNull();
    alicePort = Number(joined![1]);
    alice = pidIn("alice.pid");
  });

  it("right: a dump without a TCP option is refused; the server plays on", async () => {
    await t.typeAll(RIGHT, guideBlock("game-dump-refused"));
    const refusal = "inet: Connected TCP socket, consider using --tcp-established option.";
    expect(t.screen(RIGHT)).toContain(refusal);
    expect(fs.readFileSync(GUIDE, "utf8")).toContain(refusal); // the answer's transcript
    expect(alive(server)).toBe(true);
    const seen = scores(t.screen(RIGHT)).length;
    await t.until(RIGHT, "alice to play on", (text) => scores(text).length > seen);
  });

  it("right: the dump takes the server away with its connection; alice waits", async () => {
    await t.typeAll(RIGHT, guideBlock("game-dump"));
    await waitFor("the server to be dumped", () => (alive(server) ? undefined : true));
    expect(fs.existsSync(path.join(work, "game_ckpt/pstree.img"))).toBe(true);
    const seen = scores(t.screen(RIGHT)).length;
    await new Promise((resolve) => setTimeout(resolve, 4000)); // maintenance
    expect(scores(t.screen(RIGHT)).length).toBeLessThanOrEqual(seen + 1);
    expect(alive(alice)).toBe(true);
  });

  it("left: the restore brings it back; alice goes on, on conn 1, score on", async () => {
    const before = scores(t.screen(RIGHT));
    const [restore] = guideBlock("game-restore");
    t.type(LEFT, restore!); // in the foreground, until Ctrl-C
    await t.until(
      RIGHT,
      "alice to play on",
      (text) => scores(text).length >= before.length + 2,
      120_000,
    );
    const after = scores(t.screen(RIGHT)).slice(before.length);
    expect(after.every((s) => s.conn === 1)).toBe(true);
    expect(after[0]!.score).toBeGreaterThan(before[before.length - 1]!.score);
    expect(alive(server)).toBe(true);
  });

  it("right: alice's report and the server's table agree", async () => {
    await t.typeAll(RIGHT, guideBlock("game-reports"));
    // Alice runs in the background of this pane: her report may follow the prompt.
    await t.until(RIGHT, "alice's report", (text) => text.includes("report player=alice"));
    expect(t.screen(RIGHT)).toMatch(
      new RegExp(
        `^(?:bash-[\\d.]+[#$] )?report player=alice conn=1 original=yes port=${alicePort} plays=\\d+ score=\\d+ scoresOk=yes longestGapMs=\\d+ connected=yes$`,
        "m",
      ),
    );
    await t.until(LEFT, "the server's table", (text) => text.includes("table end"));
    expect(t.screen(LEFT)).toMatch(
      new RegExp(`^table conn=1 player=alice peer=127\\.0\\.0\\.1:${alicePort} score=\\d+$`, "m"),
    );
    // Ctrl-C reaches the restored server: its terminal came back in the mode it had at the dump.
    await t.interrupt(LEFT, [alice, server], "both to end", "the restore's shell back");
  });

  it("right: what the checkpoint holds: crit shows the connection, tcp-stream images", async () => {
    await t.clear(RIGHT);
    await t.typeAll(RIGHT, guideBlock("game-holds"));
    const screen = t.screen(RIGHT);
    expect(screen).toContain('"state": "ESTABLISHED"');
    expect(screen).toContain(`"dst_port": ${alicePort}`);
    expect(screen).toMatch(/tcp-stream-[0-9a-f]+\.img/);
    // ... and the table came out in lines, not in a staircase (a terminal left in raw mode).
    expect(t.screen(LEFT)).toMatch(/^table end$/m);
  });
});
