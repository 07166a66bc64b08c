"""Post-copy (`migrate --mode lazy`): the process restored there before its pages, which follow
on demand from this host, and how it ends whatever happens to either side (docs/design.md
"Faults", "Lazy's end"; the lab guide's faults section).

The dump here (`criu dump --lazy-pages`) serves the pages to `criu lazy-pages` there, and knows
no more of the transfer's end than its connection's: a page server that only sends takes the
peer's hang-up for the end, whether or not every page went (CRIU's criu/page-xfer.c
page_server_serve: the "not flushed" check is for receiving only), and would then kill the
process (cr_dump_finish: the final state). So the dump leaves the process stopped
(`--leave-stopped`) and the lab decides by the daemon there: exit 0 (criu/uffd.c
handle_requests: no page left to copy) and the process is killed here, as CRIU would have; else
the copy there is incomplete (its pages not yet copied read as zeros once the daemon's
userfaultfd is closed: the kernel's fs/userfaultfd.c, userfaultfd_release), so that copy is
killed by its PID and the process resumed here, whole (a lazy dump does not change its memory;
a dump that failed resumed it itself: cr_dump_finish, TASK_ALIVE on error).
"""
import os
import shlex
import signal
import socket
import subprocess
import time

from . import manifest
from .common import CRIU, counts, run, tail
from .faults import state_of
from .outcome import BROKEN, EXPECTED, LabError, error_text
from .ram_images import to_disk
from .remote import local_port, ship

# The daemon's files in the run's directory there: its log, PID, exit code and ready byte.
DAEMON = "lazy-pages"
# How long the daemon's exit code may take to appear there once the dump here has ended (after
# a restore; without one, a daemon that started has lost its restorer and ends at once).
DAEMON_END_S, UNRESTORED_END_S = 60, 5
# How long the dump may outlive the daemon there before it is killed (its hang-up lost on the way).
DUMP_AFTER_DAEMON_S = 10


# Lazy's stages, in the order they happen, each a field of migrate's JSON (ms): back to back
# from the freeze, so together they are resumeMs (docs/design.md "Lazy's stages").
STAGES = ("freezeMs", "manifestMs", "forwardMs", "transferMs", "daemonMs", "restoreMs")


class Stages:
    """Back-to-back stages of a downtime that began at START (time.monotonic()): each mark()
    closes the stage since the one before into R[KEY] (ms), so nothing the lab does between
    two of them goes uncounted; total() is the time from START to the last mark."""

    def __init__(self, r, start):
        self.r, self.start, self.last = r, start, start

    def mark(self, key):
        now = time.monotonic()
        self.r[key] = round((now - self.last) * 1000, 1)
        self.last = now

    def total(self):
        return round((self.last - self.start) * 1000, 1)


def lazy(m, carry, out):
    """Post-copy: dump with --lazy-pages (this host keeps the pages and serves them), copy the
    rest, start `criu lazy-pages` there, restore there; pages follow on demand. resumeMs: from
    the freeze (m.frozen_at, the dump's start) until the process runs there, the sum of
    STAGES; completeMs: until the last page has gone and the source process ended. A lazy run
    that does not end whole there ends with the process running here again and the copy
    there killed (`lazy` in the JSON says so)."""
    r = m.r
    m.room(m.images, pages_here=False, pages_there=False)  # the pages stay in memory, then go to memory there
    who = identity(m.pid)  # read while it runs: nothing of it changes in the freeze
    ready_r, ready_w = os.pipe()
    port = local_port()
    m.frozen_at = time.monotonic()  # the downtime starts as the dump does (it freezes at once)
    dump = subprocess.Popen([CRIU, "dump", "-t", str(m.pid), "-D", m.images, "--lazy-pages", "--leave-stopped",
                             "--address", "127.0.0.1", "--port", str(port), "--status-fd", str(ready_w),
                             "-o", os.path.join(m.dir, "dump.log"), "-v4"], pass_fds=(ready_w,))
    os.close(ready_w)
    # The byte comes once every image but the pages is written and the page server listens
    # (criu/cr-dump.c cr_lazy_mem_dump -> cr_page_server -> criu/util.c run_tcp_server:
    # status_ready just before it accepts).
    got = os.read(ready_r, 1)
    os.close(ready_r)
    stages = Stages(r, m.frozen_at)
    stages.mark("freezeMs")
    if got != b"\0":
        dump.wait()
        raise LabError(BROKEN, f"criu dump --lazy-pages exited {dump.returncode}; end of {m.dir}/dump.log:\n{tail(os.path.join(m.dir, 'dump.log'))}")
    m.dumped = True
    try:
        serve(m, carry, port, stages)
        r["resumeMs"] = stages.total()
        # The source stays stopped (--leave-stopped) until the lab ends or resumes it, so its
        # output still ends with the last count before the freeze: read after the downtime.
        r["lastBeforeDump"] = (counts(out) or [None])[-1] if out else None
    except (LabError, *EXPECTED) as e:
        said = end(m, dump, port, who, m.frozen_at)
        raise LabError(getattr(e, "code", BROKEN), f"{error_text(e)}\n{said}") from None
    said = end(m, dump, port, who, m.frozen_at)
    if said:
        raise LabError(BROKEN, said)


