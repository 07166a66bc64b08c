"""criu-lab migrate --fault: a fault caused on purpose during a migration, and what came of it
(docs/design.md "Faults"; the lab guide's faults exercise).

  page-server-kill    the destination's `criu page-server` killed (kill -9) once it listens,
                      before the dump connects (--mode page-server)
  link-cut[:SECONDS]  every packet this host sends to the destination dropped (a pfifo of
                      limit 0, built into every kernel: no netem needed, under the lab's own
                      handle, so `criu-lab link clear` removes a cut a killed criu-lab left)
                      from the freeze, for SECONDS (default 10)
  disk-full[:late]    a small tmpfs mounted on the images' directory there; plain: 1 MiB, so
                      the room check refuses before the freeze; late: room enough at the
                      check, filled once the dump is done, so the copy fails while frozen
  lazy-kill           the destination's `criu lazy-pages` killed (kill -9) as soon as the
                      process runs there, before its pages have all come (--mode lazy)

Each is undone when the migration ends, however it ends (Fault.end). The JSON's `fault` says
which, when it was caused, what CRIU did, what the lab did and where the evidence is.
Lazy needs a second kernel, so lazy-kill is proven in the VM tier (tests/vm/lab-debian13.test.ts).
"""
import argparse
import os
import re
import shlex
import threading
import time

from .common import dump_estimate, human_bytes
from .link import must_json, qdiscs_of, read_record, run
from .outcome import BROKEN, USAGE, LabError
from .shaping import ROOT, foreign_root, lab_qdiscs, plan, route_dev

LINK_CUT_DEFAULT = 10
LINK_CUT_MAX = 600
# The tmpfs the disk-full fault mounts there: its source name says whose it is (findmnt).
TMPFS = "criu-lab-fault"
FILLER = "fault-filler"
# What CRIU does in each case, from its sources (criu/cr-dump.c, page-xfer.c).
CRIU_DOES = {
    "page-server-kill": "criu dump connects to the page server before it freezes the process (cr_dump_tasks: "
                        "connect_to_page_server_to_send, then collect_pstree); the tunnel's end here accepts, "
                        "so the freeze goes ahead and the first pages sent find the connection closed: the dump "
                        "fails and CRIU lets the process run on (cr_dump_finish: TASK_ALIVE on error)",
    "link-cut": "CRIU is not on the wire in cold mode's copy: its dump is local, the images go by tar through SSH, "
                "whose TCP connection retransmits what was dropped, each try waiting twice as long; SSH decides "
                "whether a long cut ends the migration (the lab's: ServerAliveInterval 5, ConnectTimeout 10 s)",
    "disk-full": "CRIU never runs out of room there: the lab's room check (the images' estimate against `df` "
                 "there) refuses before criu dump is started, or (late) the copy of finished images fails "
                 "with ENOSPC after CRIU's dump succeeded",
    "lazy-kill": "criu lazy-pages there held the restored process's userfaultfd alone (the restorer closes its "
                 "own: criu/pie/restorer.c); once it is killed the kernel unregisters the lazy ranges "
                 "(fs/userfaultfd.c userfaultfd_release), so every page not yet copied reads as zeros there. "
                 "Here criu dump --lazy-pages serves pages until its connection ends, and a page server that "
                 "only sends takes any hang-up for the end of the transfer (criu/page-xfer.c page_server_serve): "
                 "it exits 0, as after a whole transfer, unless the hang-up met a page being sent (then it fails "
                 "and resumes the process: cr_dump_finish, TASK_ALIVE on error). CRIU cannot tell; the daemon's "
                 "exit code there can",
}


def fault_type(text):
    """argparse type: 'link-cut:20' -> {name: link-cut, seconds: 20}."""
    name, _, arg = text.strip().partition(":")
    if name in ("page-server-kill", "lazy-kill") and not arg:
        return {"name": name}
    if name == "disk-full" and arg in ("", "late"):
        return {"name": name, "late": arg == "late"}
    if name == "link-cut" and (not arg or re.fullmatch(r"\d+", arg) and 1 <= int(arg) <= LINK_CUT_MAX):
        return {"name": name, "seconds": int(arg or LINK_CUT_DEFAULT)}
    raise argparse.ArgumentTypeError(
        f"'{text}' is not a fault: page-server-kill, link-cut[:SECONDS] (1 to {LINK_CUT_MAX}, default "
        f"{LINK_CUT_DEFAULT}), disk-full[:late] or lazy-kill")


def add_fault_flag(p):
    p.add_argument("--fault", type=fault_type, metavar="FAULT",
                   help="cause a fault on purpose: page-server-kill, link-cut[:SECONDS], disk-full[:late], lazy-kill")


