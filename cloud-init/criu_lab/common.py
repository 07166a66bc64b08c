"""What every command shares: exit codes, paths, errors, running CRIU and crit."""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import time

OK, BROKEN, USAGE, NOT_READY = 0, 1, 2, 3
# Tests move the paths with these variables.
E = os.environ.get
CRIU = E("CRIU_LAB_CRIU", "/usr/local/sbin/criu")
CRIT = E("CRIU_LAB_CRIT", "/usr/local/bin/crit")
COUNTER = E("CRIU_LAB_COUNTER", "/usr/local/lib/criu-lab/counter.py")
STATE_DIR = E("CRIU_LAB_STATE_DIR", "/var/lib/criu-lab")
LOG_DIR = E("CRIU_LAB_LOG_DIR", "/var/log/criu-lab")


class LabError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def run(cmd, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def criu_version():
    try:
        m = re.search(r"^Version:\s*(\S+)", run([CRIU, "--version"], 30).stdout, re.M)
    except OSError:
        return ""
    return m.group(1) if m else ""


def ready(what):
    if os.geteuid() != 0:
        raise LabError(USAGE, f"{what} needs root: sudo criu-lab {what}")
    if not criu_version():
        raise LabError(NOT_READY, f"CRIU is not installed at {CRIU} (see {LOG_DIR}/install.log)")


def base():
    return {"ok": False, "criuVersion": criu_version(), "kernel": platform.release()}


def criu(argv, log):
    """Runs `criu ARGV -o LOG -v4`; returns its wall time in ms, or raises with the log's tail."""
    started = time.monotonic()
    p = run([CRIU, *argv, "-o", log, "-v4"])
    if p.returncode != 0:
        with open(log, errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        raise LabError(BROKEN, f"criu {argv[0]} exited {p.returncode}; end of {log}:\n{tail}")
    return round((time.monotonic() - started) * 1000, 1)


def crit_show(path):
    p = run([CRIT, "show", path])
    if p.returncode != 0:
        raise LabError(BROKEN, f"crit show {path} failed: {p.stderr.strip()[-300:]}")
    return json.loads(p.stdout).get("entries", [])


def human_bytes(n):
    """1536 -> '1.5 KiB': sizes a learner reads at a glance."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def checked(r, problems, code):
    """Issue 9 item 4: a command validates the JSON it is about to print, so that "exit 0 but
    broken" cannot happen. PROBLEMS lists what is wrong with R; if any (or R is not strict
    JSON), R becomes a failure with an `error` naming them and the exit code BROKEN."""
    try:
        json.dumps(r, allow_nan=False)
    except (TypeError, ValueError) as e:
        problems = [*problems, f"not JSON: {e}"]
    if not problems:
        return code
    r["ok"] = False
    r["error"] = "; ".join(filter(None, [r.get("error"), "its own result failed validation: " + "; ".join(problems)]))
    return code if code not in (OK, None) else BROKEN


def whole(v):
    """argparse type: a whole number >= 0."""
    if not v.isdigit():
        raise argparse.ArgumentTypeError(f"'{v}' is not a whole number")
    return int(v)


def keep_latest_passing(run_dir):
    """Marks RUN_DIR (LOG_DIR/KIND-TIME-PID) as passed and removes the earlier passing runs of
    the same KIND: a passing demo, training or game keeps its images until the next one of its
    kind passes, and never removes another kind's; failed runs stay as evidence."""
    kind = os.path.basename(run_dir).split("-", 1)[0] + "-"
    for old in os.listdir(LOG_DIR):
        path = os.path.join(LOG_DIR, old)
        if (old.startswith(kind) and path != run_dir and not os.path.islink(path)
                and os.path.isfile(os.path.join(path, "passed"))):
            shutil.rmtree(path, ignore_errors=True)
    open(os.path.join(run_dir, "passed"), "w").close()