def serve(m, carry, port, stages):
    """The dump is done but for the pages: its images there, the daemon, the restore; each a
    stage of the downtime (STAGES)."""
    r, remote = m.r, m.remote
    # Its images are whole now but for the pages, which the dump serves: checked there (check_there).
    manifest.write(m.images, {"lazyPages": True})
    stages.mark("manifestMs")
    fwd = run([*remote.ssh, "-O", "forward", "-R", f"127.0.0.1:0:127.0.0.1:{port}", remote.target], 30)
    if fwd.returncode != 0 or not fwd.stdout.strip().isdigit():
        raise LabError(BROKEN, f"cannot forward {remote.host} back to the lazy page server here: {fwd.stderr.strip()}")
    stages.mark("forwardMs")
    names = [os.path.join(m.images, n) for n in sorted(os.listdir(m.images))]
    r["bytesTransferred"] += ship(remote, names + carry)[0]  # timed as a stage, listing included
    stages.mark("transferMs")
    remote.must(start_daemon(m.dir, m.images, int(fwd.stdout.strip())), "criu lazy-pages")
    stages.mark("daemonMs")
    # The fault's kill goes in the restore's own command: the daemon copies every page left as
    # soon as the restore has finished (criu/uffd.c handle_requests), so a round trip later
    # could find nothing left to lose.
    then = m.fault.lazy_restored(m.dir) if m.fault else ""
    m.restore(m.images, ["--lazy-pages"], then=then)
    stages.mark("restoreMs")  # its SSH command whole, the check there and the fault's kill included


def start_daemon(run_dir, images, port):
    """Shell that starts `criu lazy-pages` there, in the background under a shell that keeps
    its PID and, once it ends, its exit code (the only witness of a whole transfer), and
    returns once the daemon listens (its --status-fd byte) or has ended."""
    q, d = shlex.quote, shlex.quote(os.path.join(run_dir, DAEMON))
    daemon = (f"{CRIU} lazy-pages --page-server --address 127.0.0.1 --port {port} -D {q(images)} "
              f"-o {d}.log -v4 --status-fd 3 3>{d}.ready")
    keeper = f"{daemon} & echo $! >{d}.pid; wait $!; echo $? >{d}.rc"
    return (f"rm -f {d}.ready {d}.rc {d}.pid; setsid sh -c {q(keeper)} </dev/null >/dev/null 2>&1 &\n"
            f"for i in $(seq 600); do [ -s {d}.ready ] && exit 0; [ -s {d}.rc ] && break; sleep 0.1; done; "
            f"echo \"it exited $(cat {d}.rc 2>/dev/null || echo '(no exit code after 60 s)'); end of its log:\"; "
            f"tail -n 20 {d}.log; exit 1")


def daemon_end(m, seconds=DAEMON_END_S):
    """The daemon there once the dump here has ended: {pid, exit} (exit None: still running
    after SECONDS, or there was no asking)."""
    d = shlex.quote(os.path.join(m.dir, DAEMON))
    try:
        p = m.remote.run(f"for i in $(seq {seconds * 10}); do [ -s {d}.rc ] && break; sleep 0.1; done; "
                         f"echo \"$(cat {d}.pid 2>/dev/null) $(cat {d}.rc 2>/dev/null)\"", seconds + 30)
    except (LabError, *EXPECTED):
        return {"pid": None, "exit": None}
    words = p.stdout.split()
    nums = [int(w) for w in words if w.isdigit()]
    return {"pid": nums[0] if nums else None, "exit": nums[1] if len(nums) > 1 else None}


def wait_dump(m, dump, limit_s=1800):
    """The dump's exit code. It ends when the daemon there hangs up; should it not (a hang-up
    the SSH forward never passed on), it is killed DUMP_AFTER_DAEMON_S after the daemon ended,
    or after LIMIT_S: its tracees are detached as it dies and run on."""
    deadline, daemon_gone = time.monotonic() + limit_s, None
    d = shlex.quote(os.path.join(m.dir, DAEMON))
    while True:
        try:
            return dump.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if daemon_gone is None:
            try:
                if m.remote.run(f"test -s {d}.rc", 30).returncode == 0:
                    daemon_gone = time.monotonic()
            except (LabError, *EXPECTED):
                pass
        now = time.monotonic()
        if now > deadline or (daemon_gone is not None and now - daemon_gone > DUMP_AFTER_DAEMON_S):
            dump.kill()
            return dump.wait()


def poke(port):
    """Connects to the dump's page server and hangs up: a lazy dump that nothing there ever
    connected to (the restore failed) ends as after a transfer, leaving the process stopped."""
    try:
        socket.create_connection(("127.0.0.1", port), 5).close()
    except OSError:
        pass  # already taken by the daemon there (it accepts one), or the dump has ended


