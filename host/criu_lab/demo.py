"""criu-lab demo: run the counter detached, dump it, restore it, check that it counts on."""
import os

from . import manifest
from .common import (COUNTER, LOG_DIR, base, checked, counts, criu, frozen_us, human_bytes, keep_latest_passing,
                     new_run, private_dir, ready)
from .judge import broken_rules
from .outcome import BROKEN, OK, LabError, attempt, failed
from .procs import alive, start_detached, stop, wait_for


def register(sub):
    p = sub.add_parser("demo", help="checkpoint and restore the counter, and prove it counts on")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between counts")
    p.set_defaults(fn=cmd_demo)


# docs/design.md "Contracts": what `demo --json` prints, and the type of each field.
FIELDS = {"ok": bool, "pid": int, "restoredPid": int, "lastBeforeDump": int, "firstAfterRestore": int,
          "dumpMs": (int, float), "restoreMs": (int, float), "frozenUs": int, "imageBytes": int,
          "imagesDir": str, "criuVersion": str, "kernel": str}
# A stable name for the latest passing demo's run directory (its images: LATEST/images).
LATEST = "demo-latest"


def problems(r):
    """What is missing or inconsistent in a demo result (empty: it may be printed as is)."""
    if not r.get("ok"):
        return [] if isinstance(r.get("error"), str) and r["error"] else ["a failed demo without an error"]
    out = [f"{k} is missing" for k in FIELDS if k not in r]
    out += [f"{k} is {r[k]!r}, not {getattr(t, '__name__', 'a number')}" for k, t in FIELDS.items()
            if k in r and (not isinstance(r[k], t) or (t is not bool and isinstance(r[k], bool)))]
    if out:
        return out
    out += [f"{k} is {r[k]}, below 0" for k in FIELDS if FIELDS[k] is not bool and not isinstance(r[k], str) and r[k] < 0]
    out += broken_rules("demo", r)  # the rules every judge reads (rules.json)
    if not r["imageBytes"] or not os.path.isfile(os.path.join(r["imagesDir"], "pstree.img")):
        out.append(f"no images in {r['imagesDir']}")
    if not r["criuVersion"] or not r["kernel"]:
        out.append("criuVersion or kernel is empty")
    return out


def keep_latest(run_dir):
    """Keeps the images of the latest passing demo only (failed runs stay as evidence) and
    points LOG_DIR/demo-latest at it; returns the link's path."""
    keep_latest_passing(run_dir)
    link = os.path.join(LOG_DIR, LATEST)
    tmp = f"{link}.{os.getpid()}"
    os.symlink(os.path.basename(run_dir), tmp)
    os.replace(tmp, link)  # a rename: the link is never missing or half-made
    return link


def cmd_demo(args):
    r = base()
    run_dir = new_run("demo")
    images = r["imagesDir"] = os.path.join(run_dir, "images")
    out = os.path.join(run_dir, "counter.log")
    say = (lambda m: print(m, flush=True)) if not args.json else (lambda m: None)
    pid = None
    with attempt(r, cleanup=lambda: stop(r.get("restoredPid") or pid, b"counter.py")) as outcome:
        ready("demo")
        private_dir(images)
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
        manifest.write(images)  # sizes and sha256s (docs/design.md "Checkpoint manifest")
        say(f"dumped in {r['dumpMs']} ms at Counter: {seen[-1]}; PID {pid} is gone")
        pidfile = os.path.join(run_dir, "restored.pid")
        manifest.verify(images)  # a restore takes a checkpoint only as it was dumped
        r["restoreMs"] = criu(["restore", "-d", "-D", images, "--pidfile", pidfile], os.path.join(run_dir, "restore.log"))
        with open(pidfile) as f:
            r["restoredPid"] = int(f.read())
        r["firstAfterRestore"] = wait_for("the restored counter", lambda: counts(out)[len(seen):])[0]
        say(f"restored as PID {r['restoredPid']} in {r['restoreMs']} ms; next count: {r['firstAfterRestore']}")
        r["frozenUs"] = frozen_us(images)
        broken = broken_rules("demo", r)
        if broken:
            raise LabError(BROKEN, "; ".join(broken))
        r["ok"] = True
    code = checked(r, problems(r), outcome.code)
    if r["ok"]:
        latest = r["latestImagesDir"] = os.path.join(keep_latest(run_dir), "images")
        return OK, r, (f"checkpoint/restore works (frozen {r['frozenUs']} us, {human_bytes(r['imageBytes'])} of "
                       f"images).\nImages of the latest passing demo: {latest}\n"
                       f"See what was saved: sudo criu-lab analyze {latest}")
    return code, r, failed("criu-lab demo", r, run_dir)
