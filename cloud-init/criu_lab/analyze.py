"""criu-lab analyze DIR: explain a checkpoint directory, file by file."""
import os
import re

from .common import BROKEN, CRIT, NOT_READY, OK, USAGE, LabError, crit_show


def register(sub):
    p = sub.add_parser("analyze", help="explain a checkpoint directory, file by file")
    p.add_argument("dir")
    p.set_defaults(fn=cmd_analyze)


# What each image holds, for a learner (https://criu.org/Images).
HOLDS = {
    "inventory": "header of the image set: image format version, root task",
    "pstree": "process tree: PID, parent, process group, session, threads of each process",
    "core": "a task's CPU state: registers, signal mask and handlers, task state, command name",
    "mm": "address space: memory mappings (VMAs) and their protections, heap and stack bounds",
    "pagemap": "index of saved memory: which virtual address ranges have pages in pages-*.img",
    "pages": "raw memory contents (4 KiB pages), written back at restore",
    "files": "every open file: regular files (path, position, flags), pipes, sockets, ttys",
    "fdinfo": "a file descriptor table: which fd number refers to which entry of files.img",
    "fs": "current working directory and root directory",
    "ids": "which namespaces and shared tables (files, fs, signal handlers) a task uses",
    "stats": "statistics of the dump or restore: times (us) and pages",
    "tty": "terminal state: the controlling terminal of a --shell-job dump",
    "seccomp": "seccomp filters",
    "timens": "time namespace offsets, so monotonic clocks stay consistent",
    "utsns": "UTS namespace: hostname and domain name",
    "mountpoints": "mount namespace: the mount tree",
    "pipes": "data waiting in pipes",
}


# (what the file holds, one line of what crit decodes from it)
def describe(path, name):
    kind = re.split(r"[-.]", name)[0]
    holds = HOLDS.get(kind, "a CRIU image (see https://criu.org/Images)" if name.endswith(".img") else "not an image")
    if kind == "pages":
        return holds, f"{os.path.getsize(path) // 4096} pages"
    if kind not in ("pstree", "core", "mm", "pagemap", "files", "fdinfo"):
        return holds, ""
    e = crit_show(path)
    if kind == "pstree":
        got = "; ".join(f"PID {p['pid']} (parent {p['ppid']}, session {p['sid']}, {len(p['threads'])} thread(s))" for p in e)
    elif kind == "core":
        regs = e[0]["thread_info"]["gpregs"]
        got = f"{e[0]['tc']['comm']} on {e[0]['mtype']}, instruction pointer {regs.get('ip') or regs.get('pc')}"
    elif kind == "mm":
        got = f"{len(e[0]['vmas'])} memory mappings"
    elif kind == "pagemap":
        got = f"{len(e) - 1} address ranges, {sum(x.get('nr_pages', 0) for x in e[1:])} pages saved"
    elif kind == "files":
        paths = [x["reg"]["name"] for x in e if "reg" in x]
        got = f"{len(e)} files" + (", e.g. " + ", ".join(paths[:3]) if paths else "")
    else:
        got = "fds " + ", ".join(str(x["fd"]) for x in e)
    return holds, got


def cmd_analyze(args):
    d = args.dir
    if not os.path.isfile(os.path.join(d, "pstree.img")):
        return USAGE, {"ok": False, "error": f"{d}: no pstree.img, not a checkpoint directory (criu dump -D DIR)"}, \
            f"criu-lab analyze: {d} is not a checkpoint directory (no pstree.img; make one with criu dump -D DIR)"
    if not os.access(CRIT, os.X_OK):
        return NOT_READY, {"ok": False, "error": f"crit is not installed at {CRIT}"}, f"crit is not installed at {CRIT}"
    try:
        files = []
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isfile(path):
                holds, details = describe(path, name)
                files.append({"name": name, "bytes": os.path.getsize(path), "holds": holds, "details": details})
        s = crit_show(os.path.join(d, "stats-dump"))[0]["dump"] if os.path.isfile(os.path.join(d, "stats-dump")) else {}
    except (LabError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        return BROKEN, {"ok": False, "error": str(e)}, f"criu-lab analyze: {e}"
    r = {"ok": True, "imagesDir": os.path.abspath(d), "totalBytes": sum(f["bytes"] for f in files),
         "files": files, "stats": s or None}
    lines = [f"{r['imagesDir']}: {len(files)} files, {r['totalBytes']} bytes"]
    for f in files:
        lines += [f"{f['name']:<22}{f['bytes']:>10} B  {f['holds']}"] + ([f"{'':<36}{f['details']}"] if f["details"] else [])
    if s:
        lines.append(f"The process was frozen for {s['frozen_time']} us; {s['pages_written']} of "
                     f"{s['pages_scanned']} scanned memory pages were written.")
    lines.append("More: crit show FILE.img, crit x DIR ps|fds|mems")
    return OK, r, "\n".join(lines)
