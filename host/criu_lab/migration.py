"""criu-lab scenario run migration|backup: the counter moved to another host, or restored on a
backup host after the source dies (the original lab's web service that is
"checkpointed periodically and restored on a backup server when the primary fails").
Beside the tool's downtime, the migration reports the client's: the gap between the counter's
last line before the freeze and its first after the restore, as its output shows (stamps.py)."""
import os
import shlex
import signal
import time

from . import archive, manifest
from .common import COUNTER, base, counts, counts_in, crit_show, frozen_us, new_run, private_dir, ready, whole
from .outcome import BROKEN, OK, USAGE, LabError, attempt, failed
from .migrate import Migration, add_destination_flags, add_ram_flag, check_destination_flags, migrate, ram_budget, timeline
from .pair import compare_destination
from .remote import Remote, probe, ship
from .modes import add_mode_flag
from .procs import start_detached, stop, wait_for
from .stamps import follow_here, follow_there, wait_gap


def register(runsub):
    p = runsub.add_parser("migration", help="move the counter to another host; check it counts on there, same PID")
    add_destination_flags(p)
    add_mode_flag(p)
    add_ram_flag(p)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between counts")
    p.set_defaults(fn=cmd_migration)
    b = runsub.add_parser("backup", help="checkpoint the counter to a backup host, kill it, restore it there")
    add_destination_flags(b)
    b.add_argument("--checkpoints", type=whole, default=3, help="how many periodic checkpoints (default 3)")
    b.add_argument("--every", type=float, default=2.0, help="seconds between checkpoints (default 2)")
    b.add_argument("--interval", type=float, default=0.5, help="seconds between counts")
    b.set_defaults(fn=cmd_backup)


def start_counter(kind, interval):
    """The counter, detached, in a run directory the destination does not have (so its log and
    working directory must be carried)."""
    run_dir = new_run(kind)
    private_dir(run_dir)
    out = os.path.join(run_dir, "counter.log")
    child = start_detached([COUNTER, "--interval", str(interval)], out, cwd=run_dir)
    wait_for("the counter to count to 3", lambda: len(counts(out)) >= 4)
    return run_dir, out, child


def stop_there(remote, pid):
    """Ends the counter on the destination by PID, only if it is still the counter."""
    remote.run(f"grep -q counter.py /proc/{pid}/cmdline 2>/dev/null && kill {pid}; true", 30)


def stop_both(child, remote, r):
    """A scenario's end: the counter stopped here (still here when refused, or restored back
    after a failure) and there (R's restoredPid), the SSH connection closed."""
    if child:
        stop(child.pid, b"counter.py")
    if remote:
        if r.get("restoredPid"):
            stop_there(remote, r["restoredPid"])
        remote.close()


def cmd_migration(a):
    r = {**base(), "modeAsked": a.mode, "mode": None if a.mode == "auto" else a.mode}
    say = (lambda s: None) if a.json else (lambda s: print(s, flush=True))
    child = remote = None
    followers = []

    def cleanup():
        for f in followers:  # before the SSH connection their remote half runs in
            f.close()
        stop_both(child, remote, r)

    with attempt(r, cleanup) as outcome:
        user, host = check_destination_flags(a)
        ready("scenario run migration")
        remote = Remote(user, host, a.port, a.identity, a.known_hosts)
        remote.connect()
        run_dir, out, child = start_counter("migration", a.interval)
        say(f"counter.py runs as PID {child.pid}, output in {out}")
        # The counter's output as a client reading it sees it, here and (once restored) there;
        # there only after the pair check: started before, its `tail` took the counter's own PID
        # on a twin host (one booted from the same image, counting PIDs in step) and the check
        # rightly refused the migration.
        followers.append(follow_here(out))
        r.update(migrate(child.pid, a.mode, remote, lambda: child.wait(10), say,
                         run_dir=os.path.join(run_dir, "migrate"), ram_budget=ram_budget(a),
                         checked=lambda: followers.append(follow_there(remote, out))))
        if r["restoredPid"] != child.pid or r.get("firstAfterRestore") != (r["lastBeforeDump"] or 0) + 1:
            raise LabError(BROKEN, f"on {host} the counter runs as PID {r['restoredPid']} (expected {child.pid}) and "
                           f"counted {r.get('firstAfterRestore')} after {r['lastBeforeDump']}")
        r["counterIntervalMs"] = round(a.interval * 1000, 1)
        r["clientGapMs"] = wait_gap(*followers, r["lastBeforeDump"], r["firstAfterRestore"])
    if outcome.failed:
        # The failure holds what the migration knew: the mode --mode auto picked, where the images are.
        return outcome.code, r, failed("criu-lab scenario run migration", r)
    return OK, r, (timeline(r) + f"\n  the client saw Counter: {r['lastBeforeDump']} here and Counter: "
                   f"{r['firstAfterRestore']} there {r['clientGapMs']:.0f} ms later (one every {a.interval:g} s; "
                   f"downtime {r['downtimeMs']:.0f} ms)\nthe counter went on with the same PID there (stopped now); "
                   f"images in {r['imagesDir']}")


