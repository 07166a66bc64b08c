"""criu-lab scenario run game: a game server checkpointed and restored under its players.

The original lab's story: a game server's players do not notice its maintenance.
game_server.py holds TCP connections and per-player scores; --clients game_client.py
processes play continuously and have no reconnect logic. The server is dumped with
--tcp-established and the network lock this host supports (CRIU's default, iptables, or
nftables: the doctor decides), stays down for --maintenance seconds, and is restored: every
client must still be on its original connection (the server's table and the client agree)
with every score intact. Beside the tool's downtime (downtimeMs, from the dump's start to the
restore's end), each player reports the longest it waited for a reply (longestStallMs): the
downtime as that player saw it.
"""
import argparse
import os
import re
import signal
import time

from . import doctor, timeline
from .common import base, criu, frozen_us, new_run, private_dir, ready, scenario_end
from .outcome import BROKEN, LabError, attempt
from .procs import start_detached, stop, wait_for

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.environ.get("CRIU_LAB_GAME_SERVER", os.path.join(HERE, "game_server.py"))
CLIENT = os.environ.get("CRIU_LAB_GAME_CLIENT", os.path.join(HERE, "game_client.py"))
TABLE = re.compile(r"^table conn=(\d+) player=(\S+) peer=(\S+) score=(\d+)$", re.M)
REPORT = re.compile(r"^report player=(\S+) conn=(\d+) original=(yes|no) port=(\d+) plays=(\d+) score=(\d+) "
                    r"scoresOk=(yes|no) longestGapMs=(\d+) connected=(yes|no)(.*)$", re.M)


def count(value):
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number of clients from 1 to 64")
    return int(value)


