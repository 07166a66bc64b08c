"""timeline.py, and the scenarios' drawings built on it (training, game)."""
import argparse
import time

import pytest

from criu_lab import game, timeline, training


def lane(text, name):
    return next(line for line in text.split("\n") if line.startswith(name))


def test_draw_scales_time_to_the_width_with_four_ticks():
    out = timeline.draw([("a", [(0, 59, "=")], [(30, "X")])], {"=": "running", "X": "kill"}, 59).split("\n")
    assert out == [
        "time (s)     0.0" + " " * 17 + "19.7" + " " * 15 + "39.3" + " " * 16 + "59.0",
        "a            " + "=" * 30 + "X" + "=" * 29,
        "             = running  X kill",
    ]
    assert len(out[1]) == 13 + timeline.WIDTH


def test_draw_paints_spans_in_order_and_marks_over_them():
    row = lane(timeline.draw([("job", [(0, 9, "="), (3, 6, ".")], [(0, "F"), (9, "X")])], {}, 9), "job")
    # Columns: 59 / 9 per second; the gap from 3 s (col 20) to 6 s (col 39) painted over the run.
    assert row == "job          F" + "=" * 19 + "." * 20 + "=" * 19 + "X"


def test_a_short_span_after_another_keeps_a_column_of_its_own():
    spans = [(0, 6.4, "="), (6.4, 6.45, "."), (6.45, 6.548, "R"), (6.548, 6.8, "=")]
    row = lane(timeline.draw([("trainer", spans, [(6.4, "X")])], {}, 6.8), "trainer")
    # The kill, the down time and a 98 ms restore fall into one column (56): the kill's mark
    # covers the down time there, and the restore gets the next column.
    assert row == "trainer      " + "=" * 56 + "XR=="


def test_draw_with_no_time_at_all():
    out = timeline.draw([("x", [(0, 0, "=")], [])], {"=": "running"}, 0).split("\n")
    assert out[0].startswith("time (s)     0.0")
    assert out[1] == "x            ="


def args(**kw):
    return argparse.Namespace(**{"interval": 5.0, "maintenance": 2.0, **kw})


TRAINING = {"incremental": False, "checkpoints": 2, "restoredCheckpoint": 2, "resumedAtStep": 19, "lostSteps": 3, "stateMatches": True,
            "overheadPercent": 0.42, "imagesDir": "/var/log/criu-lab/training-x/checkpoints"}
TRAINING_EVENTS = [(0.0, "start", 100.0), (5.0, "checkpoint", 1, 9, 12_300, 64 * 2**20, "ram", 310.4),
                   (10.0, "checkpoint", 2, 19, 15_000, 3 * 2**20, "disk", 21.0), (11.5, "crash", 22),
                   (11.6, "restore", 98.0), (12.0, "end")]


def test_training_drawing_of_a_recovery():
    lines = training.draw(TRAINING, TRAINING_EVENTS, args()).split("\n")
    assert lane("\n".join(lines), "trainer").startswith("trainer      =")
    assert lines[2] == ("             = running  F checkpoint (frozen)  X kill -9  . down  R restore")
    row = lines[1][13:]
    assert row.index("F") < row.rindex("F") < row.index("X") < row.index("R") < row.rindex("=")
    assert lines[3:] == [
        "    5.0 s  F checkpoint 1 (full) at step 9: frozen 12.3 ms, 64.0 MiB of images in RAM, on disk 310 ms later",
        "   10.0 s  F checkpoint 2 (full) at step 19: frozen 15.0 ms, 3.0 MiB of images straight to disk, synced in "
        "21 ms",
        "   11.5 s  X kill -9 at step 22",
        "   11.6 s  R restore of checkpoint 2 in 98 ms: resumed at step 19, 3 steps lost, state matches",
        "overhead: 0.42 % of each 5.0 s interval spent frozen (look: sudo crit show "
        "/var/log/criu-lab/training-x/checkpoints/1/stats-dump)",
    ]


def test_training_drawing_of_a_failed_restore():
    r = {**TRAINING, "incremental": True, "stateMatches": False, "overheadPercent": None}
    del r["resumedAtStep"], r["lostSteps"]
    events = TRAINING_EVENTS[:4] + [(11.6, "restore", 98.0), (12.0, "end")]
    lines = training.draw(r, events, args()).split("\n")
    assert ("   10.0 s  F checkpoint 2 (incremental) at step 19: frozen 15.0 ms, 3.0 MiB of images straight to disk, "
            "synced in 21 ms") in lines
    assert lines[-1] == "   11.6 s  R restore of checkpoint 2 in 98 ms: resumed at step ?, ? steps lost, state DIFFERS"


