"""criu-lab migrate: move a running process to another host over SSH, in one of the modes
of modes.py (what each needs, and what `--mode auto` picks).

Everything, page traffic included, goes through the one SSH connection whose host key was
checked: the lab's security group lets SSH in and nothing else (docs/design.md "Data flow").
The images sit in RAM on both ends while the process is down, when they fit, and move to the
run's directory on disk once it runs again (docs/design.md "Where a migration's images live").
"""
import concurrent.futures
import os
import re
import shlex
import subprocess
import time

from .common import (CRIU, LAZY_DUMP_STATS, base, counts, counts_in, crit_show, criu, criu_stats, dump_stats, human_bytes,
                     keep_latest_passing, no_room, new_run, ready, room_for_dump, run, whole)
from . import manifest
from .faults import Fault, add_fault_flag, lines as fault_lines
from .lazy import lazy
from .modes import add_mode_flag, same_kernel
from .outcome import BROKEN, EXPECTED, NOT_READY, OK, USAGE, LabError, attempt, error_text, failed
from .pair import check_pair
from .precopy import pre_copy
from .procs import alive, wait_for
from .ram_images import add_ram_flag, make_dirs, ram_budget, to_disk
from .remote import Remote, criu_stats_there, free_there, keep_latest_passing_there, local_port, remote_state, ship

def register(sub):
    p = sub.add_parser("migrate", help="move a running process to another host over SSH")
    add_destination_flags(p)
    p.add_argument("--pid", type=whole, required=True, help="the process to move")
    add_mode_flag(p)
    add_ram_flag(p)
    add_fault_flag(p)
    p.set_defaults(fn=cmd_migrate)


def add_destination_flags(p):
    p.add_argument("--to", required=True, metavar="USER@HOST", help="the destination host")
    p.add_argument("--port", type=whole, default=22, help="its SSH port (default 22)")
    p.add_argument("--identity", metavar="FILE", help="the SSH private key to log in with")
    p.add_argument("--known-hosts", metavar="FILE",
                   help="known_hosts file holding the destination's host key (default: ssh's own)")


def check_destination_flags(a):
    """Raises LabError(USAGE) naming the flag and what is allowed."""
    m = re.fullmatch(r"([a-z_][a-z0-9_.-]*)@([A-Za-z0-9][A-Za-z0-9.:-]*)", a.to or "")
    if not m:
        raise LabError(USAGE, f"--to '{a.to}': expected USER@HOST (e.g. ubuntu@10.0.1.12)")
    if not 1 <= a.port <= 65535:
        raise LabError(USAGE, f"--port {a.port}: expected 1-65535")
    for flag, path in (("--identity", a.identity), ("--known-hosts", a.known_hosts)):
        if path is not None and not os.path.isfile(path):
            raise LabError(USAGE, f"{flag} {path}: no such file")
    return m.group(1), m.group(2)


def image_files(images):
    """Regular files and directories the images refer to (crit files.img), for the carry."""
    return {e["reg"]["name"] for e in crit_show(os.path.join(images, "files.img")) if "reg" in e}