def identity(pid):
    """What names the process without reading its memory: its executable and its name (the
    kernel's; a copy whose pages read as zeros shows an empty /proc/PID/cmdline)."""
    with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
        return {"exe": os.readlink(f"/proc/{pid}/exe"), "comm": f.read().strip()}


def end(m, dump, port, who, started):
    """After the restore there or its failure: None when the process moved whole (the source
    killed here, `completeMs`); else what the lab did, said whole (the process running here
    again, the copy there killed, the evidence), also in R's `lazy`."""
    r = m.r
    if not r.get("restoredPid"):
        poke(port)
    code = wait_dump(m, dump)
    daemon = daemon_end(m, DAEMON_END_S if r.get("restoredPid") else UNRESTORED_END_S)
    lz = r["lazy"] = {"dumpExit": code, "lazyPagesPid": daemon["pid"], "lazyPagesExit": daemon["exit"]}
    if code == 0 and daemon["exit"] == 0:
        os.kill(m.pid, signal.SIGKILL)  # stopped by --leave-stopped: what CRIU's dump does to a process that moved
        r["completeMs"] = round((time.monotonic() - started) * 1000, 1)
        m.reap()
        lz["source"] = "ended here: every page went there"
        return None
    lz["source"] = resume_here(m.pid)
    lz["destination"] = end_there(m, who, daemon["pid"]) if r.get("restoredPid") else "nothing was restored there"
    # The process runs here again: its images (in RAM when they fitted) move to the run's
    # directory on disk before the evidence is named, so the error names where they stay.
    here, _, problems = to_disk(m, keep=True)
    host, d = m.remote.host, m.dir
    lz["evidence"] = {"dumpLog": f"{d}/dump.log", "imagesHere": here, "restoreLogThere": f"{host}:{d}/restore.log",
                      "lazyPagesLogThere": f"{host}:{d}/{DAEMON}.log"}
    why = (f"criu dump --lazy-pages exited {code}" if code != 0 else
           f"criu lazy-pages on {host} " + ("never said how it ended" if daemon["exit"] is None
                                            else f"exited {daemon['exit']}") + " while the dump here exited 0")
    return (f"the lazy migration did not end whole on {host}: {why}, so pages that had not gone read as zeros "
            f"there. Here: {lz['source']}. There: {lz['destination']}. Evidence kept: {d}/dump.log and the images "
            f"{here} here; {d}/restore.log and {d}/{DAEMON}.log on {host}" + "".join(f"\n{p}" for p in problems))


def resume_here(pid):
    """The process here running again: CRIU resumed it after a failed dump; a dump that ended
    as if whole left it stopped (--leave-stopped), so it is continued."""
    state = state_of(pid)
    if state.startswith("stopped"):
        os.kill(pid, signal.SIGCONT)
        for _ in range(50):
            if not state_of(pid).startswith("stopped"):
                break
            time.sleep(0.02)
        return f"PID {pid} continued (SIGCONT; the dump had left it stopped): {state_of(pid)}, whole"
    if state == "running":
        return f"PID {pid} runs again, whole (CRIU resumed it after its failed dump)"
    return f"PID {pid} is {state}: it is not running here"


def end_there(m, who, daemon_pid):
    """Kills the incomplete copy there by its restored PID, only while it is the process (its
    executable and name: WHO; a PID can be reused), and a daemon still running there; says
    what it found."""
    q, pid = shlex.quote, m.r["restoredPid"]
    script = (f"if [ ! -e /proc/{pid} ]; then echo gone; elif [ \"$(readlink /proc/{pid}/exe)\" = {q(who['exe'])} ] && "
              f"[ \"$(cat /proc/{pid}/comm)\" = {q(who['comm'])} ]; then kill -9 {pid} && "
              f"for i in $(seq 50); do s=$(awk '/^State:/ {{print $2}}' /proc/{pid}/status 2>/dev/null); "
              "[ -z \"$s\" ] || [ \"$s\" = Z ] && break; sleep 0.1; done; echo killed; "
              "else echo other; fi")
    if daemon_pid:
        script += (f"; grep -q lazy-pages /proc/{daemon_pid}/cmdline 2>/dev/null && kill -9 {daemon_pid} "
                   "&& echo daemon-killed; true")
    try:
        said = m.remote.run(script, 60).stdout.split()
    except (LabError, *EXPECTED) as e:
        return f"could not end PID {pid} on {m.remote.host} ({error_text(e)}): end it there by hand"
    text = {"gone": f"PID {pid} was already gone (it had crashed on its missing pages, or ended)",
            "killed": f"PID {pid}, the incomplete copy, killed (kill -9)",
            "other": f"PID {pid} there is another program now: left alone"}.get(said[0] if said else "",
                                                                              f"PID {pid}: no answer")
    return text + ("; its criu lazy-pages, still running, killed" if "daemon-killed" in said else "")
