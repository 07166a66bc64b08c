"""criu-lab clean: remove the images and logs of runs the lab no longer keeps, and say how much.

Every demo, scenario and migration keeps its run directory (LOG_DIR/KIND-TIME-PID, images
included): as large as the process it dumped, on the source and again on a migration's
destination. Kept by default: failed runs (evidence) and the latest passing run of each kind;
--all removes those too. Never removed: a run in progress (its criu-lab still runs, or a
process works in it: a restore, a page server, a restored process whose files are there).
"""
import os
import shutil

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
    failed = [r["path"] for r in remove if not r["removed"]]
    freed = sum(k["bytes"] for k in by_kind.values())
    result = {"ok": not failed, "freedBytes": freed, "freedByKind": by_kind, "removed": remove, "kept": kept,
              "disk": disk()}
    n = len(remove) - len(failed)
    lines = [f"removed {n} run{'' if n == 1 else 's'}, {human_bytes(freed)} freed"
             + (": " + ", ".join(f"{k} {v['runs']} ({human_bytes(v['bytes'])})" for k, v in sorted(by_kind.items()))
                if by_kind else "")]
    lines += [f"  kept {r['path']} ({human_bytes(r['bytes'])}): {r['why']}" for r in kept]
    if failed:
        result["error"] = "could not remove " + ", ".join(failed)
        lines.append(f"criu-lab clean: {result['error']}")
    lines.append(disk_text(result["disk"]))
    return (OK if not failed else BROKEN), result, "\n".join(lines)
