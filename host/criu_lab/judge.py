"""criu-lab judge NAME RC STDOUT STDERR: whether a check passed, by the rules its JSON must keep.

The rules are data, stated once in the TypeScript package's contract/rules.json and linked
beside this module as rules.json (shipped with the lab's files): per check the fields with their
JSON types and comparisons between fields or with a value. `pulumi up`'s remote Commands run
this judge on the host (components/verification.ts); the verifier reads the same file
(contract/rules.ts), and demo's own check of its result reads it here.
"""
import json
import math
import os
import re

from .outcome import BROKEN, OK

RULES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rules.json")
KINDS = {"string": str, "boolean": bool, "object": dict, "array": list}


def register(sub):
    p = sub.add_parser("judge", help="whether a check's output passed its contract (used by pulumi up)")
    p.add_argument("name", choices=sorted(contracts()), help="the check whose rules apply")
    p.add_argument("rc", type=int, help="the check's exit code")
    p.add_argument("stdout", help="file holding the check's stdout")
    p.add_argument("stderr", help="file holding the check's stderr")
    p.set_defaults(fn=cmd_judge)


def contracts():
    with open(RULES_FILE) as f:
        return json.load(f)


def typed(value, kind):
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, KINDS[kind])


def shown(value):
    """A value in a message as the TypeScript judge shows it (JavaScript's String())."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def holds(rule, r):
    left, than = r.get(rule["field"]), rule["than"]
    right = r.get(than["field"]) if "field" in than else than["value"]
    if "plus" in than:
        if not typed(right, "number"):
            return False
        right += than["plus"]
    if rule["is"] == "==":
        # JavaScript's ===: true is not 1.
        return isinstance(left, bool) == isinstance(right, bool) and left == right
    return typed(left, "number") and typed(right, "number") and left >= right


def broken_rules(name, r):
    """The messages of the rules of check NAME that result R breaks, in the table's order."""
    return [re.sub(r"\{(\w+)\}", lambda m: shown(r[m[1]]) if m[1] in r else "undefined", rule["message"])
            for rule in contracts()[name]["requires"] if not holds(rule, r)]


def last_object(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def first_line(text):
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def verdict(name, rc, out, err):
    """None when the check passed, else why not (its first line says it)."""
    contract = contracts()[name]
    result, problem = last_object(out), None
    if result is None:
        problem = "no JSON object in its output"
    elif result.get("ok") is not True:
        error = result.get("error")
        problem = error if isinstance(error, str) and error.strip() else "it reported ok: false without an error"
    else:
        for key, kind in contract["fields"].items():
            if not typed(result.get(key), kind):
                article = "an" if kind[0] in "aeiou" else "a"
                problem = "field '%s' should be %s %s, got %s" % (key, article, kind, json.dumps(result.get(key)))
                break
        else:
            problem = next(iter(broken_rules(name, result)), None)
    if rc == 0 and problem is None:
        return None
    if result is None or problem is None:
        said = first_line(err) or first_line(out)
        problem = "%s: %s" % (problem, said[:300]) if problem and said else problem or said or "no output"
    lines = problem.strip().splitlines()
    images = result.get("imagesDir") if result is not None and result.get("ok") is not True else None
    if isinstance(images, str) and images:
        lines[0] += " (checkpoint images kept in %s on the host)" % images
    return "\n".join(lines)


def cmd_judge(args):
    with open(args.stdout, errors="replace") as f:
        out = f.read()
    with open(args.stderr, errors="replace") as f:
        err = f.read()
    problem = verdict(args.name, args.rc, out, err)
    if problem is None:
        return OK, {"ok": True}, f"{args.name} passed"
    return BROKEN, {"ok": False, "error": problem}, problem
