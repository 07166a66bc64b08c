"""criu-lab checkpoint dump|verify|restore|export|import: a checkpoint you can trust and move.

Every checkpoint the lab writes has a manifest (manifest.py); these commands make one
(`dump`), check one against it (`verify`), restore one only when it matches (`restore`), and
carry one as a single archive (`export`, `import`: archive.py). A checkpoint holds the
process's memory, its secrets too: what they write is root's alone (0600 files, 0700 dirs).
"""
import os

from . import archive, manifest
from .common import base, criu, human_bytes, keep_latest_passing, new_run, private_dir, ready, whole
from .outcome import OK, USAGE, LabError, attempt, failed


def register(sub):
    p = sub.add_parser("checkpoint", help="dump, verify, restore, export or import a checkpoint (with its manifest)")
    act = p.add_subparsers(dest="action", required=True)
    d = act.add_parser("dump", help="checkpoint a process into DIR (it ends; its manifest written after the dump)")
    d.add_argument("--pid", type=whole, required=True, help="the process (and its children) to checkpoint")
    d.add_argument("dir", metavar="DIR", help="a new directory for the images")
    v = act.add_parser("verify", help="check DIR's files against its manifest (sizes and sha256)")
    v.add_argument("dir", metavar="DIR")
    r = act.add_parser("restore", help="restore DIR, detached, once it matches its manifest")
    r.add_argument("dir", metavar="DIR")
    e = act.add_parser("export", help="pack DIR into one archive (zstd where installed, else gzip)")
    e.add_argument("dir", metavar="DIR")
    e.add_argument("file", metavar="FILE", help="the archive: .tar.zst, .tar.gz, or no ending (one is added)")
    i = act.add_parser("import", help="unpack an archive into DIR and verify it")
    i.add_argument("file", metavar="FILE")
    i.add_argument("dir", metavar="DIR", help="a new (or empty) directory")
    for leaf in act.choices.values():
        leaf.add_argument("--json", action="store_true", help="print one JSON object")
        leaf.set_defaults(fn=cmd_checkpoint)


def check_args(action, d, file=None):
    """Raises LabError(USAGE) naming the argument and what is allowed, before anything is
    written: DIR an existing checkpoint (verify, restore, export) or new/empty (dump, import);
    FILE an archive that exists (import) or not yet (export, after archive_name)."""
    if action in ("verify", "restore", "export") and not os.path.isdir(d):
        raise LabError(USAGE, f"DIR '{d}': no such directory")
    if action in ("dump", "import"):
        if os.path.exists(d) and (not os.path.isdir(d) or os.listdir(d)):
            raise LabError(USAGE, f"DIR '{d}' exists and is not empty: {action} writes into a new directory")
        if not os.path.isdir(os.path.dirname(os.path.abspath(d))):
            raise LabError(USAGE, f"DIR '{d}': its parent directory does not exist")
    if action == "import" and not os.path.isfile(file):
        raise LabError(USAGE, f"FILE '{file}': no such file")
    if action == "export":
        if os.path.lexists(file):
            raise LabError(USAGE, f"FILE '{file}' exists: export writes a new archive")
        if not os.path.isdir(os.path.dirname(os.path.abspath(file))):
            raise LabError(USAGE, f"FILE '{file}': its directory does not exist")


def summary(m):
    files = m["files"]
    return {"files": len(files), "imageBytes": sum(f["size"] for f in files.values()), "createdAt": m.get("createdAt"),
            "madeWith": {k: m.get(k) for k in ("criuVersion", "kernel", "arch", "cpuModel", "labVersion")},
            "notes": manifest.host_notes(m)}


def cmd_checkpoint(a):
    r = {**base(), "action": a.action, "dir": os.path.abspath(a.dir)}
    run_dir = None
    with attempt(r) as outcome:
        if os.geteuid() != 0:
            raise LabError(USAGE, f"checkpoint {a.action} needs root (a checkpoint holds a process's memory): "
                           f"sudo criu-lab checkpoint {a.action}")
        d = r["dir"]
        if a.action == "export":
            path, r["codec"] = archive.archive_name(a.file, archive.have_zstd())
            r["file"] = os.path.abspath(path)
            check_args("export", d, path)
            m, r["archiveBytes"] = archive.pack(d, r["file"], r["codec"])
            r.update(summary(m), ok=True)
            human = (f"{d} (verified: {r['files']} files, {human_bytes(r['imageBytes'])}) packed into {r['file']}: "
                     f"{human_bytes(r['archiveBytes'])}, tar compressed with {r['codec']}"
                     + ("" if r["codec"] == "zstd" else " (zstd is not installed here)"))
        elif a.action == "import":
            check_args("import", d, a.file)
            r["file"] = os.path.abspath(a.file)
            r["codec"] = archive.codec_of(r["file"])
            r.update(summary(archive.unpack(r["file"], d)), ok=True)
            human = f"{r['file']} ({r['codec']}) unpacked into {d} and verified: {r['files']} files match its manifest"
        elif a.action == "verify":
            check_args("verify", d)
            r.update(summary(manifest.verify(d)), ok=True)
            human = (f"{d} matches its manifest: {r['files']} files, {human_bytes(r['imageBytes'])}, sha256 each; "
                     f"made {r['createdAt']} with CRIU {r['madeWith']['criuVersion']} on {r['madeWith']['kernel']}")
        elif a.action == "dump":
            check_args("dump", d)
            ready("checkpoint dump")
            if a.pid in (0, 1, os.getpid()) or not os.path.isdir(f"/proc/{a.pid}"):
                raise LabError(USAGE, f"--pid {a.pid}: no such running process")
            run_dir = new_run("checkpoint")
            private_dir(run_dir)
            os.makedirs(d, 0o700, exist_ok=True)
            os.chmod(d, 0o700)
            r["pid"], r["log"] = a.pid, os.path.join(run_dir, "dump.log")
            r["dumpMs"] = criu(["dump", "-t", str(a.pid), "-D", d], r["log"])
            r.update(summary(manifest.write(d, {"pid": a.pid})), ok=True)
            human = (f"PID {a.pid} dumped into {d} in {r['dumpMs']} ms (it has ended): {r['files']} files, "
                     f"{human_bytes(r['imageBytes'])}, and {manifest.NAME}")
        else:
            check_args("restore", d)
            ready("checkpoint restore")
            r.update(summary(manifest.verify(d)))  # refused here, before anything runs
            run_dir = new_run("restore")
            private_dir(run_dir)
            pidfile, r["log"] = os.path.join(run_dir, "restored.pid"), os.path.join(run_dir, "restore.log")
            r["restoreMs"] = criu(["restore", "-d", "-D", d, "--pidfile", pidfile], r["log"])
            with open(pidfile) as f:
                r["restoredPid"] = int(f.read())
            r["ok"] = True
            human = f"{d} verified and restored as PID {r['restoredPid']} in {r['restoreMs']} ms"
        if run_dir:
            keep_latest_passing(run_dir)  # its logs: the latest passing one of its kind is kept
    if outcome.failed:
        return outcome.code, r, failed(f"criu-lab checkpoint {a.action}", r, run_dir, "logs")
    notes = r.get("notes") or []
    return OK, r, human + "".join(f"\n  note: made on another host: {n}" for n in notes)

