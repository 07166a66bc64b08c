"""How a command ends: the exit codes, the error that carries one, and the one wrapper that
turns what went wrong into a result (`attempt`) and its FAILED line (`failed`)."""
import os
import subprocess
from contextlib import contextmanager

# docs/design.md "Contracts": 0 ok; 1 the lab does not work; 2 usage or bad input; 3 not
# reachable, not ready or not installed (a dump whose images would not fit is refused so).
OK, BROKEN, USAGE, NOT_READY = 0, 1, 2, 3

# What a command's own steps may raise besides LabError: a file that vanished, a command that
# timed out, output that did not parse. Each ends the command with BROKEN and its message.
EXPECTED = (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, StopIteration)


class LabError(Exception):
    """A failure with its exit code. `result`, when set, is what the failing step knew (the
    mode --mode auto picked, where the images are): it goes into the command's JSON."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def error_text(e):
    """A LabError's message as it is; any other error named by its type, as `ValueError: ...`."""
    return str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}"


class Attempt:
    """What `attempt` found: `code` (OK until something failed) and whether it failed."""
    code = OK
    failed = False


@contextmanager
def attempt(r, cleanup=None):
    """Runs the block; a LabError or an EXPECTED error ends it there and becomes R's failure:
    R updated with the error's `result` (if any), `ok` false and `error` its text, and the
    yielded Attempt's `code` the error's (BROKEN for anything but a LabError). CLEANUP (what
    the block started: a process under test, an SSH connection) runs last, whatever happened."""
    a = Attempt()
    try:
        yield a
    except (LabError, *EXPECTED) as e:
        r.update(getattr(e, "result", {}), ok=False, error=error_text(e))
        a.code, a.failed = (e.code if isinstance(e, LabError) else BROKEN), True
    finally:
        if cleanup:
            cleanup()


def failed(what, r, kept_dir=None, holding="logs and images"):
    """The line a failed command ends with: `WHAT FAILED: <error>`, and where its evidence is
    kept (`HOLDING kept in KEPT_DIR`) when it made that directory."""
    kept = f"\n{holding} kept in {kept_dir}" if kept_dir and os.path.isdir(kept_dir) else ""
    return f"{what} FAILED: {r['error']}{kept}"