def cmd_backup(a):
    """Full dumps with --leave-running (no dirty tracking needed), each shipped to the backup
    host as it is taken; then kill -9 here and restore the latest checkpoint there."""
    r = {**base(), "checkpoints": 0, "frozenUs": [], "imageBytes": [], "bytesTransferred": 0}
    say = (lambda s: None) if a.json else (lambda s: print(s, flush=True))
    child = remote = None
    with attempt(r, cleanup=lambda: stop_both(child, remote, r)) as outcome:
        user, host = check_destination_flags(a)
        if a.checkpoints < 1:
            raise LabError(USAGE, f"--checkpoints {a.checkpoints}: expected at least 1")
        ready("scenario run backup")
        remote = Remote(user, host, a.port, a.identity, a.known_hosts)
        remote.connect()
        run_dir, out, child = start_counter("backup", a.interval)
        r["pid"] = child.pid
        probe(remote)
        r["destination"] = remote.target
        carry, _, _ = compare_destination(remote, child.pid)
        m = Migration(child.pid, "backup", remote, lambda: None, say, run_dir)
        codec = r["archiveCodec"] = archive.codec_both(remote)
        q = shlex.quote
        for k in range(1, a.checkpoints + 1):
            time.sleep(a.every if k > 1 else 0)
            d = os.path.join(run_dir, f"checkpoint-{k}")
            os.makedirs(d)
            m.criu(["dump", "--leave-running", "-t", str(child.pid), "-D", d], f"dump-{k}.log")
            # The log grows on after the dump; the restore wants it as it was then (CRIU checks
            # its size), so the copy there is cut back to the size the images recorded.
            sizes = {e["reg"]["name"]: e["reg"].get("size") for e in crit_show(os.path.join(d, "files.img")) if "reg" in e}
            names = [os.path.join(d, n) for n in sorted(os.listdir(d))]
            # The checkpoint travels as its archive (checkpoint export), unpacked and checked
            # against its manifest there (checkpoint import's check, manifest.check_there) before any restore.
            manifest.write(d, {"checkpoint": k})
            path = f"{d}.tar.{'zst' if codec == 'zstd' else 'gz'}"
            archive.pack(d, path, codec)
            r["bytesTransferred"] += ship(remote, carry)[0] if carry else 0
            r["bytesTransferred"] += archive.ship_there(remote, d, path, codec)
            os.unlink(path)  # the checkpoint stays here as a directory
            cut = [f"truncate -s {sizes[p]} {q(p)}" for p in carry if sizes.get(p) is not None and os.path.isfile(p)]
            if cut:
                remote.must(" && ".join(cut), "trimming the carried files")
            with open(out, "rb") as f:
                r["lastCheckpointCount"] = counts_in(f.read(sizes.get(out) or 0).decode(errors="replace"))[-1]
            r["checkpoints"] = k
            r["frozenUs"].append(frozen_us(d))
            r["imageBytes"].append(sum(os.path.getsize(p) for p in names))
            say(f"checkpoint {k} at Counter: {r['lastCheckpointCount']} shipped to {host}")
        time.sleep(a.interval * 2)
        os.kill(child.pid, signal.SIGKILL)  # the crash
        child.wait(10)  # reaped: a zombie would hold the PID the backup restores
        r["lastBeforeCrash"] = counts(out)[-1]
        say(f"kill -9 {child.pid} at Counter: {r['lastBeforeCrash']}; restoring checkpoint {k} on {host}")
        m.restore(d)
        after = wait_for("the restored counter there", lambda: [
            n for n in counts_in(remote.run(f"tail -c 2000 {q(out)}").stdout) if n > r["lastCheckpointCount"]] or None)
        r.update(firstAfterRestore=after[0], restoredPid=m.r["restoredPid"], restoreMs=m.r["restoreMs"],
                 lostCounts=r["lastBeforeCrash"] - r["lastCheckpointCount"], imagesDir=d)
        if r["restoredPid"] != child.pid or r["firstAfterRestore"] != r["lastCheckpointCount"] + 1:
            raise LabError(BROKEN, f"the backup runs PID {r['restoredPid']} (expected {child.pid}) from "
                           f"{r['firstAfterRestore']} (expected {r['lastCheckpointCount'] + 1})")
        r["ok"] = True
        m.passed()  # only the latest passing backup keeps its checkpoints, here and on the backup host
    if outcome.failed:
        return outcome.code, r, failed("criu-lab scenario run backup", r)
    return OK, r, (f"{r['checkpoints']} checkpoints shipped to {r['destination']}; after kill -9 at Counter: "
                   f"{r['lastBeforeCrash']} the backup restored the last one (Counter: {r['lastCheckpointCount']}) "
                   f"and counted on from {r['firstAfterRestore']}: {r['lostCounts']} counts lost.")
