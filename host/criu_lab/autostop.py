"""criu-lab autostop: (run by a systemd timer) power off after N minutes with no SSH session."""
import os
import re
import subprocess
import time

from .common import STATE_DIR, run, whole
from .outcome import OK


def register(sub):
    p = sub.add_parser("autostop", help="(run by a systemd timer) power off after N idle minutes")
    p.add_argument("--minutes", type=whole, required=True)
    for flag in ("--now", "--sessions", "--boot-time"):
        p.add_argument(flag, type=whole)
    p.add_argument("--port", type=whole, default=22)
    p.add_argument("--state", default=os.path.join(STATE_DIR, "autostop-last-session"))
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(fn=cmd_autostop)


# Pure: idle time counts from the later of the last SSH session seen and this boot, so a host
# started again after a stop gets its full time. 0 minutes = never.
def autostop_decision(minutes, now, sessions, last_session, boot_time):
    if minutes == 0:
        return "stay: auto-stop is disabled (0 minutes)"
    if sessions:
        return f"stay: {sessions} SSH session(s) open"
    idle = now - max(last_session, boot_time)
    if idle >= minutes * 60:
        return f"poweroff: no SSH session for {idle // 60} minute(s) (limit {minutes})"
    return f"stay: no SSH session for {idle // 60} minute(s) of {minutes}"


def cmd_autostop(a):
    # Config autoStopMinutes: a forgotten lab stops costing money. --now, --sessions,
    # --boot-time and --state replace the clock, the session count, the boot time and the
    # state file, so tests drive the decision; --dry-run never powers off.
    now = int(time.time()) if a.now is None else a.now
    if a.sessions is None:
        # Established TCP connections to sshd: unlike `who`, counts SSH commands without a tty.
        a.sessions = len(run(["ss", "-Htn", "state", "established", f"( sport = :{a.port} )"]).stdout.splitlines())
    if a.boot_time is None:
        with open("/proc/stat") as f:
            a.boot_time = int(re.search(r"^btime (\d+)", f.read(), re.M).group(1))
    try:
        with open(a.state) as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 0
    if a.sessions:
        os.makedirs(os.path.dirname(a.state), exist_ok=True)
        with open(a.state + ".new", "w") as f:
            f.write(f"{now}\n")
        os.replace(a.state + ".new", a.state)
    d = autostop_decision(a.minutes, now, a.sessions, last, a.boot_time)
    if d.startswith("poweroff") and not a.dry_run:
        subprocess.run(["systemctl", "poweroff"], check=True)
    return OK, {"decision": d, "sessions": a.sessions}, d