class Fault:
    """One fault in migration M (migrate.Migration), caused at its hooks and undone by end()."""

    def __init__(self, spec, m):
        self.spec, self.m, self.name = spec, m, spec["name"]
        self.r = {**spec, "causedAt": None, "criu": CRIU_DOES[self.name], "lab": None, "evidence": {}}
        self.undo, self.lock, self.timer = [], threading.Lock(), None

    def fits(self, mode):
        """Refuses (exit 2, nothing frozen yet) a fault the mode has no part for."""
        if self.name == "page-server-kill" and mode != "page-server":
            raise LabError(USAGE, f"--fault page-server-kill needs --mode page-server (mode {mode} starts no page server)")
        if self.name == "disk-full" and mode != "cold":
            raise LabError(USAGE, f"--fault disk-full needs --mode cold (in mode {mode} pages reach the destination "
                           "before the final dump: the tmpfs would not hold them all)")
        if self.name == "lazy-kill" and mode != "lazy":
            raise LabError(USAGE, f"--fault lazy-kill needs --mode lazy (mode {mode} starts no criu lazy-pages)")
        if mode == "lazy" and self.name != "lazy-kill":
            raise LabError(USAGE, f"--fault {self.name} is not caused in mode lazy (its fault is lazy-kill)")

    def before_room(self):
        """Before the final dump's room check: the disk filled there, seen by the check or not."""
        m, q = self.m, shlex.quote
        if self.name == "disk-full":
            size = dump_estimate(m.pid) + 2**20 if self.spec["late"] else 2**20
            m.remote.must(f"mount -t tmpfs -o size={size},mode=700 {TMPFS} {q(m.images)}", "mounting a small tmpfs")
            self.undo.append(self.unmount)
            self.r["causedAt"] = f"a tmpfs of {human_bytes(size)} mounted on {m.remote.host}:{m.images} before the room check"

    def before_dump(self):
        """Just before criu dump, after the room check: the page server is up, nothing frozen yet."""
        m = self.m
        if self.name == "page-server-kill":
            m.remote.must(f"kill -9 {m.page_server_pid}", "killing the page server")
            self.r["causedAt"] = f"page server PID {m.page_server_pid} on {m.remote.host} killed after it started, before the dump"
        elif self.name == "link-cut":
            self.cut()

    def after_dump(self):
        """The dump is done, the process frozen (or gone), nothing copied yet."""
        if self.name == "disk-full" and self.spec["late"]:
            q = shlex.quote(os.path.join(self.m.images, FILLER))
            self.m.remote.run(f"dd if=/dev/zero of={q} bs=64k 2>/dev/null; true", 120)
            self.r["causedAt"] += "; filled after the dump, before the copy"

    def lazy_restored(self, run_dir):
        """Shell for the lazy restore's own command there, run once the process runs there: the
        daemon killed by the PID its keeper wrote (lazy.start_daemon)."""
        pid = shlex.quote(os.path.join(run_dir, "lazy-pages.pid"))
        self.r["causedAt"] = (f"criu lazy-pages on {self.m.remote.host} killed (kill -9) as soon as criu restore "
                              "--lazy-pages returned there: the process ran there, its pages still coming")
        return f"{{ kill -9 \"$(cat {pid})\" || true; }} && "

    def cut(self):
        """Drops what this host sends to the destination: a root pfifo of limit 0 (it holds no
        packet, so drops each) on its route's device, in place of the lab's shaping there (put
        back after)."""
        m = self.m
        dev = route_dev(must_json(["ip", "-j", "route", "get", m.remote.host], f"ip route get {m.remote.host}"),
                        m.remote.host)
        before = qdiscs_of(dev)
        foreign = foreign_root(dev, before)
        if foreign:
            raise LabError(BROKEN, f"{foreign}: the link cut leaves it alone (nothing was frozen)")
        shaped = read_record(dev) if lab_qdiscs(before) else None
        if lab_qdiscs(before):
            run(["tc", "qdisc", "del", "dev", dev, "root", "handle", ROOT])
        argv = ["tc", "qdisc", "add", "dev", dev, "root", "handle", ROOT, "pfifo", "limit", "0"]
        p = run(argv)
        if p.returncode != 0:
            raise LabError(BROKEN, f"`{' '.join(argv)}` exited {p.returncode}: {p.stderr.strip()}")
        self.cut_at = time.monotonic()
        self.undo.append(lambda: self.mend(dev, shaped))
        self.r.update(dev=dev, causedAt=f"the path to {m.remote.host} ({dev}) cut as criu dump starts, for {self.spec['seconds']} s")
        self.timer = threading.Timer(self.spec["seconds"], self.end)
        self.timer.daemon = True
        self.timer.start()

    def mend(self, dev, shaped):
        """The cut removed and the lab's shaping from before put back, as its record asked."""
        p = run(["tc", "qdisc", "del", "dev", dev, "root", "handle", ROOT])
        self.r["cutForMs"] = round((time.monotonic() - self.cut_at) * 1000, 1)
        said = [] if p.returncode == 0 else [f"tc qdisc del dev {dev} root: {p.stderr.strip()}"]
        if shaped and shaped.get("asked"):
            a = shaped["asked"]
            for argv in plan(dev, a.get("rateBitsPerSecond"), a.get("delayUs"), a.get("lossPercent")):
                p = run(argv)
                said += [] if p.returncode == 0 else [f"{' '.join(argv)}: {p.stderr.strip()}"]
        self.r["linkRestored"] = not said
        if said:
            self.r["linkRestoreErrors"] = said

    def unmount(self):
        """The tmpfs there, unmounted only if it is the fault's (findmnt names its source)."""
        m, q = self.m, shlex.quote(self.m.images)
        p = m.remote.run(f"findmnt -n -o SOURCE --mountpoint {q} | grep -qx {TMPFS} && umount {q}", 60)
        self.r["tmpfsRemoved"] = p.returncode == 0
        if p.returncode != 0:
            self.r["tmpfsLeft"] = f"umount {m.images} on {m.remote.host}: {(p.stderr or p.stdout).strip()[-200:]}"

    def end(self):
        """Undoes what the fault did, once (the link cut's timer or the migration's end)."""
        with self.lock:
            undo, self.undo = self.undo, []
            if self.timer:
                self.timer.cancel()
            for step in undo:
                try:
                    step()
                except (LabError, OSError) as e:
                    self.r.setdefault("undoErrors", []).append(str(e))

    def report(self, r):
        """R's `fault`: the outcome in the lab's words, where the evidence is."""
        m = self.m
        ev = {"here": m.dir, "dumpLog": os.path.join(m.dir, "dump.log"), "imagesHere": m.images}
        if self.name == "page-server-kill":
            ev["pageServerLogThere"] = f"{m.remote.host}:{m.dir}/page-server.log"
        lz = r.get("lazy") or {}
        ev.update(lz.get("evidence", {}))
        if m.dumped:
            ev["imagesThere"] = (f"{m.remote.host}:{m.images}" if self.name != "disk-full"
                                 else f"{m.remote.host}:{m.images} (the fault's tmpfs: removed with what it held)")
        self.r["evidence"] = ev
        self.r["processHere"] = state_of(m.pid) if not r.get("ok") else None
        if r.get("ok"):
            self.r["outcome"] = "survived"
            self.r["lab"] = f"the migration went on: PID {r['restoredPid']} runs on {m.remote.host}"
        elif lz.get("source"):
            self.r["outcome"] = "failed, resumed here"
            self.r["lab"] = (f"the copy there was incomplete: {lz.get('destination')}; here {lz['source']}"
                             f" (dump exit {lz['dumpExit']}, criu lazy-pages exit {lz['lazyPagesExit']})")
        elif m.dumped:
            self.r["outcome"] = "failed, restored here"
            self.r["lab"] = (f"the process was dumped, so the lab restored it here from the images it kept "
                             f"({'it runs' if self.r['processHere'] == 'running' else 'it is ' + self.r['processHere']})")
        else:
            self.r["outcome"] = "failed, never dumped"
            self.r["lab"] = (f"no dump finished, so there was nothing to restore: the process is "
                             f"{self.r['processHere']} here" + (" (the refusal came before any freeze)"
                                                                 if "nothing was frozen" in r.get("error", "") else
                                                                 " (CRIU let it run on after the failed dump)"))
        return self.r


def state_of(pid):
    """'running', 'stopped (T)' (frozen: the lab then says so) or 'gone'."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = re.search(r"^State:\s+(\S)", f.read(), re.M).group(1)
    except (OSError, AttributeError):
        return "gone"
    return f"stopped ({state})" if state in "tT" else "running"


def lines(r):
    """The fault in the terminal, under migrate's own lines."""
    f = r.get("fault")
    if not f:
        return []
    return [f"  fault {f['name']}: {f.get('causedAt') or 'not caused (refused before)'}",
            f"    outcome: {f['outcome']}; the lab: {f['lab']}",
            f"    CRIU: {f['criu']}",
            "    evidence: " + ", ".join(f"{k} {v}" for k, v in f["evidence"].items())]
