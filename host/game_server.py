#!/usr/bin/env python3
"""The lab's game server: players connect over TCP and score points; it keeps every score.

Protocol (one line each way): "JOIN NAME" -> "WELCOME NAME conn=ID score=S", then
"PLAY N" -> "SCORE NAME S conn=ID". ID numbers each connection the server accepts, so a
client that lost its connection and came back gets a new one. Scores are kept per player
name. `kill -USR1 PID` prints the table: one "table conn=ID player=NAME peer=ADDR:PORT
score=S" line per connection, then "table end". Checkpointed with `criu dump
--tcp-established` and restored, it goes on with the same connections and scores.
"""
import argparse
import os
import selectors
import signal
import socket


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    args = parser.parse_args()

    listener = socket.create_server((args.host, args.port))
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    scores, players = {}, {}  # name -> score; socket -> [conn id, name, peer, input buffer]
    next_id = [1]
    asked = []
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: asked.append(True))
    print(f"PID: {os.getpid()}", flush=True)
    print(f"listening on {args.host}:{listener.getsockname()[1]}", flush=True)

    def drop(sock, why):
        conn_id, name, peer, _ = players.pop(sock)
        sel.unregister(sock)
        sock.close()
        print(f"conn={conn_id} player={name} peer={peer} left: {why}", flush=True)

    def serve(sock, line):
        player = players[sock]
        verb, _, arg = line.partition(" ")
        if verb == "JOIN" and arg and player[1] is None:
            player[1] = arg
            scores.setdefault(arg, 0)
            print(f"conn={player[0]} player={arg} peer={player[2]} joined", flush=True)
            return f"WELCOME {arg} conn={player[0]} score={scores[arg]}\n"
        if verb == "PLAY" and arg.isdigit() and player[1] is not None:
            scores[player[1]] += int(arg)
            return f"SCORE {player[1]} {scores[player[1]]} conn={player[0]}\n"
        return f"ERROR bad request {line!r}\n"

    while True:
        for key, _ in sel.select(timeout=0.2):
            if key.fileobj is listener:
                try:
                    sock, (host, port) = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                players[sock] = [next_id[0], None, f"{host}:{port}", b""]
                next_id[0] += 1
                sel.register(sock, selectors.EVENT_READ)
                continue
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                drop(sock, str(e))
                continue
            if not data:
                drop(sock, "closed by the client")
                continue
            player = players[sock]
            player[3] += data
            *lines, player[3] = player[3].split(b"\n")
            try:
                # Replies are a few bytes: the socket buffer takes them whole.
                sock.sendall("".join(serve(sock, l.decode(errors="replace").strip()) for l in lines).encode())
            except OSError as e:
                drop(sock, str(e))
        while asked:
            asked.pop()
            for conn_id, name, peer, _ in sorted(players.values()):
                print(f"table conn={conn_id} player={name} peer={peer} score={scores.get(name, 0)}", flush=True)
            print("table end", flush=True)


if __name__ == "__main__":
    main()
