#!/usr/bin/env python3
"""The lab's game client: a player that joins the game server and plays continuously.

It has no reconnect logic on purpose: if its connection drops it says so and exits 1, so a
server checkpoint that loses connections cannot go unnoticed. It checks every reply itself:
the connection number must stay the one the server gave it at JOIN (the original
connection), and the score must be exactly the sum of its plays. Every 2 s it prints
"NAME: score S after N plays on conn ID". `kill -USR1 PID` prints a
"report player=NAME conn=ID original=yes|no port=LOCALPORT plays=N score=S scoresOk=yes|no
longestGapMs=G connected=yes" line (the longest wait for a reply is what a player feels).
"""
import argparse
import os
import random
import re
import signal
import socket
import sys
import time

REPLY = re.compile(r"^SCORE (\S+) (\d+) conn=(\d+)$")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True, help="the player's name")
    parser.add_argument("--play-ms", type=float, default=20, help="milliseconds between plays (default 20)")
    parser.add_argument("--progress-seconds", type=float, default=2, help="seconds between progress lines (default 2)")
    args = parser.parse_args()

    asked = []
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: asked.append(True))
    # A wait longer than this for one reply counts as a lost connection.
    try:
        sock = socket.create_connection((args.host, args.port), timeout=120)
    except OSError as e:
        print(f"cannot connect to {args.host}:{args.port}: {e}", file=sys.stderr, flush=True)
        return 1
    reader = sock.makefile("r", encoding="utf-8", newline="\n")
    sock.sendall(f"JOIN {args.name}\n".encode())
    welcome = re.match(r"^WELCOME (\S+) conn=(\d+) score=(\d+)$", reader.readline().strip())
    if not welcome:
        print("no WELCOME from the server", flush=True)
        return 1
    conn, score = welcome.group(2), int(welcome.group(3))
    port = sock.getsockname()[1]
    print(f"PID: {os.getpid()}", flush=True)
    print(f"joined player={args.name} conn={conn} port={port} score={score}", flush=True)
    s = {"original": True, "plays": 0, "scoresOk": True, "gap": 0.0, "connected": True}
    rng = random.Random(args.name)

    def report(extra=""):
        yes = lambda v: "yes" if v else "no"
        print(f"report player={args.name} conn={conn} original={yes(s['original'])} port={port} "
              f"plays={s['plays']} score={score} scoresOk={yes(s['scoresOk'])} "
              f"longestGapMs={s['gap']:.0f} connected={yes(s['connected'])}{extra}", flush=True)

    last = shown = time.monotonic()
    while True:
        points = rng.randint(1, 9)
        try:
            sock.sendall(f"PLAY {points}\n".encode())
            line = reader.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
        except OSError as e:
            s["connected"] = False
            report(f" error={type(e).__name__}: {e}")
            return 1
        now = time.monotonic()
        s["gap"] = max(s["gap"], (now - last) * 1000)
        last = now
        got = REPLY.match(line.strip())
        score += points
        s["plays"] += 1
        if not got or got.group(3) != conn:
            s["original"] = False
        if not got or int(got.group(2)) != score:
            s["scoresOk"] = False
        while asked:
            asked.pop()
            report()
        if now - shown >= args.progress_seconds:
            shown = now
            print(f"{args.name}: score {score} after {s['plays']} plays on conn {conn}", flush=True)
        time.sleep(args.play_ms / 1000)


if __name__ == "__main__":
    sys.exit(main())
