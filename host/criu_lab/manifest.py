"""A checkpoint's manifest (MANIFEST.json, docs/design.md "Checkpoint manifest"): what made it
(CRIU, kernel, CPU, the lab's version, when) and the size and SHA-256 of each of its files, so
that a restore can refuse a checkpoint that changed or lost a file since the dump, here or on
another host (check_there: Python's hashlib there, `sha256sum -c` where it has no Python; no
criu-lab needed there, which may run an older one).

Every checkpoint directory the lab writes has one: the demo's, training's (written last, as the
mark of a complete checkpoint: checkpoints.py), a migration's (pre-copy's pre-dump rounds and
lazy's images, whose pages stay behind, too) and a backup's images.
"""
import hashlib
import json
import os
import platform
import re
import shlex
import time

from . import __version__
from .common import criu_version
from .outcome import BROKEN, NOT_READY, LabError

NAME = "MANIFEST.json"
FORMAT = "criu-lab-checkpoint/1"
# The names CRIU gives its images (pages-1.img, stats-dump, irmap-cache): nothing that a shell
# line (check_there) or a tar member could read as a path or an option.
SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# The exit status of the check on another host (check_there) when a file differs there.
DIFFERS_THERE = 93
# The check there, where the host has this Python (every lab host: crit and CRIU's build need
# it): hashlib is OpenSSL's SHA-256, which uses the CPU's SHA instructions; coreutils 9.1's
# sha256sum does not. 1 GiB of pages on the project's test host (docs/design.md "Measured
# here"): 0.85 s against 2.8 s, inside a cold migration's downtime. Reads "HEX  NAME" lines
# on stdin, a thread a file (hashlib lets go of the GIL while it hashes), and prints
# sha256sum -c's own lines for a file that differs, so that refused_there reads either.
PYTHON = "/usr/bin/python3"
CHECK_PY = """import concurrent.futures, hashlib, os, sys
def differs(line):
    want, name = line.split("  ", 1)
    h = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return name + ": FAILED open or read"
    return None if h.hexdigest() == want else name + ": FAILED"
with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    bad = [b for b in pool.map(differs, sys.stdin.read().splitlines()) if b]
if bad:
    sys.exit("\\n".join(bad))
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cpu(cpuinfo="/proc/cpuinfo"):
    """(model name, its feature flags sorted, space-separated) of the first CPU in CPUINFO (x86 "model name" and
    "flags"; arm64 has "Features" and often no model name)."""
    model, flags = "", ""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(set(value.split())))
    except OSError:
        pass
    return model, flags


def host_facts():
    """What made a checkpoint: the fields every manifest has besides its files."""
    model, flags = cpu()
    return {"format": FORMAT, "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "labVersion": __version__, "criuVersion": criu_version(), "kernel": platform.release(),
            "arch": platform.machine(), "cpuModel": model, "cpuFlags": flags}


def entries(d, hashes=None):
    """(files, links) of checkpoint directory D: {name: {size, sha256}} of its regular files
    (HASHES: sha256 already computed, by name) and {name: target} of its links (an incremental
    dump's `parent`). The manifest itself is not one of them; subdirectories are refused."""
    files, links = {}, {}
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name == NAME or name.startswith(f".{NAME}"):
            continue
        if not SAFE.fullmatch(name):
            raise LabError(BROKEN, f"{path}: not a name CRIU gives its images")
        if os.path.islink(path):
            links[name] = os.readlink(path)
        elif os.path.isfile(path):
            files[name] = {"size": os.path.getsize(path), "sha256": (hashes or {}).get(name) or sha256(path)}
        else:
            raise LabError(BROKEN, f"{path}: a checkpoint holds files only")
    return files, links


def hashes(d):
    """{name: sha256} of the files of checkpoint directory D that its manifest lists (for
    write's HASHES, computed ahead: migrate hashes while it copies)."""
    return {name: f["sha256"] for name, f in entries(d)[0].items()}


def write(d, info=None, hashes=None):
    """Writes D's manifest (host_facts, INFO, its files), fsynced and renamed into place:
    either the whole manifest is there or none. Returns it."""
    files, links = entries(d, hashes)
    m = {**host_facts(), **(info or {}), "files": files, "links": links}
    tmp = os.path.join(d, f".{NAME}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(m, f, sort_keys=True, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(d, NAME))
    return m


def load(d):
    """D's manifest, or raises (exit 3) saying it has none (an incomplete checkpoint)."""
    path = os.path.join(d, NAME)
    try:
        with open(path) as f:
            m = json.load(f)
    except FileNotFoundError:
        raise LabError(NOT_READY, f"{d} has no {NAME}: not a complete checkpoint (the lab writes it after the dump)") from None
    except (OSError, ValueError) as e:
        raise LabError(NOT_READY, f"{path} cannot be read: {e}") from None
    if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
        raise LabError(NOT_READY, f"{path} has no list of files: not a checkpoint manifest")
    bad = [n for n in m["files"] if not SAFE.fullmatch(n)]
    if bad:
        raise LabError(NOT_READY, f"{path} names a file outside the checkpoint: {bad[0]!r}")
    return m


def compare(m, files, links):
    """What differs between the manifest M and a directory's FILES and LINKS (as `entries`
    gives them): a list of {file, problem, ...}. A file missing, of another size or another
    sha256 differs; so does a link. An extra file is allowed (a restore writes stats-restore
    beside the images) unless it is an image (`*.img`): CRIU could read that one."""
    out = []
    for name, want in sorted(m["files"].items()):
        got = files.get(name)
        if got is None:
            out.append({"file": name, "problem": "missing"})
        elif got["size"] != want.get("size"):
            out.append({"file": name, "problem": "size", "expected": want.get("size"), "actual": got["size"]})
        elif got["sha256"] != want.get("sha256"):
            out.append({"file": name, "problem": "sha256", "expected": want.get("sha256"), "actual": got["sha256"]})
    for name, target in sorted(m.get("links", {}).items()):
        if links.get(name) != target:
            out.append({"file": name, "problem": "link", "expected": target, "actual": links.get(name)})
    out += [{"file": n, "problem": "extra"} for n in sorted(set(files) - set(m["files"])) if n.endswith(".img")]
    return out


def describe(p):
    """One difference as a learner reads it."""
    if p["problem"] == "missing":
        return f"{p['file']} is missing"
    if p["problem"] == "size":
        return f"{p['file']} has {p['actual']} bytes, the manifest says {p['expected']}"
    if p["problem"] == "sha256":
        return f"{p['file']} changed (sha256 {p['actual'][:16]}..., the manifest says {p['expected'][:16]}...)"
    if p["problem"] == "link":
        return f"{p['file']} points at {p['actual']}, the manifest says {p['expected']}"
    return f"{p['file']} is an image the manifest does not list"


def verify(d, depth=0):
    """Checks D against its manifest, and an incremental checkpoint's parents too (their pages
    are part of it). Returns the manifest; raises (exit 3) naming each file that differs."""
    m = load(d)
    files, links = entries(d)
    problems = compare(m, files, links)
    if problems:
        e = LabError(NOT_READY, f"checkpoint {d} refused: " + "; ".join(describe(p) for p in problems)
                     + " (its MANIFEST.json was written after the dump)")
        e.result = {"differs": problems}
        raise e
    if "parent" in links and depth < 64:
        verify(os.path.normpath(os.path.join(d, links["parent"])), depth + 1)
    return m


def host_notes(m):
    """How the host that made checkpoint M differs from this one: CRIU restores where kernel and
    CPU features allow, so these are said, not refused (`criu restore` names a CPU it cannot use)."""
    here = host_facts()
    notes = [f"{key} {m.get(key)!r} there, {here[key]!r} here" for key in ("criuVersion", "kernel", "arch", "cpuModel")
             if m.get(key) and m.get(key) != here[key]]
    missing = sorted(set(str(m.get("cpuFlags") or "").split()) - set(here["cpuFlags"].split()))
    if missing and here["cpuFlags"]:
        notes.append(f"CPU flags this CPU lacks: {' '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}")
    return notes


def put_there(d):
    """Shell text that writes D's manifest, as it is here, to the same path on another host
    (0600), for a manifest written after the images were copied there."""
    with open(os.path.join(d, NAME)) as f:
        text = f.read()
    return f"(umask 077 && printf %s {shlex.quote(text)} >{shlex.quote(os.path.join(d, NAME))})"


def check_there(d):
    """Shell text that checks checkpoint D, as its manifest here says it must be, on another
    host: with CHECK_PY where it has PYTHON, else `sha256sum -c` (coreutils); no criu-lab
    needed there. It exits DIFFERS_THERE printing `NAME: FAILED` lines when a file differs.
    "true" when D has no manifest here."""
    if not os.path.isfile(os.path.join(d, NAME)):
        return "true"
    m = load(d)
    lines = "".join(f"{f['sha256']}  {name}\n" for name, f in sorted(m["files"].items()))
    q = shlex.quote
    return (f"{{ cd {q(d)} && printf %s {q(lines)} | if [ -x {PYTHON} ]; then {PYTHON} -c {q(CHECK_PY)}; "
            f"else sha256sum -c --quiet --strict -; fi 2>&1 || exit {DIFFERS_THERE}; }}")


def refused_there(output, d, host):
    """The LabError (exit 3) for a check_there that failed on HOST, naming the files, from
    the `NAME: FAILED` and `NAME: FAILED open or read` lines (sha256sum -c's) in OUTPUT."""
    names = re.findall(r"^(\S+): FAILED( open or read)?$", output, re.M)
    said = "; ".join(f"{n} {'is missing' if missing else 'changed (sha256)'}" for n, missing in names)
    e = LabError(NOT_READY, f"checkpoint {d} refused on {host}: {said or output.strip()[-300:]} "
                 "(checked there by SHA-256 against the manifest written here after the dump)")
    e.result = {"differs": [{"file": n, "problem": "missing" if missing else "sha256"} for n, missing in names]}
    return e
