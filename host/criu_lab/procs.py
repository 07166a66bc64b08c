"""The one helper for a process under test: start it detached, wait on it, stop it by PID."""
import os
import signal
import subprocess
import sys
import time

from .outcome import BROKEN, LabError


def start_detached(argv, log_path, append=False, cwd=None):
    """Starts ARGV in its own session with no terminal, output to LOG_PATH: how a process
    started over SSH without a tty must be started to be dumped without --shell-job
    (docs/design.md "Facts"). A `.py` program runs under this interpreter, in CWD (default: ours).
    Returns the Popen.
    APPEND opens the log with O_APPEND: a process restored from an older checkpoint then
    writes after what it wrote before the crash instead of over it (CRIU restores the
    file position it had)."""
    if argv[0].endswith(".py"):
        argv = [sys.executable, *argv]
    with open(log_path, "a" if append else "w") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                cwd=cwd)


def wait_for(what, predicate, timeout=30):
    """Polls PREDICATE until it returns a true value, which it returns; raises after TIMEOUT s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise LabError(BROKEN, f"timed out after {timeout} s waiting for {what}")


def alive(pid):
    """True while PID exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(pid, marker):
    """Ends PID with SIGTERM (SIGKILL after 10 s), only if its command line still contains
    MARKER (bytes): a PID reused by another process is left alone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if marker not in f.read():
                return
        os.kill(pid, signal.SIGTERM)
        wait_for(f"PID {pid} to end", lambda: not alive(pid), 10)
    except (OSError, TypeError):
        pass
    except LabError:
        os.kill(pid, signal.SIGKILL)
