"""criu-lab check: does `criu check` pass on this kernel?"""
from .common import BROKEN, OK, CRIU, LabError, base, ready, run


def register(sub):
    sub.add_parser("check", help="does `criu check` pass on this kernel?").set_defaults(fn=cmd_check)


def cmd_check(_):
    r = base()
    try:
        ready("check")
    except LabError as e:
        r["error"] = str(e)
        return e.code, r, f"criu-lab check: {e}"
    p = run([CRIU, "check"])
    r["output"] = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
    r["ok"] = p.returncode == 0
    if not r["ok"]:
        r["error"] = f"criu check exited {p.returncode}"
    verdict = "passed" if r["ok"] else "FAILED"
    return (OK if r["ok"] else BROKEN), r, f"CRIU {r['criuVersion']}, kernel {r['kernel']}: criu check {verdict}\n{r['output']}"