class Migration:
    """One migration's state: where its images are (same absolute path on both hosts): in the
    run's directory, or in RAM (use_ram) until to_disk moves them there."""

    def __init__(self, pid, mode, remote, reap, say, run_dir=None, ram_budget=None):
        self.pid, self.mode, self.remote, self.reap, self.say = pid, mode, remote, reap, say
        self.dir = run_dir or new_run("migrate")
        self.images = os.path.join(self.dir, "images")
        self.ram, self.ram_budget = None, ram_budget  # the RAM directory in use; bytes allowed there
        self.made = False  # make_dirs began: there is something to move or remove
        # mode: what runs; with --mode auto, null until the destination is probed and a mode picked.
        self.r = {**base(), "modeAsked": mode, "mode": None if mode == "auto" else mode, "modesPassedOver": [],
                  "pid": pid, "destination": f"{remote.target}", "imagesDir": self.images,
                  "sshCiphers": getattr(remote, "ciphers", []),
                  "freezeMs": 0, "manifestMs": 0, "reapMs": 0, "checkMs": 0, "transferMs": 0, "restoreMs": 0, "bytesTransferred": 0}
        self.dumped = False
        # When the final dump began (after its room check, which freezes nothing): the downtime's start.
        self.frozen_at = None
        self.page_server_pid = None
        self.fault = None  # a Fault (faults.py) caused on purpose at the dump's hooks
        self.hashing = None  # the images' SHA-256, computed while the check and the copy run

    def hook(self, name):
        if self.fault:
            getattr(self.fault, name)()

    def criu(self, argv, log):
        """common.criu with LOG in the run's directory, once the images fit on both hosts (room:
        the images' directory may move to disk then, and the dump goes there)."""
        if argv[0] in ("dump", "pre-dump"):
            i = argv.index("-D") + 1
            argv = [*argv[:i], self.room(argv[i], pages_here="--page-server" not in argv), *argv[i + 1:]]
        if argv[0] == "dump":
            self.hook("before_dump")  # after the room check: a fault there meets CRIU's dump itself
            self.frozen_at = time.monotonic()
        return criu(argv, os.path.join(self.dir, log), timeout=1800, check_room=False)

    def room(self, images, pages_here=True, pages_there=True):
        """Refuses (exit 3), before the freeze, a dump whose images would not fit: here (only the
        rest of them when the pages go to the page server or stay in memory for a lazy restore)
        and on the destination, which receives them (the pages too, unless lazy). Pre-copy's
        rounds can outgrow the RAM the pair check gave them (twice the memory: a process that
        dirties all of it between rounds writes it whole each time): then they move to disk on
        both ends and go on there. Returns the directory to dump into: IMAGES, or its place on disk."""
        try:
            self.room_in(images, pages_here, pages_there)
            return images
        except LabError as e:
            if self.r["mode"] != "pre-copy" or not self.ram or not getattr(e, "no_room", False):
                raise
            short = error_text(e).split("; nothing was frozen")[0]
        rel = os.path.relpath(images, self.ram)
        problems = to_disk(self, keep=True)[2]
        if problems:
            raise LabError(NOT_READY, f"{short}; moving the images to disk failed: {'; '.join(problems)}")
        self.r["imagesIn"] = {"here": "disk", "there": "disk",
                              "why": f"RAM ran short at {rel.split(os.sep)[0]} ({short}): moved to disk on both ends"}
        self.say(f"{self.r['imagesIn']['why']} in {self.r['toDiskMs']} ms")
        images = os.path.join(self.dir, rel)
        self.room_in(images, pages_here, pages_there)
        return images

    def room_in(self, images, pages_here, pages_there):
        """room's check of IMAGES (raises no_room, exit 3)."""
        estimate = room_for_dump(self.pid, images, pages_elsewhere=not pages_here)
        if estimate is None or not pages_there:
            return
        free = free_there(self.remote, self.images)
        if free is not None and estimate > free:
            raise no_room(self.pid, f"{self.remote.host}:{self.images}", estimate, free)

    def passed(self):
        """Marks the run passed here and on the destination, where the earlier passing runs of
        its kind go as they do here (keep_latest_passing): both ends keep only the latest."""
        keep_latest_passing(self.dir)
        keep_latest_passing_there(self.remote, self.dir)

    def dump(self, extra):
        self.hook("before_room")
        ms = self.criu(["dump", "-t", str(self.pid), "-D", self.images, *extra], "dump.log")
        self.dumped = True
        self.r["freezeMs"] += ms
        # The images' SHA-256 for their manifest (checked there before the restore), in a
        # thread while the reap, the late-file check and the copy wait on other processes:
        # hashing 1 GiB is about as long as dumping it. finish_manifest writes it after the copy.
        pool = concurrent.futures.ThreadPoolExecutor(1)
        self.hashing = pool.submit(manifest.hashes, self.images)  # on disk now if room() moved it
        pool.shutdown(wait=False)
        waited = time.monotonic()
        self.reap()  # the dumped process is gone; its PID must be free (no zombie) to come back
        self.r["reapMs"] = round((time.monotonic() - waited) * 1000, 1)
        self.hook("after_dump")

    def page_server(self, images):
        """`criu page-server` on the destination's loopback, forwarded from a local port through
        the SSH master: the pages are encrypted, and only port 22 must be open between hosts."""
        q = shlex.quote
        # CRIU takes no --port 0 from the command line: a free port there, picked just before.
        free = "/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"
        out = self.remote.must(f"mkdir -p {q(images)} && port=$({free}) && {CRIU} page-server -D {q(images)} "
                               f"--address 127.0.0.1 --port $port -d --pidfile {q(images)}/page-server.pid "
                               f"-o {q(self.dir)}/page-server.log -v4 && echo $(cat {q(images)}/page-server.pid) $port",
                               "criu page-server")
        self.page_server_pid, remote_port = (int(x) for x in out.split()[:2])
        port = local_port()
        p = run([*self.remote.ssh, "-O", "forward", "-L", f"127.0.0.1:{port}:127.0.0.1:{remote_port}", self.remote.target], 30)
        if p.returncode != 0:
            raise LabError(BROKEN, f"cannot forward a port to {self.remote.host}'s page server: {p.stderr.strip()}")
        return port

    def finish_manifest(self):
        """Writes the images' manifest here once their hashes are done (with the wait for them
        as `manifestMs`, a stage of the downtime: the hashing itself ran beside the check and
        the copy). Also on a failure, so that images kept as evidence have theirs."""
        if self.hashing is None:
            return
        started, hashing, self.hashing = time.monotonic(), self.hashing, None
        try:
            hashes = hashing.result()
        except OSError:
            hashes = None  # manifest.write hashes them itself, or says what is missing
        manifest.write(self.images, hashes=hashes)
        self.r["manifestMs"] = round((time.monotonic() - started) * 1000, 1)

    def restore(self, images, extra=(), then="", first="true"):
        """THEN: shell run there right after a restore that succeeded (a fault's), ending in &&.
        FIRST: shell run there before the check of the images (manifest.put_there)."""
        started = time.monotonic()
        q = shlex.quote
        p = self.remote.run(f"{first} && {manifest.check_there(images)} && {CRIU} restore -d -D {q(images)} --pidfile {q(self.dir)}/restored.pid "
                            f"-o {q(self.dir)}/restore.log -v4 {' '.join(extra)} && {then}cat {q(self.dir)}/restored.pid", 1800)
        self.r["restoreMs"] = round((time.monotonic() - started) * 1000, 1)
        if p.returncode == manifest.DIFFERS_THERE:
            raise manifest.refused_there(p.stdout, images, self.remote.host)
        if p.returncode != 0:
            log = self.remote.run(f"tail -n 20 {q(self.dir)}/restore.log").stdout
            raise LabError(BROKEN, f"criu restore on {self.remote.host} exited {p.returncode}; end of "
                           f"{self.remote.host}:{self.dir}/restore.log:\n{log}")
        self.r["restoredPid"] = int(p.stdout.split()[-1])

    def restore_back(self):
        """After a dump whose restore there failed: the process comes back here, from the
        same images (pages fetched back when they went to the page server)."""
        if not any(n.startswith("pages-") for n in os.listdir(self.images)):
            back = subprocess.run(f"{shlex.join(self.remote.argv(f'cd {shlex.quote(self.images)} && tar -cf - pages-*.img pagemap-*.img'))}"
                                  f" | tar -C {shlex.quote(self.images)} -xf -", shell=True, capture_output=True, text=True)
            if back.returncode != 0:
                return f"its pages could not be fetched back ({back.stderr.strip()[-200:]})"
        p = run([CRIU, "restore", "-d", "-D", self.images, "--pidfile", os.path.join(self.dir, "restored-back.pid"),
                 "-o", os.path.join(self.dir, "restore-back.log"), "-v4"], 600)
        if p.returncode != 0:
            return f"restoring it here failed too (see {self.dir}/restore-back.log)"
        with open(os.path.join(self.dir, "restored-back.pid")) as f:
            return f"it runs again here as PID {int(f.read())}"

    def cleanup(self):
        if self.page_server_pid:
            self.remote.run(f"kill {self.page_server_pid} 2>/dev/null; true", 30)


