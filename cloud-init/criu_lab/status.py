"""criu-lab status: what install-criu.sh and setup-lab.sh installed."""
import json
import os

from .common import BROKEN, NOT_READY, OK, STATE_DIR, criu_version


def register(sub):
    sub.add_parser("status", help="what install-criu.sh installed").set_defaults(fn=cmd_status)


def cmd_status(_):
    try:
        with open(os.path.join(STATE_DIR, "install.json")) as f:
            install = json.load(f)
    except (OSError, ValueError) as e:
        return NOT_READY, {"ok": False, "error": f"CRIU is not installed by criu-lab: {e}"}, f"not installed: {e}"
    try:
        with open(os.path.join(STATE_DIR, "setup.json")) as f:
            setup = json.load(f)
    except (OSError, ValueError):
        setup = None
    v = criu_version()
    r = {"ok": bool(v), "criuVersion": v, "install": install, "setup": setup}
    return (OK if v else BROKEN), r, json.dumps(r, indent=2)
