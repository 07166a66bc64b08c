"""criu-lab demo: run the counter detached, dump it, restore it, check that it counts on."""
import os
import re
import shutil
import subprocess
import time

from .common import BROKEN, COUNTER, LOG_DIR, OK, LabError, base, criu, crit_show, ready
from .procs import alive, start_detached, stop, wait_for


def register(sub):
    p = sub.add_parser("demo", help="checkpoint and restore the counter, and prove it counts on")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between counts")
    p.set_defaults(fn=cmd_demo)


def counts(path):
    with open(path, errors="replace") as f:
        return [int(n) for n in re.findall(r"^Counter: (\d+)$", f.read(), re.M)]


def cmd_demo(args):
    r = base()
    run_dir = os.path.join(LOG_DIR, time.strftime("demo-%Y%m%dT%H%M%SZ-", time.gmtime()) + str(os.getpid()))
    images = r["imagesDir"] = os.path.join(run_dir, "images")
    out = os.path.join(run_dir, "counter.log")
    say = (lambda m: print(m, flush=True)) if not args.json else (lambda m: None)
    pid, code = None, BROKEN
    try:
        ready("demo")
        os.makedirs(images)
        # Detached, as a process started over SSH without a tty must be: so no --shell-job.
        child = start_detached([COUNTER, "--interval", str(args.interval)], out)
        pid = r["pid"] = child.pid
        say(f"counter.py runs as PID {pid}, output in {out}")
        wait_for("the counter to count to 3", lambda: len(counts(out)) >= 4)
        r["dumpMs"] = criu(["dump", "-t", str(pid), "-D", images], os.path.join(run_dir, "dump.log"))
        child.wait(10)  # CRIU killed it; reaping it frees the PID for the restore
        if alive(pid):
            raise LabError(BROKEN, f"PID {pid} still runs after the dump")
        seen = counts(out)
        r["imageBytes"] = sum(os.path.getsize(os.path.join(images, n)) for n in os.listdir(images))
        r["lastBeforeDump"] = seen[-1]
        say(f"dumped in {r['dumpMs']} ms at Counter: {seen[-1]}; PID {pid} is gone")
        pidfile = os.path.join(run_dir, "restored.pid")
        r["restoreMs"] = criu(["restore", "-d", "-D", images, "--pidfile", pidfile], os.path.join(run_dir, "restore.log"))
        with open(pidfile) as f:
            r["restoredPid"] = int(f.read())
        r["firstAfterRestore"] = wait_for("the restored counter", lambda: counts(out)[len(seen):])[0]
        say(f"restored as PID {r['restoredPid']} in {r['restoreMs']} ms; next count: {r['firstAfterRestore']}")
        r["frozenUs"] = crit_show(os.path.join(images, "stats-dump"))[0]["dump"]["frozen_time"]
        if r["restoredPid"] != pid or r["firstAfterRestore"] != seen[-1] + 1:
            raise LabError(BROKEN, f"restored PID {r['restoredPid']} (expected {pid}) counted "
                           f"{r['firstAfterRestore']} (expected {seen[-1] + 1})")
        r["ok"] = True
    except LabError as e:
        r["error"], code = str(e), e.code
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as e:
        r["error"] = f"{type(e).__name__}: {e}"
    finally:
        stop(r.get("restoredPid") or pid, b"counter.py")
    if r["ok"]:
        # Keep the images of the latest passing run only; failed runs stay as evidence.
        for old in os.listdir(LOG_DIR):
            if os.path.isfile(os.path.join(LOG_DIR, old, "passed")):
                shutil.rmtree(os.path.join(LOG_DIR, old), ignore_errors=True)
        open(os.path.join(run_dir, "passed"), "w").close()
        return OK, r, (f"checkpoint/restore works (frozen {r['frozenUs']} us, {r['imageBytes']} bytes of images)."
                       f"\nSee what was saved: sudo criu-lab analyze {images}")
    kept = f"\nlogs and images kept in {run_dir}" if os.path.isdir(run_dir) else ""
    return code, r, f"criu-lab demo FAILED: {r['error']}{kept}"
