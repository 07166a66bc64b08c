"""criu-lab status: what install-criu.sh and setup-lab.sh installed, and the lab's disk use."""
import json
import os

from .common import STATE_DIR, criu_version, disk, disk_text
from .outcome import BROKEN, NOT_READY, OK


def register(sub):
    sub.add_parser("status", help="what install-criu.sh installed, the lab's disk use").set_defaults(fn=cmd_status)


def source_text(source):
    if source.get("kind") == "git":
        return f"git {source.get('repository')} tag {source.get('version')} (commit {source.get('commit')})"
    if source.get("kind") == "tarball":
        return f"tarball {source.get('url')} (sha256 {source.get('sha256')})"
    return "unknown"


def human(r):
    install, setup = r["install"], r["setup"]
    v = install.get("criuVersion")
    now = "" if r["criuVersion"] == v else f" (but {r['criuVersion'] or 'no criu'} runs there now)"
    lines = [f"CRIU {v} at {install.get('criu')}{now}",
             f"  source:    {source_text(install.get('source', {}))}",
             f"  installed: {install.get('installedAt')} (log {install.get('log')})"]
    if setup is None:
        lines.append("Lab: no setup record (the lab was not set up by setup-lab.sh)")
    else:
        minutes = setup.get("autoStopMinutes", 0)
        stop = f"after {minutes} minutes with no SSH session" if minutes else "never (0 minutes)"
        state = "ready" if setup.get("ok") else f"FAILED: {setup.get('error')}"
        lines += [f"Lab user:  {setup.get('user')} (set up {setup.get('finishedAt')}: {state})",
                  f"Auto-stop: {stop}"]
    return "\n".join(lines + [disk_text(r["disk"])])


def cmd_status(_):
    try:
        with open(os.path.join(STATE_DIR, "install.json")) as f:
            install = json.load(f)
    except (OSError, ValueError) as e:
        d = disk()
        return (NOT_READY, {"ok": False, "error": f"CRIU is not installed by criu-lab: {e}", "disk": d},
                f"not installed: {e}\n{disk_text(d)}")
    try:
        with open(os.path.join(STATE_DIR, "setup.json")) as f:
            setup = json.load(f)
    except (OSError, ValueError):
        setup = None
    v = criu_version()
    r = {"ok": bool(v), "criuVersion": v, "install": install, "setup": setup, "disk": disk()}
    return (OK if v else BROKEN), r, human(r)