def test_training_drawing_of_a_run_that_failed_midway(monkeypatch):
    # No "end" event: the drawing ends now, 8 s after the start (the start event's clock).
    monkeypatch.setattr(time, "monotonic", lambda: 108.0)
    events = TRAINING_EVENTS[:2]
    out = training.draw({**TRAINING, "overheadPercent": None}, events, args()).split("\n")
    assert out[0].endswith("8.0")
    assert lane("\n".join(out), "trainer")[13:].index("F") == round(5 / 8 * (timeline.WIDTH - 1))


GAME = {"networkLock": "iptables", "dumpMs": 120.4, "frozenUs": 45_600, "restoreMs": 80.0, "pauseMs": 2300,
        "downtimeMs": 2280.4,
        "clientsStillConnected": 4, "clients": 4, "scoresPreserved": True, "imagesDir": "/l/game-x/images"}


def test_game_drawing_shows_the_server_and_what_the_players_felt():
    events = [(0.0, 0.2, "dump"), (2.2, 2.3, "restore"), (3.3, None, "end")]
    text = game.draw(GAME, events, args())
    server, players = lane(text, "server")[13:], lane(text, "players")[13:]
    assert server.startswith("F") and "." in server and server.index(".") < server.index("R") < server.index("=")
    # The players' longest gap (2.3 s of 3.3 s) is blank from the freeze on, then they play.
    assert players == " " * (round(2.3 / 3.3 * 59) + 1) + "-" * (59 - round(2.3 / 3.3 * 59))
    lines = text.split("\n")
    assert "    0.0 s  F dump with --tcp-established --network-lock iptables: 120 ms (frozen 45.6 ms)" in lines
    assert "    2.2 s  R restore in 80 ms after 2.0 s of maintenance" in lines
    assert lines[-1] == ("players: 4/4 on their original connection, scores intact, longest pause 2300 ms (the "
                         "server was down 2280 ms by the tool's clock; look: sudo crit show /l/game-x/images/files.img, "
                         "sudo crit x /l/game-x/images fds)")


def test_game_drawing_of_a_failed_restore_has_no_players_lane():
    r = {k: v for k, v in GAME.items() if k != "pauseMs"}
    text = game.draw(r, [(0.0, 0.2, "dump")], args())
    assert "players" not in text.split("\n")[2]
    # It ends at the dump: the down time after it keeps the last column.
    assert lane(text, "server")[13:] == "F" * (timeline.WIDTH - 1) + "."


# The game's flag types: --clients (game.count, 1 to 64) and --maintenance (game.seconds, 0 to 600).
@pytest.mark.parametrize("parse, value, number", [
    (game.count, "1", 1), (game.count, "64", 64),
    (game.seconds, "0", 0.0), (game.seconds, "2.5", 2.5), (game.seconds, "600", 600.0),
])
def test_game_flag_values_in_range(parse, value, number):
    assert parse(value) == number


@pytest.mark.parametrize("parse, value, allowed", [
    *((game.count, v, "a number of clients from 1 to 64") for v in ["0", "65", "-1", "two"]),
    *((game.seconds, v, "a number of seconds from 0 to 600") for v in ["-0.1", "600.5", "nan", "soon"]),
])
def test_game_flag_values_out_of_range(parse, value, allowed):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^'{value}' is not {allowed}$"):
        parse(value)


def test_game_parses_the_server_table_and_a_client_report():
    table = "table conn=1 player=player-1 peer=127.0.0.1:40000 score=17\ntable conn=2 player=p2 peer=127.0.0.1:40002 score=3\ntable end\n"
    assert game.TABLE.findall(table) == [("1", "player-1", "127.0.0.1:40000", "17"), ("2", "p2", "127.0.0.1:40002", "3")]
    report = ("report player=player-1 conn=1 original=yes port=40000 plays=42 score=17 scoresOk=yes "
              "longestGapMs=2301 connected=yes\n")
    assert game.REPORT.findall(report) == [("player-1", "1", "yes", "40000", "42", "17", "yes", "2301", "yes", "")]
