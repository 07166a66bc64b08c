"""criu-lab check: does `criu check` pass on this kernel?"""
import re

from .common import CRIU, base, checked, ready, run
from .outcome import BROKEN, OK, attempt


def register(sub):
    sub.add_parser("check", help="does `criu check` pass on this kernel?").set_defaults(fn=cmd_check)


def problems(r):
    """What is missing or inconsistent in a check result (empty: it may be printed as is)."""
    out = [f"{k} is {r.get(k)!r}, not a {t.__name__}" for k, t in
           (("ok", bool), ("criuVersion", str), ("kernel", str)) if not isinstance(r.get(k), t)]
    if out:
        return out
    if not r["ok"]:
        return [] if r.get("error") else ["a failed check without an error"]
    if not re.match(r"\d+\.\d+", r["criuVersion"]) or not r["kernel"]:
        out.append(f"criuVersion {r['criuVersion']!r} or kernel {r['kernel']!r} is not a version")
    # `criu check` ends with "Looks good." (or "Looks good but ...") when it passes.
    if "Looks good" not in r.get("output", ""):
        out.append("criu check exited 0 without saying \"Looks good\"")
    return out


def cmd_check(_):
    r = base()
    with attempt(r) as outcome:
        ready("check")
    if outcome.failed:
        return outcome.code, r, f"criu-lab check: {r['error']}"
    p = run([CRIU, "check"])
    r["output"] = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
    r["ok"] = p.returncode == 0
    if not r["ok"]:
        r["error"] = f"criu check exited {p.returncode}"
    code = checked(r, problems(r), OK if r["ok"] else BROKEN)
    verdict = "passed" if r["ok"] else f"FAILED: {r['error']}"
    return code, r, f"CRIU {r['criuVersion']}, kernel {r['kernel']}: criu check {verdict}\n{r['output']}"
