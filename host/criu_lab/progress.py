"""criu-lab progress: which of the lab's exercises (exercises.json) the learner on this host
completed. The lab's commands record their own success (after_command, called by cli.main);
what the learner did by hand is found on disk (evidence.py) each time this command runs. The
records live in STATE_DIR/progress.json, root's, written whole (a rename) under a lock."""
import fcntl
import json
import os
import platform
import pwd
import sys
import time

from . import evidence
from .common import STATE_DIR
from .outcome import OK

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exercises.json")
STORE = os.path.join(STATE_DIR, "progress.json")
VERSION = 1


def register(sub):
    sub.add_parser("progress", help="which of the lab's exercises are done on this host").set_defaults(fn=cmd_progress)


def exercises():
    with open(TABLE, encoding="utf-8") as f:
        return json.load(f)["exercises"]


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def load(path):
    """The records ({id: {at, how, last, times}}); none when there is no file. A file that is
    not the store's JSON is moved aside (kept, named in a warning), not overwritten."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and isinstance(data.get("exercises"), dict):
            return data["exercises"]
        raise ValueError("no 'exercises' object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        aside = f"{path}.unreadable-{int(time.time())}"
        try:
            os.replace(path, aside)
            print(f"criu-lab: {path} was unreadable ({e}); kept as {aside}, starting afresh", file=sys.stderr)
        except OSError:
            pass
        return {}


def merge(records, done, count):
    """Adds DONE ([(id, how, epoch)]) to RECORDS: the first completion keeps its time and how;
    with COUNT (a command that ran now) `times` and `last` grow, evidence found again does not."""
    changed = False
    for ex_id, how, when in done:
        r = records.get(ex_id)
        if r is None:
            records[ex_id] = {"at": iso(when), "how": how, "last": iso(when), "times": 1}
            changed = True
        elif count:
            r["times"] = int(r.get("times", 1)) + 1
            r["last"] = iso(when)
            changed = True
    return changed


def record(done, count=True, path=None):
    """Records DONE in the store at PATH (default STORE) under its lock, replacing the file
    whole (0644: the learner may read it, only root write it). Returns the records. Raises
    OSError (PermissionError for a user other than root)."""
    path = path or STORE
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = load(path)
        if merge(records, done, count):
            partial = f"{path}.{os.getpid()}.new"
            with open(partial, "w", encoding="utf-8") as f:
                json.dump({"version": VERSION, "exercises": records}, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(partial, 0o644)
            os.replace(partial, path)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return records


def command_key(args):
    """How exercises.json names the command ARGS ran: `demo`, `scenario run training`."""
    if args.command == "scenario":
        return f"scenario run {args.scenario}"
    if args.command == "migrate" and getattr(args, "fault", None):
        return "migrate --fault"
    return args.command


def after_command(args, code, table=None, result=None):
    """Records the exercises that ARGS's command completes, when it succeeded (CODE 0), or
    for a fault caused on purpose, when the lab recovered from it (RESULT's fault: the process
    runs, here or there), whatever the exit code says of the migration. A record that cannot
    be written never fails the command: root is told on stderr."""
    fault = (result or {}).get("fault") or {}
    recovered = bool(fault.get("outcome")) and fault.get("processHere") in ("running", None)
    # The verifier's and the deploy's own runs say so (verify/checks.ts NOT_THE_LEARNER).
    if not (code == OK or recovered) or os.environ.get("CRIU_LAB_PROGRESS") == "off":
        return
    key = command_key(args)
    how = f"sudo criu-lab migrate --fault {fault['name']}: {fault['outcome']}" if fault else f"sudo criu-lab {key} passed"
    done = [(e["id"], how, time.time())
            for e in (table or exercises()) if key in e.get("commands", [])]
    if not done:
        return
    try:
        record(done)
    except OSError as e:
        if os.geteuid() == 0:
            print(f"criu-lab: could not record progress in {STORE}: {e}", file=sys.stderr)


def learner_homes():
    """The homes searched for hand-made checkpoints: CRIU_LAB_HOME (tests; ':' between
    several), else the lab user's (setup.json) and the user who ran sudo."""
    if os.environ.get("CRIU_LAB_HOME"):
        return [h for h in os.environ["CRIU_LAB_HOME"].split(":") if h]
    users = []
    try:
        with open(os.path.join(STATE_DIR, "setup.json"), encoding="utf-8") as f:
            users.append(json.load(f).get("user"))
    except (OSError, ValueError, AttributeError):
        pass
    users.append(os.environ.get("SUDO_USER"))
    homes = []
    for user in users:
        try:
            home = pwd.getpwnam(user).pw_dir if user and user != "root" else None
        except KeyError:
            home = None
        if home and home not in homes and os.path.isdir(home):
            homes.append(home)
    return homes


def found_by_hand(table, homes):
    """[(id, how, epoch)] for the exercises a restore in HOMES completes (`restored`)."""
    by_program = {e["restored"]: e["id"] for e in table if e.get("restored")}
    return [(by_program[program], f"restore of {program} found in {images}", when)
            for program, images, when in evidence.restores(homes, set(by_program))]


def report(table, records, homes, saved):
    rows = [{"id": e["id"], "title": e["title"], "section": e["section"], "done": e["id"] in records,
             **{k: records.get(e["id"], {}).get(k) for k in ("at", "how", "last", "times")}} for e in table]
    done = sum(r["done"] for r in rows)
    return {"ok": True, "host": platform.node(), "homes": homes, "saved": saved,
            "done": done, "total": len(rows), "exercises": rows}


def human(r):
    width = max(len(x["id"]) for x in r["exercises"])
    lines = [f"Progress on {r['host']}: {r['done']} of {r['total']} exercises done"]
    for x in r["exercises"]:
        if x["done"]:
            lines.append(f"  \u2713 {x['id']:<{width}}  {x['title']}: {x['at']}, {x['how']}")
        else:
            lines.append(f"  \u00b7 {x['id']:<{width}}  {x['title']}: criu-lab guide {x['section']}")
    if not r["saved"]:
        lines.append("(what was found is not kept: run `sudo criu-lab progress` to record it)")
    return "\n".join(lines)


def cmd_progress(_args):
    table = exercises()
    homes = learner_homes()
    found = found_by_hand(table, homes)
    try:
        records, saved = record(found, count=False), True
    except OSError:
        # Not root: the records as they are, with what was found now, unsaved.
        records = load_readonly(STORE)
        saved = not merge(records, found, count=False)
    r = report(table, records, homes, saved)
    return OK, r, human(r)


def load_readonly(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("exercises", {})
    except (OSError, ValueError, AttributeError):
        return {}
