"""What every command shares: paths, running CRIU and crit, reading the counter, run directories."""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import time

from .outcome import BROKEN, NOT_READY, OK, USAGE, LabError, failed

# Tests move the paths with these variables.
E = os.environ.get
CRIU = E("CRIU_LAB_CRIU", "/usr/local/sbin/criu")
CRIT = E("CRIU_LAB_CRIT", "/usr/local/bin/crit")
COUNTER = E("CRIU_LAB_COUNTER", "/usr/local/lib/criu-lab/counter.py")
STATE_DIR = E("CRIU_LAB_STATE_DIR", "/var/lib/criu-lab")
LOG_DIR = E("CRIU_LAB_LOG_DIR", "/var/log/criu-lab")


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


def criu(argv, log, timeout=120, check_room=True):
    """Runs `criu ARGV -o LOG -v4`; returns its wall time in ms, or raises with the log's tail.
    A dump first checks that its images fit (room_for_dump), unless the caller did
    (CHECK_ROOM false: a migration checks both hosts, Migration.room)."""
    if check_room and argv[0] == "dump":
        room_for_dump(int(argv[argv.index("-t") + 1]), argv[argv.index("-D") + 1])
    started = time.monotonic()
    p = run([CRIU, *argv, "-o", log, "-v4"], timeout)
    if p.returncode != 0:
        raise LabError(BROKEN, f"criu {argv[0]} exited {p.returncode}; end of {log}:\n{tail(log)}")
    return round((time.monotonic() - started) * 1000, 1)