def migrate(pid, mode, remote, reap, say, run_dir=None, fault=None, ram_budget=None, checked=None):
    """Moves PID to REMOTE. Returns the JSON result; raises LabError with a clear message
    (images kept, where; the process restored back here when it was dumped and could not
    come up there). FAULT: one to cause on purpose (faults.fault_type), reported in `fault`.
    RAM_BUDGET: bytes of images allowed in RAM on each end (None: what fits). CHECKED: called
    once the pair check passed, before anything is frozen: what a caller starts on the
    destination then is numbered above the tree's PIDs (pair.pid_probe), never before, when it
    could take the very PID the restore needs."""
    m = Migration(pid, mode, remote, reap, say, run_dir, ram_budget)
    r = m.r
    try:
        remote.connect()
        dest, mode, carry, known, out = check_pair(m, say)
        if checked:
            checked()
        if fault:
            m.fault = Fault(fault, m)
            m.fault.fits(mode)
        if not same_kernel(dest):
            # Another kernel has PIDs of its own: nothing here can hold the PID the restore
            # there takes, so no wait for the dumped process's parent to reap it.
            m.reap = lambda: None
        make_dirs(m)
        say(f"PID {pid} -> {remote.target} ({dest['kernel']}), mode {mode}{picked(r)}; "
            f"carrying {', '.join(carry) or 'nothing'}")
        if mode == "pre-copy":
            prev = pre_copy(m, say)
            m.dump(["--track-mem", "--prev-images-dir", prev])  # downtime starts here, not at the first round
        elif mode == "page-server":
            port = m.page_server(m.images)
            m.dump(["--page-server", "--address", "127.0.0.1", "--port", str(port)])
        elif mode == "lazy":
            lazy(m, carry, out)  # its stages and resumeMs from its own freeze (lazy.STAGES)
        else:
            m.dump([])
        if mode != "lazy":
            started = m.frozen_at  # the downtime: from the freeze, the room check before it not counted
            # The images are the authority on what the restore opens: a file opened since the
            # check above is looked up there now (while frozen, so rarely).
            checked = time.monotonic()
            late = remote_state(remote, sorted(p for p in image_files(m.images) - known
                                                if os.path.isfile(p) or os.path.isdir(p)))
            r["checkMs"] = round((time.monotonic() - checked) * 1000, 1)  # a stage of the downtime too
            carry += [p for p, state in late.items() if state == "missing"]
            r["lastBeforeDump"] = (counts(out) or [None])[-1] if out else None
            names = [os.path.join(m.images, n) for n in sorted(os.listdir(m.images))]
            sent, ms = ship(remote, names + carry)
            r["bytesTransferred"] += sent
            r["transferMs"] += ms
            # The manifest, written once its hashes are done, goes in the restore's own command.
            m.finish_manifest()
            m.restore(m.images, first=manifest.put_there(m.images))
        if mode != "lazy":  # restored whole: it runs there and nothing is left to move
            r["resumeMs"] = r["completeMs"] = round((time.monotonic() - started) * 1000, 1)
        # The downtime is the freeze until the process runs there (for lazy, before its pages
        # have all come: completeMs says when the source was done).
        r["downtimeMs"] = r["resumeMs"]
        # CRIU's own account, beside the lab's: read after the downtime, its SSH round trip not in it.
        r["criu"] = {"dump": dump_stats(mode, criu_stats(m.images)), "restore": criu_stats_there(remote, m.images)}
        if r["criu"]["dump"] is None:
            r["criu"]["dumpLeftOut"] = LAZY_DUMP_STATS
        if mode == "page-server":  # the pages went through the tunnel, not the tar stream
            r["bytesTransferred"] += int(remote.must(f"cat {shlex.quote(m.images)}/pages-*.img | wc -c", "counting pages"))
        r["carried"] = carry
        if out and r.get("lastBeforeDump") is not None:
            q = shlex.quote(out)
            after = wait_for("the restored process's next count", lambda: [
                n for n in counts_in(remote.run(f"tail -c 2000 {q}").stdout) if n > r["lastBeforeDump"]] or None, 30)
            r["firstAfterRestore"] = after[0]
        to_disk(m, keep=False)  # the process runs there: off the critical path
        r["ok"] = True
        if m.fault:
            m.fault.end()
            r["fault"] = m.fault.report(r)
        m.passed()
        return r
    except (LabError, *EXPECTED) as e:
        r["error"] = error_text(e)
        if m.dumped and mode != "lazy":
            try:
                m.finish_manifest()  # the images kept as evidence get theirs
            except (LabError, OSError) as w:  # never in the way of the process coming back
                r["error"] += f"\nThe images kept have no manifest: {error_text(w)}"
        if m.fault:
            m.fault.end()  # the link back before the pages are fetched back
        if m.dumped and not r.get("restoredPid") and mode != "lazy":  # lazy() says its own end
            back = m.restore_back()  # from wherever the images are, RAM included
            m.cleanup()  # a page server still writing there
            here, there, problems = to_disk(m, keep=True)
            r["error"] += (f"\nThe process was dumped; {back}. Images kept here in {here} and on {remote.host} in {there}"
                           + "".join(f"\n{p}" for p in problems))
        else:
            m.cleanup()
            problems = to_disk(m, keep=True)[2]
            if os.path.isdir(m.dir):
                r["error"] += f"\nLogs kept here in {m.dir}" + "".join(f"\n{p}" for p in problems)
        if m.fault:
            r["fault"] = m.fault.report(r)
        failed = LabError(getattr(e, "code", BROKEN), r["error"])
        failed.result = r  # what is known so far (imagesDir...), for --json
        raise failed from None
    finally:
        if m.fault:
            m.fault.end()
        m.cleanup()
        if m.hashing is not None:  # an error no branch above expected: the images stay still for it
            concurrent.futures.wait([m.hashing])
        if m.ram:  # an error no branch above expected: nothing stays in RAM
            to_disk(m, keep=True)


