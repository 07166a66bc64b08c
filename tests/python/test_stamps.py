"""stamps.py: the gap a client of the counter saw, from its output lines stamped on arrival."""
import time

import pytest

from criu_lab import stamps
from criu_lab.outcome import LabError

HERE = [(10.0, "PID: 42"), (10.0, "Counter: 0"), (10.5, "Counter: 1"), (11.0, "Counter: 2")]
# There: the carried log arrives whole (its old lines stamped at once), then the restored count.
THERE = [(12.2, "PID: 42"), (12.2, "Counter: 0"), (12.2, "Counter: 1"), (12.2, "Counter: 2"),
         (12.9, "Counter: 3"), (13.4, "Counter: 4")]


def test_the_gap_runs_from_the_last_line_here_to_the_first_new_line_there():
    assert stamps.gap_ms(HERE, THERE, 2, 3) == 1900.0


def test_a_count_printed_twice_there_counts_from_its_first_arrival():
    assert stamps.gap_ms(HERE, THERE + [(14.0, "Counter: 3")], 2, 3) == 1900.0


@pytest.mark.parametrize("last, first, message", [
    (7, 3, "never saw 'Counter: 7' here"),
    (2, 9, "never saw 'Counter: 9' there"),
    (7, 9, "never saw 'Counter: 7' here nor 'Counter: 9' there"),
])
def test_a_line_never_seen_is_named(last, first, message):
    with pytest.raises(LabError, match=message):
        stamps.gap_ms(HERE, THERE, last, first)


def test_following_a_file_stamps_lines_as_they_are_written_even_before_it_exists(tmp_path):
    log = tmp_path / "later" / "counter.log"
    f = stamps.follow_here(str(log))
    try:
        time.sleep(0.2)
        log.parent.mkdir()
        log.write_text("Counter: 0\n")
        deadline = time.monotonic() + 5
        while not f.lines and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # after the first stamp: the two are at least 0.5 s apart, however late it came
        with open(log, "a") as out:
            out.write("Counter: 1\n")
        deadline = time.monotonic() + 5
        while len(f.lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        after = stamps.Stamped(["echo", "Counter: 2"], ends_on_eof=True)
        after.close()
        gap = stamps.wait_gap(f, after, 0, 2, timeout=5)
    finally:
        f.close()
    assert [line for _, line in f.lines] == ["Counter: 0", "Counter: 1"]
    # The second written 0.5 s after the first was stamped; a stamp is late by the time tail takes
    # to notice (a poll of 20 ms at most while the file is new), more on a busy host.
    assert 0.5 <= f.lines[1][0] - f.lines[0][0] < 3
    assert gap > 400
    assert f.p.returncode is not None  # ended by close()