def seconds(value):
    try:
        number = float(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 600:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number of seconds from 0 to 600")
    return number


def register(runsub):
    p = runsub.add_parser("game", help="checkpoint and restore a game server under its connected players")
    p.add_argument("--clients", type=count, default=4, help="players, one process each (default 4)")
    p.add_argument("--maintenance", type=seconds, default=2.0,
                   help="seconds the server stays down between dump and restore (default 2)")
    p.add_argument("--network-lock", choices=("auto", "iptables", "nftables"), default="auto",
                   help="how CRIU holds the connections during the dump (default auto: the doctor's choice)")
    p.set_defaults(fn=cmd_game)


def read(path, start=0):
    with open(path, errors="replace") as f:
        f.seek(start)
        return f.read()


def server_table(pid, log):
    """Asks the server for its table (SIGUSR1) and returns {conn id: (player, peer, score)}."""
    start = os.path.getsize(log)
    os.kill(pid, signal.SIGUSR1)
    text = wait_for("the server's table", lambda: (lambda t: t if "table end" in t else None)(read(log, start)), 10)
    return {int(c): (n, peer, int(s)) for c, n, peer, s in TABLE.findall(text)}


def client_report(pid, log, timeout=10):
    """The client's own report: asked for (SIGUSR1), or the one it left when its connection
    dropped and it exited. A client that reports nothing within TIMEOUT s is waiting for a
    reply that does not come: as good as disconnected."""
    keys = ("player", "conn", "original", "port", "plays", "score", "scoresOk", "longestGapMs", "connected", "error")
    start = os.path.getsize(log)
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        start = 0
    try:
        return dict(zip(keys, wait_for(f"a report from client PID {pid}", lambda: REPORT.findall(read(log, start)),
                                       timeout)[-1]))
    except LabError:
        joined = re.search(r"^joined player=(\S+) conn=(\d+) port=(\d+)", read(log), re.M)
        player, conn, port = joined.groups() if joined else ("?", "0", "0")
        return dict(zip(keys, (player, conn, "no", port, "0", "0", "no", str(timeout * 1000), "no",
                               f" no reply from the server for {timeout} s")))


def cmd_game(args):
    r = base()
    r.update(clients=args.clients, clientsStillConnected=0, scoresPreserved=False)
    run_dir = new_run("game")
    images = os.path.join(run_dir, "images")
    say = (lambda m: print(m, flush=True)) if not args.json else (lambda m: None)
    server, clients, events = None, [], []

    def cleanup():
        if server is not None:
            stop(r.get("restoredPid") or server.pid, b"game_server.py")
            server.poll()
        for c, _ in clients:
            stop(c.pid, b"game_client")
            c.poll()

    with attempt(r, cleanup) as outcome:
        ready("scenario run game")
        found = doctor.require("game")
        lock = r["networkLock"] = found["networkLock"] if args.network_lock == "auto" else args.network_lock
        private_dir(images)
        server_log = os.path.join(run_dir, "server.log")
        server = start_detached([SERVER, "--port", "0"], server_log, append=True)
        pid = r["pid"] = server.pid
        port = int(wait_for("the server to listen",
                            lambda: re.findall(r"^listening on 127\.0\.0\.1:(\d+)$", read(server_log), re.M))[0])
        say(f"game_server.py runs as PID {pid} on 127.0.0.1:{port}, output in {server_log}")
        for i in range(1, args.clients + 1):
            log = os.path.join(run_dir, f"client-{i}.log")
            clients.append((start_detached([CLIENT, "--port", str(port), "--name", f"player-{i}"], log), log))
        r["clientPids"] = [c.pid for c, _ in clients]
        wait_for("every player to join", lambda: len(server_table(pid, server_log)) == args.clients
                 and all(REPORT.findall(read(log)) or "joined" in read(log) for _, log in clients), 30)
        time.sleep(1)  # a second of play
        before = server_table(pid, server_log)
        say(f"{args.clients} players connected: " + ", ".join(f"{n} (conn {c}, score {s})" for c, (n, _, s) in before.items()))
        t0 = time.monotonic()
        # --skip-in-flight: a player whose connection the kernel has completed but the server
        # has not yet accepted is left out (CRIU refuses the whole dump otherwise: "In-flight
        # connection (l)", criu/sk-inet.c); that player's connect fails and it joins again.
        tcp = ["--tcp-established", "--skip-in-flight", "--network-lock", lock]
        r["dumpMs"] = criu(["dump", "-t", str(pid), "-D", images, *tcp], os.path.join(run_dir, "dump.log"))
        server.wait(10)  # CRIU ended it; reaped, its PID is free for the restore
        events.append((0.0, time.monotonic() - t0, "dump"))
        say(f"dumped with {' '.join(tcp)} in {r['dumpMs']} ms; maintenance for {args.maintenance} s")
        time.sleep(args.maintenance)
        pidfile = os.path.join(run_dir, "restored.pid")
        at = time.monotonic() - t0
        # The lock's backend is in the images (CRIU ignores --network-lock at restore).
        r["restoreMs"] = criu(["restore", "-d", "-D", images, "--tcp-established", "--pidfile", pidfile],
                              os.path.join(run_dir, "restore.log"))
        with open(pidfile) as f:
            restored = r["restoredPid"] = int(f.read())
        events.append((at, time.monotonic() - t0, "restore"))
        r["downtimeMs"] = round(events[-1][1] * 1000, 1)
        r["frozenUs"] = frozen_us(images)
        time.sleep(1)  # a second of play after the restore
        events.append((time.monotonic() - t0, None, "end"))
        reports = [client_report(c.pid, log) for c, log in clients]
        after = server_table(restored, server_log)
        r["players"] = []
        for rep in reports:
            conn = int(rep["conn"])
            was, now = before.get(conn), after.get(conn)
            # The client's own view and the server's must agree: same connection number,
            # same client port, before and after.
            same = (rep["connected"] == "yes" and rep["original"] == "yes" and was is not None and now is not None
                    and was[0] == now[0] == rep["player"] and was[1] == now[1] == f"127.0.0.1:{rep['port']}")
            kept = rep["scoresOk"] == "yes" and was is not None and now is not None and now[2] >= was[2]
            r["players"].append({"player": rep["player"], "conn": conn, "port": int(rep["port"]), "originalConnection": same,
                                 "scoreBefore": was and was[2], "scoreAfter": now and now[2], "scoreOk": kept,
                                 "longestStallMs": int(rep["longestGapMs"]), "error": rep["error"].strip()})
        r["clientsStillConnected"] = sum(p["originalConnection"] for p in r["players"])
        r["scoresPreserved"] = all(p["scoreOk"] for p in r["players"])
        r["pauseMs"] = max(p["longestStallMs"] for p in r["players"])
        say(f"restored as PID {restored} in {r['restoreMs']} ms; {r['clientsStillConnected']}/{args.clients} "
            f"players on their original connection, longest pause {r['pauseMs']} ms (down {r['downtimeMs']:.0f} ms)")
        problems = [f"{p['player']}: " + ", ".join(
            (["not on its original connection"] if not p["originalConnection"] else [])
            + (["score not intact"] if not p["scoreOk"] else []) + ([p["error"]] if p["error"] else []))
            for p in r["players"] if not (p["originalConnection"] and p["scoreOk"])]
        if restored != pid:
            problems.append(f"restored PID {restored}, expected {pid}")
        if problems:
            raise LabError(BROKEN, "; ".join(problems))
        r["ok"] = True
    r["imagesDir"] = images
    return scenario_end(outcome, r, run_dir, lambda: events and draw(r, events, args), "game scenario",
                        "game: every player kept its connection and its score.")


def draw(r, events, args):
    dump = next((e for e in events if e[2] == "dump"), None)
    restore = next((e for e in events if e[2] == "restore"), None)
    total = events[-1][0] if events[-1][2] == "end" else (restore or dump)[1]
    spans, marks = [], []
    if dump:
        spans += [(0, dump[1], "F"), (dump[1], restore[0] if restore else total, ".")]
    if restore:
        spans += [(restore[0], restore[1], "R"), (restore[1], total, "=")]
    gap = r.get("pauseMs")
    lanes = [("server", spans, marks)]
    if gap is not None:
        # The longest gap a client saw, placed from the freeze on: what the players felt.
        lanes.append(("players", [(0, total, "-"), (0, gap / 1000, " ")], []))
    lines = [timeline.draw(lanes, {"F": "freeze + dump", ".": "down (maintenance)", "R": "restore", "=": "running",
                                   "-": "playing"}, total)]
    if dump:
        lines.append(f"    0.0 s  F dump with --tcp-established --network-lock {r['networkLock']}: {r['dumpMs']:.0f} ms "
                     f"(frozen {r['frozenUs'] / 1000:.1f} ms)")
    if restore:
        lines.append(f"{restore[0]:7.1f} s  R restore in {r['restoreMs']:.0f} ms after {args.maintenance} s of maintenance")
    if gap is not None:
        lines.append(f"players: {r['clientsStillConnected']}/{r['clients']} on their original connection, scores "
                     f"{'intact' if r['scoresPreserved'] else 'NOT intact'}, longest pause {gap} ms "
                     f"(the server was down {r['downtimeMs']:.0f} ms by the tool's clock; look: "
                     f"sudo crit show {r['imagesDir']}/files.img, sudo crit x {r['imagesDir']} fds)")
    return "\n".join(lines)