def cmd_migrate(a):
    r = {**base(), "modeAsked": a.mode, "mode": None if a.mode == "auto" else a.mode, "pid": a.pid}
    say = (lambda s: None) if a.json else (lambda s: print(s, flush=True))
    remote = None
    with attempt(r, cleanup=lambda: remote and remote.close()) as outcome:
        user, host = check_destination_flags(a)
        ready("migrate")
        if a.pid in (0, 1, os.getpid()) or not alive(a.pid):
            raise LabError(USAGE, f"--pid {a.pid}: no such running process")
        remote = Remote(user, host, a.port, a.identity, a.known_hosts)
        # Its result, whole; a failure carries what it knew into R (LabError.result).
        r = migrate(a.pid, a.mode, remote, lambda: reaped(a.pid), say, fault=a.fault, ram_budget=ram_budget(a))
    if outcome.failed:
        return outcome.code, r, "\n".join([failed("criu-lab migrate", r), *fault_lines(r)])
    return OK, r, timeline(r)


def reaped(pid, timeout=5):
    """Not our child: its parent (a shell, systemd) reaps it once the dump ends it. Only a
    destination sharing this PID namespace needs that (a zombie holds its PID), so waiting
    in vain is no error here; the restore there names "File exists" if it matters."""
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)


def timeline(r):
    """The migration drawn in the terminal: freeze, transfer, restore."""
    parts = [("freeze", r["freezeMs"], "#"), ("transfer", r["transferMs"], "="), ("restore", r["restoreMs"], "+")]
    total = sum(p[1] for p in parts) or 1
    bar = "".join(ch * max(1, round(40 * ms / total)) for _, ms, ch in parts)
    lines = [f"PID {r['pid']} now runs on {r['destination']} as PID {r['restoredPid']} ({r['mode']}{picked(r)}).",
             f"[{bar}] downtime {r['downtimeMs']} ms",
             "  " + ", ".join(f"{ch} {name} {ms} ms" for name, ms, ch in parts),
             f"  {r['bytesTransferred']} bytes sent; carried: {', '.join(r['carried']) or 'nothing'}"]
    # CRIU's own account, what it measured inside freeze and restore (a field it did not write: left out).
    dump, restore = r.get("criu", {}).get("dump") or {}, r.get("criu", {}).get("restore") or {}
    def number(d, key):
        return isinstance(d.get(key), int)
    said = ([f"frozen {dump['frozenTimeUs'] / 1000:.1f} ms"] if number(dump, "frozenTimeUs") else []) + \
        ([f"{dump['pagesWritten']} pages written"] if number(dump, "pagesWritten") else []) + \
        ([f"restore {restore['restoreTimeUs'] / 1000:.1f} ms"] if number(restore, "restoreTimeUs") else [])
    if said:
        lines.append("  CRIU's own: " + ", ".join(said))
    if r.get("imagesIn"):
        placed = r["imagesIn"]
        lines.append(f"  images in RAM on both ends while it was down, then on disk ({r['toDiskMs']} ms): {r['imagesDir']}"
                     if placed["here"] == "ram" and r.get("toDiskMs") is not None
                     else f"  images on disk on both ends ({placed['why']}): {r['imagesDir']}")
    if r.get("preCopyRounds"):
        rounds = r["preCopyRounds"]
        lines.append(f"  pre-copy: {len(rounds)} round{'s' if len(rounds) > 1 else ''} while it ran "
                     f"({human_bytes(sum(x['bytes'] for x in rounds))} of pages), stopped: {r['preCopyStop']}")
    if r.get("mode") == "lazy" and r.get("completeMs") is not None:
        lines.append(f"  running there after {r['resumeMs']} ms; its last page there after {r['completeMs']} ms "
                     "(until then it needed this host)")
    if r.get("firstAfterRestore") is not None:
        lines.append(f"  counted {r['lastBeforeDump']} here, then {r['firstAfterRestore']} there")
    lines += [f"  --mode auto passed over {p['mode']}: {p['why']}" for p in r.get("modesPassedOver", [])]
    if r.get("predictedMs") is not None:
        lines.append(predicted_text(r))
    return "\n".join(lines + fault_lines(r))


def predicted_text(r):
    """The advisor's prediction for the mode it picked against what this migration measured,
    stage by stage (docs/design.md "The mode advisor")."""
    s = r["advice"]["predictions"][r["mode"]]["stages"]
    stages = ", ".join(f"{name} {s[name + 'Ms']:.0f}/{r[name + 'Ms']:.0f}" for name in ("freeze", "transfer", "restore"))
    return (f"  the advisor predicted {r['predictedMs']:.0f} ms, measured {r['downtimeMs']:.0f} ms "
            f"({r['downtimeMs'] / r['predictedMs']:.2f}x); predicted/measured ms: {stages}")


def picked(r):
    """", picked by --mode auto" when auto picked the mode, so the terminal says which it was."""
    return ", picked by --mode auto" if r.get("modeAsked") == "auto" else ""
