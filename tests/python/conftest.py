"""The host command's unit tests: its pure parts, and what runs on a temporary directory
without root. Run by the system Python, as the lab host runs the command:
/usr/bin/python3 -m pytest -q tests/python (the unit tier runs it: tests/unit/host-command.test.ts)."""
import os
import subprocess
import sys

import pytest

# Nothing written beside the lab's files (the package is copied to hosts as it is).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host"))

from criu_lab import clean, common, demo, procs  # noqa: E402


@pytest.fixture
def log_dir(tmp_path, monkeypatch):
    """LOG_DIR moved to a fresh temporary directory (not made yet), in every module that
    imported it by name."""
    path = str(tmp_path / "log")
    for module in (common, demo, clean):
        monkeypatch.setattr(module, "LOG_DIR", path)
    return path


@pytest.fixture
def make_run(log_dir):
    """make_run(NAME, passed, size): a run directory LOG_DIR/NAME, marked passed or not,
    holding SIZE bytes of images."""
    def make(name, passed=False, size=0):
        path = os.path.join(log_dir, name)
        os.makedirs(os.path.join(path, "images"))
        if size:
            with open(os.path.join(path, "images", "pages-1.img"), "wb") as f:
                f.write(b"\1" * size)
        if passed:
            open(os.path.join(path, common.PASSED), "w").close()
        return path
    return make


def asleep(pid):
    """True once PID sleeps (state S): for `sleep`, in its nanosleep, done starting."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"


@pytest.fixture
def sleeper(tmp_path):
    """Starts `sleep` processes (or ARGV, which waits on its stdin, a pipe: e.g. cat; cwd,
    stdout as given), returns each once it sleeps, and ends each by its PID afterwards."""
    started = []

    def start(cwd=None, stdout=subprocess.DEVNULL, argv=("sleep", "600")):
        p = subprocess.Popen(argv, cwd=cwd or str(tmp_path), stdin=subprocess.PIPE, stdout=stdout,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(p)
        # Popen returns once the exec has begun (close-on-exec closed its pipe): the program
        # may still be setting up its arguments, memory and files (a locale file open).
        # Asleep, it is done, and what /proc shows of it stays as it is.
        procs.wait_for("sleep to fall asleep", lambda: asleep(p.pid))
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()
