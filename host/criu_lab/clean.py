"""criu-lab clean: remove the images and logs of runs the lab no longer keeps, and say how much.

Every demo, scenario and migration keeps its run directory (LOG_DIR/KIND-TIME-PID, images
included): as large as the process it dumped, on the source and again on a migration's
destination. Kept by default: failed runs (evidence) and the latest passing run of each kind;
--all removes those too. Never removed: a run in progress (its criu-lab still runs, or a
process works in it: a restore, a page server, a restored process whose files are there).

Also a migration's images left in RAM ($CRIU_LAB_RAM_DIR, default /dev/shm,
criu-lab-migrate-TIME-PID: docs/design.md "Where a migration's images live") once that
migration is over: they hold memory until the machine restarts (ram_plan).
"""
import calendar
import os
import re
import shutil
import time

from . import checkpoints as ckpt
from .common import LOG_DIR, PASSED, RUN, disk, disk_text, du, human_bytes
from .outcome import BROKEN, OK, USAGE


def register(sub):
    p = sub.add_parser("clean", help="remove the images of runs not kept (failed, latest passing per kind)")
    p.add_argument("--all", action="store_true", help="also failed runs and the latest passing ones")
    p.set_defaults(fn=cmd_clean)


def in_use(paths):
    """{run path: why} for the runs a live process works in: its cwd, an open file or its
    command line is inside the run (the run's own criu-lab, criu restore -D ..., a restored
    counter writing its log there)."""
    busy = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        seen = []
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            seen.append(cmdline)
            seen.append(os.readlink(f"/proc/{pid}/cwd"))
            seen += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            pass  # gone, or a file of it unreadable: what was read still counts
        for path in paths:
            if path not in busy and any(s == path or path + "/" in s for s in seen):
                busy[path] = f"PID {pid} ({cmdline.strip()[:60]}) works in it"
    return busy


def plan(keep_all):
    """(runs to remove, runs kept), each {path, kind, bytes, outcome, why}."""
    runs = []
    for name in sorted(os.listdir(LOG_DIR)):
        m = RUN.match(name)
        path = os.path.join(LOG_DIR, name)
        if m and os.path.isdir(path) and not os.path.islink(path):
            passed = os.path.isfile(os.path.join(path, PASSED))
            runs.append({"path": path, "kind": m.group(1), "bytes": du(path), "outcome": "passed" if passed else "failed",
                         "pid": int(m.group(2))})
    busy = in_use([r["path"] for r in runs])
    # Names sort by time within a kind: the last passing one of each kind is the latest.
    latest = {r["kind"]: r["path"] for r in runs if r["outcome"] == "passed"}
    remove, kept = [], []
    for r in runs:
        pid = r.pop("pid")
        if r["path"] in busy:
            r["why"] = f"in progress: {busy[r['path']]}"
        elif criu_lab_runs(pid):
            r["why"] = f"in progress: its criu-lab (PID {pid}) still runs"
        elif not keep_all and r["outcome"] == "failed":
            r["why"] = "failed: kept as evidence (--all removes it)"
        elif not keep_all and latest[r["kind"]] == r["path"]:
            r["why"] = f"the latest passing {r['kind']} run (--all removes it)"
        (kept if "why" in r else remove).append(r)
    return remove, kept


# A migration's RAM directory: criu-lab-migrate-TIME-PID, as its run directory's TIME-PID
# (ram_images.use_ram), PID the source's criu-lab migrate.
RAM_RUN = re.compile(r"^criu-lab-migrate-(\d{8}T\d{6}Z)-(\d+)$")
# A younger one stays: a migration into this host leaves its directory here between its steps
# with nothing of this host working in it (its criu-lab runs on the source, where the PID in
# the name is), and no migration's steps are an hour apart.
RAM_GRACE = 3600


def ram_why_kept(stamp, pid, now, busy, lab_runs):
    """Why a migration's RAM directory (its name's TIME STAMP and PID) stays, or None: its
    migration is over. BUSY: why a process here works in it (None: none), LAB_RUNS(pid): PID
    is a running criu-lab. Over means: no process here works in it (a dump, a page server, a
    restore, the copy to disk), the PID is no running criu-lab here (on the source, that is
    the migrate that owns it; any other way it ends, to_disk has removed it), and it is older
    than RAM_GRACE (on a destination the PID is another host's)."""
    if busy:
        return f"in progress: {busy}"
    if lab_runs(pid):
        return f"in progress: its criu-lab (PID {pid}) still runs"
    age = now - calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    if age < RAM_GRACE:
        return (f"started {max(age, 0) // 60:.0f} min ago: may be a migration into this host between its steps "
                f"(removed once {RAM_GRACE // 60} min old)")
    return None


