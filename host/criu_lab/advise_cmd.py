"""criu-lab advise --pid P --to USER@HOST: what the advisor (advise.py) measures of the process
and the link, each mode's predicted downtime or why these two hosts cannot run it, and the mode
`migrate --mode auto` would pick. Nothing is frozen and nothing is copied but the link's probe."""
import os

from .advise import MIB, advice_text, advise
from .common import base, ready, whole
from .migrate import add_destination_flags, check_destination_flags
from .modes import destination_features
from .outcome import OK, USAGE, LabError, attempt, failed
from .procs import alive
from .remote import Remote, probe

# The link probe's bounds: enough to time past a round trip, small enough to be no transfer.
PROBE_MIB = (1, 256)
WINDOW_S = (0.1, 10.0)


def register(sub):
    p = sub.add_parser("advise", help="measure a process and the link to a host; predict each migration mode's downtime")
    add_destination_flags(p)
    p.add_argument("--pid", type=whole, required=True, help="the process to measure (not frozen)")
    p.add_argument("--probe-mib", type=whole, default=8,
                   help=f"MiB sent to /dev/null there to time the link ({PROBE_MIB[0]}-{PROBE_MIB[1]}, default 8)")
    p.add_argument("--window", type=float, default=1.0,
                   help=f"seconds over which the dirty rate is measured ({WINDOW_S[0]:g}-{WINDOW_S[1]:g}, default 1)")
    p.set_defaults(fn=cmd_advise)


def cmd_advise(a):
    r = {**base(), "pid": a.pid}
    remote = None
    with attempt(r, cleanup=lambda: remote and remote.close()) as outcome:
        user, host = check_destination_flags(a)
        if not PROBE_MIB[0] <= a.probe_mib <= PROBE_MIB[1]:
            raise LabError(USAGE, f"--probe-mib {a.probe_mib}: expected {PROBE_MIB[0]}-{PROBE_MIB[1]}")
        if not WINDOW_S[0] <= a.window <= WINDOW_S[1]:
            raise LabError(USAGE, f"--window {a.window:g}: expected {WINDOW_S[0]:g}-{WINDOW_S[1]:g} seconds")
        ready("advise")
        if a.pid in (0, 1, os.getpid()) or not alive(a.pid):
            raise LabError(USAGE, f"--pid {a.pid}: no such running process")
        remote = Remote(user, host, a.port, a.identity, a.known_hosts)
        remote.connect()
        dest = probe(remote, destination_features("auto"))
        r.update(destination=remote.target, destinationKernel=dest["kernel"],
                 **advise(a.pid, remote, dest, a.probe_mib * MIB, a.window))
        r["ok"] = True
    if outcome.failed:
        return outcome.code, r, failed("criu-lab advise", r)
    return OK, r, (f"PID {a.pid} -> {r['destination']} ({r['destinationKernel']}), nothing frozen:\n"
                   + advice_text(r) + f"\n`criu-lab migrate --mode auto` would pick {r['pick']}")
