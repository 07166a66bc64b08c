"""Downtime as the client sees it: a program's output lines, stamped as they arrive.

The counter prints "Counter: N" with no time on it (the guide's transcripts show it so), so the
migration scenario follows its log with `tail -F` here and, through the SSH master, there, and
stamps each line on this host's monotonic clock as it arrives: one clock for both hosts. The
gap between the last count before the freeze and the first after the restore is what a
client reading that output waited; the tool's downtimeMs is what the tool measured around
its own steps. The stamps are late by the time a line takes to arrive (inotify here, one SSH
hop from there): a few ms, against a gap of a counter interval and more.
"""
import shlex
import subprocess
import threading
import time

from .outcome import BROKEN, LabError


class Stamped:
    """ARGV's output lines, each with the monotonic time it arrived: [(t, line)]. ARGV runs
    until close(), which closes its stdin and, unless it ENDS_ON_EOF (a remote follower: see
    follow_there), ends it by PID; one that does not end within 5 s is ended too."""

    def __init__(self, argv, ends_on_eof=False):
        self.lines, self.ends_on_eof = [], ends_on_eof
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, errors="replace")
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.p.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def close(self):
        try:
            self.p.stdin.close()
            if not self.ends_on_eof:
                self.p.terminate()
            self.p.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.p.terminate()
            self.p.wait(5)
        self.reader.join(5)


def follow_here(path):
    """PATH followed from its first line, also before it exists (-F retries; -s for polling)."""
    return Stamped(["tail", "-n", "+1", "-F", "-s", "0.02", path])


def follow_there(remote, path):
    """PATH on REMOTE followed as follow_here does; the remote shell ends its tail when this
    end closes its stdin (the SSH channel's), so nothing is left running there."""
    script = f"tail -n +1 -F -s 0.02 {shlex.quote(path)} 2>/dev/null & t=$!; read _; kill $t"
    return Stamped(remote.argv(script), ends_on_eof=True)


def first_stamp(lines, text):
    return next((t for t, line in lines if line == text), None)


def gap_ms(before, after, last, first):
    """Ms between the line "Counter: LAST" in BEFORE (stamped lines here) and the first
    "Counter: FIRST" in AFTER (stamped lines there), or raises naming the line not seen."""
    t0, t1 = first_stamp(before, f"Counter: {last}"), first_stamp(after, f"Counter: {first}")
    if t0 is None or t1 is None:
        missing = [f"'Counter: {n}' {where}" for n, t, where in ((last, t0, "here"), (first, t1, "there")) if t is None]
        raise LabError(BROKEN, f"the client's view of the downtime: never saw {' nor '.join(missing)}")
    return round((t1 - t0) * 1000, 1)


def wait_gap(before, after, last, first, timeout=10):
    """gap_ms once both lines arrived (the one there comes a hop after the scenario saw it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return gap_ms(before.lines, after.lines, last, first)
        except LabError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