def ram_plan(root=None, now=None):
    """(RAM directories to remove, kept), each {path, bytes, why} (kept only), under ROOT
    (default ckpt.RAM_ROOT)."""
    root = ckpt.RAM_ROOT if root is None else root
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        m = RAM_RUN.match(name)
        path = os.path.join(root, name)
        if m and os.path.isdir(path) and not os.path.islink(path):
            found.append((path, m.group(1), int(m.group(2))))
    busy = in_use([path for path, _, _ in found])
    now = time.time() if now is None else now
    remove, kept = [], []
    for path, stamp, pid in found:
        r = {"path": path, "bytes": du(path)}
        why = ram_why_kept(stamp, pid, now, busy.get(path), criu_lab_runs)
        if why:
            r["why"] = why
        (kept if why else remove).append(r)
    return remove, kept


def criu_lab_runs(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"criu-lab" in f.read()
    except OSError:
        return False


def cmd_clean(a):
    if os.geteuid() != 0:
        return USAGE, {"ok": False, "error": "clean needs root: sudo criu-lab clean"}, \
            "criu-lab clean needs root: sudo criu-lab clean"
    if not os.path.isdir(LOG_DIR):
        remove, kept = [], []
    else:
        remove, kept = plan(a.all)
    by_kind = {}
    for r in remove:
        shutil.rmtree(r["path"], ignore_errors=True)
        r["removed"] = not os.path.exists(r["path"])
        k = by_kind.setdefault(r["kind"], {"runs": 0, "bytes": 0})
        if r["removed"]:
            k["runs"] += 1
            k["bytes"] += r["bytes"]
    # demo-latest points at the latest passing demo: gone with it.
    link = os.path.join(LOG_DIR, "demo-latest")
    if os.path.islink(link) and not os.path.exists(link):
        os.unlink(link)
    ram_remove, ram_kept = ram_plan()
    for r in ram_remove:
        shutil.rmtree(r["path"], ignore_errors=True)
        r["removed"] = not os.path.exists(r["path"])
    failed = [r["path"] for r in remove + ram_remove if not r["removed"]]
    freed = sum(k["bytes"] for k in by_kind.values())
    ram_freed = sum(r["bytes"] for r in ram_remove if r["removed"])
    result = {"ok": not failed, "freedBytes": freed, "freedByKind": by_kind, "removed": remove, "kept": kept,
              "ramFreedBytes": ram_freed, "ramRemoved": ram_remove, "ramKept": ram_kept, "disk": disk()}
    n = len(remove) - len([r for r in remove if not r["removed"]])
    lines = [f"removed {n} run{'' if n == 1 else 's'}, {human_bytes(freed)} freed"
             + (": " + ", ".join(f"{k} {v['runs']} ({human_bytes(v['bytes'])})" for k, v in sorted(by_kind.items()))
                if by_kind else "")]
    lines += [f"  kept {r['path']} ({human_bytes(r['bytes'])}): {r['why']}" for r in kept]
    if ram_remove or ram_kept:
        n = len([r for r in ram_remove if r["removed"]])
        lines.append(f"removed {n} migration image director{'y' if n == 1 else 'ies'} left in RAM under {ckpt.RAM_ROOT}, "
                     f"{human_bytes(ram_freed)} of memory freed"
                     + "".join(f"\n  removed {r['path']} ({human_bytes(r['bytes'])})" for r in ram_remove
                               if r["removed"]))
        lines += [f"  kept {r['path']} ({human_bytes(r['bytes'])}): {r['why']}" for r in ram_kept]
    if failed:
        result["error"] = "could not remove " + ", ".join(failed)
        lines.append(f"criu-lab clean: {result['error']}")
    lines.append(disk_text(result["disk"]))
    return (OK if not failed else BROKEN), result, "\n".join(lines)