def tail(path, n=20):
    """The last N lines of PATH (a CRIU log), or why it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return str(e)


# The counter's output: one `Counter: N` line per count (counter.py).
COUNT = re.compile(r"^Counter: (\d+)$", re.M)


def counts_in(text):
    """The counts in TEXT (the counter's output, or a part of it), in order."""
    return [int(n) for n in COUNT.findall(text)]


def counts(path):
    """The counts in the counter's output file PATH ([] while it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            return counts_in(f.read())
    except OSError:
        return []


def crit_show(path):
    p = run([CRIT, "show", path])
    if p.returncode != 0:
        raise LabError(BROKEN, f"crit show {path} failed: {p.stderr.strip()[-300:]}")
    return json.loads(p.stdout).get("entries", [])


# CRIU's own account of a dump and a restore (its stats-dump and stats-restore images, as
# `crit show` prints them), renamed to the lab's JSON style. Times in µs, as CRIU gives them.
DUMP_STATS = {"freezing_time": "freezingTimeUs", "frozen_time": "frozenTimeUs", "memdump_time": "memdumpTimeUs",
              "memwrite_time": "memwriteTimeUs", "pages_scanned": "pagesScanned", "pages_written": "pagesWritten",
              "pages_skipped_parent": "pagesSkippedParent", "pages_lazy": "pagesLazy"}
RESTORE_STATS = {"forking_time": "forkingTimeUs", "restore_time": "restoreTimeUs", "pages_restored": "pagesRestored"}
STATS = {"dump": DUMP_STATS, "restore": RESTORE_STATS}


def stats_of(entries, kind):
    """The stats of KIND ("dump" or "restore") in ENTRIES (crit show's), renamed; the fields
    this CRIU does not write are left out. Values as crit gives them: the commands' own checks
    of their results judge them (demo.problems: a frozen time that is no whole number)."""
    entry = entries[0].get(kind) if entries and isinstance(entries[0], dict) else None
    return {key: entry[field] for field, key in STATS[kind].items() if isinstance(entry, dict) and field in entry}


def criu_stats(images_dir):
    """CRIU's timings and page counts from IMAGES_DIR's stats-dump and stats-restore (whichever
    are there), in one dict: {} when neither is, or crit cannot read them (the stats are an
    account of a dump, never a reason for it to fail)."""
    stats = {}
    for kind in STATS:
        path = os.path.join(images_dir, f"stats-{kind}")
        if os.path.isfile(path):
            try:
                stats.update(stats_of(crit_show(path), kind))
            except (LabError, OSError, ValueError, subprocess.SubprocessError):
                pass
    return stats


# Why a lazy dump's stats-dump is left out of the JSON (CRIU 4.2, read in its sources): once
# the images are written, criu/cr-dump.c cr_dump_finish calls cr_lazy_mem_dump, whose
# cr_page_server (criu/page-xfer.c) calls init_stats(DUMP_STATS) (criu/stats.c), which puts a
# new, zeroed block in place of the dump's. Every figure of the dump is gone: freezing,
# memdump, memwrite and the page counts read 0, and cr_dump_finish's timing_stop(TIME_FROZEN)
# measures from a start that block never had (seen: the guest's uptime), not a freeze.
LAZY_DUMP_STATS = ("a lazy dump's stats-dump is not its own: CRIU's lazy page server resets the dump's "
                   "stats before they are written (criu/page-xfer.c cr_page_server: init_stats), so its "
                   "frozen time is a clock reading and every other figure 0; the lab's freezeMs times the dump")


def dump_stats(mode, stats):
    """STATS (criu_stats' dump figures) as the JSON gives them for MODE: None for lazy,
    whose stats-dump describes no dump (LAZY_DUMP_STATS)."""
    return None if mode == "lazy" else stats


def frozen_us(images_dir):
    """How long the dump into IMAGES_DIR kept the process frozen (µs, CRIU's stats-dump), or
    raises a LabError that names the file: the scenarios report it."""
    frozen = criu_stats(images_dir).get("frozenTimeUs")
    if frozen is None:
        raise LabError(BROKEN, f"no frozen time in {images_dir}/stats-dump (missing, or `crit show` cannot read it)")
    return frozen


def human_bytes(n):
    """1536 -> '1.5 KiB': sizes a learner reads at a glance."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def checked(r, problems, code):
    """A command validates the JSON it is about to print, so that "exit 0 but
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


# A run's directory: LOG_DIR/KIND-TIME-PID, PID being the criu-lab process that made it (on a
# migration's destination: the source's). A passing run holds a file named PASSED.
RUN = re.compile(r"^([a-z]+)-\d{8}T\d{6}Z-(\d+)$")
PASSED = "passed"


def run_root(path):
    """The run directory (LOG_DIR/KIND-TIME-PID) that PATH is in or is."""
    rel = os.path.relpath(path, LOG_DIR).split(os.sep)[0]
    return os.path.join(LOG_DIR, rel)


def new_run(kind):
    """Where a new run of KIND keeps its logs and images: LOG_DIR/KIND-TIME-PID (made by
    private_dir)."""
    return os.path.join(LOG_DIR, time.strftime(f"{kind}-%Y%m%dT%H%M%SZ-", time.gmtime()) + str(os.getpid()))


def private_dir(path):
    """Makes PATH (a run's directory, or one in it) root's alone, 0700, and LOG_DIR too, whatever
    made it before: checkpoint images hold a process's memory, its secrets with it. The files
    in it are private by the command's umask (cli.main)."""
    os.makedirs(LOG_DIR, 0o700, exist_ok=True)
    os.chmod(LOG_DIR, 0o700)
    os.makedirs(path, 0o700)


def scenario_end(outcome, r, run_dir, picture, what, passed, holding="logs and images"):
    """A scenario's last words: when R passed, the earlier passing runs of its kind go and the
    picture ends with PASSED; when it failed, the picture so far (PICTURE returns None when
    nothing was drawn yet) and the FAILED line naming where HOLDING are kept. Returns
    (exit code, R, text)."""
    drawn = picture()
    if r["ok"]:
        keep_latest_passing(run_dir)  # earlier passing runs go; failed runs stay
        return OK, r, f"{drawn}\n{passed}"
    return outcome.code, r, (f"{drawn}\n" if drawn else "") + failed(what, r, run_dir, holding)


def keep_latest_passing(run_dir):
    """Marks the run RUN_DIR is in as passed and removes the earlier passing runs of the same
    KIND: a passing run keeps its images until the next one of its kind passes, and never
    removes another kind's; failed runs stay as evidence (`criu-lab clean --all` removes them)."""
    run_dir = run_root(run_dir)
    kind = os.path.basename(run_dir).split("-", 1)[0] + "-"
    for old in os.listdir(LOG_DIR):
        path = os.path.join(LOG_DIR, old)
        if (old.startswith(kind) and path != run_dir and not os.path.islink(path)
                and os.path.isfile(os.path.join(path, PASSED))):
            shutil.rmtree(path, ignore_errors=True)
    open(os.path.join(run_dir, PASSED), "w").close()


def du(path):
    """Bytes PATH takes on its filesystem (blocks, as `du` counts them), links not followed."""
    try:
        total = os.lstat(path).st_blocks * 512
    except OSError:
        return 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                pass
    return total


def free_bytes(path):
    """Bytes an unprivileged writer may still use on PATH's filesystem, and its size."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def disk():
    """What the lab's runs take in LOG_DIR (per kind) and what is free there: for status and
    doctor. Images of every kept run stay until `criu-lab clean`."""
    by_kind, runs = {}, 0
    try:
        names = os.listdir(LOG_DIR)
    except OSError:
        names = []
    for name in names:
        m = RUN.match(name)
        if m and not os.path.islink(os.path.join(LOG_DIR, name)):
            runs += 1
            by_kind[m.group(1)] = by_kind.get(m.group(1), 0) + du(os.path.join(LOG_DIR, name))
    d = {"dir": LOG_DIR, "usedBytes": du(LOG_DIR) if names else 0, "runs": runs, "runBytes": by_kind}
    where = LOG_DIR
    while not os.path.isdir(where):  # not made yet: the filesystem it will be made on
        where = os.path.dirname(where)
    d["freeBytes"], d["totalBytes"] = free_bytes(where)
    return d


def disk_text(d):
    kinds = ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(d["runBytes"].items()))
    return (f"Disk: {human_bytes(d['usedBytes'])} in {d['dir']} ({d['runs']} run{'' if d['runs'] == 1 else 's'} with "
            f"their images{': ' + kinds if kinds else ''}); {human_bytes(d['freeBytes'])} free of "
            f"{human_bytes(d['totalBytes'])}" + ("; to free space: sudo criu-lab clean [--all]" if d["runs"] else ""))


def process_tree(pid):
    """PID and its descendants (what `criu dump -t PID` dumps)."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return tree


def dump_estimate(pid):
    """Bytes the images of PID's tree may take: the memory CRIU writes out (anonymous, shared
    memory and swapped-out pages, /proc/PID/smaps_rollup), plus a tenth and 8 MiB for the rest
    of the images. None when /proc cannot say (CRIU then reports what is wrong)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                fields = dict(re.findall(r"^(\w+):\s+(\d+) kB$", f.read(), re.M))
        except OSError:
            return None
        total += sum(int(fields.get(k, 0)) for k in ("Anonymous", "Pss_Shmem", "Swap")) * 1024
    return total + total // 10 + 8 * 2**20


def room_for_dump(pid, images, pages_elsewhere=False):
    """Refuses (exit 3) a dump of PID into IMAGES whose images would not fit in the free space
    there, before anything is frozen: a disk filling up halfway leaves a failed dump behind.
    PAGES_ELSEWHERE: the pages go to a page server (or stay in memory for a lazy restore), only
    the rest is written here. Returns the estimate of all the images (None: /proc could not say)."""
    estimate = dump_estimate(pid)
    if estimate is None:
        return None
    need = 8 * 2**20 if pages_elsewhere else estimate
    free, _ = free_bytes(images)
    if need > free:
        raise no_room(pid, images, need, free, "the images but its pages" if pages_elsewhere else None)
    return estimate


def no_room(pid, where, need, free, what=None):
    what = what or "its memory, plus a tenth and 8 MiB"
    e = LabError(NOT_READY, f"no room for the images of PID {pid} in {where}: about {human_bytes(need)} needed "
                 f"({what}), {human_bytes(free)} free there; nothing was frozen. "
                 "Free space with `sudo criu-lab clean` (or `clean --all`), or dump a smaller process")
    e.no_room = True  # Migration.room moves pre-copy's rounds from RAM to disk on it
    return e
