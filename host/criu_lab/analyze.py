"""criu-lab analyze DIR: explain a checkpoint directory, file by file."""
import functools
import os
import re

from .common import CRIT, crit_show, human_bytes
from .outcome import BROKEN, NOT_READY, OK, USAGE, LabError

# Each crit run costs a Python start-up; stale_files and describe read some images twice.
show = functools.lru_cache(maxsize=None)(crit_show)


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
    # Not CRIU's: what the lab writes after each dump (manifest.py).
    "MANIFEST": "the lab's manifest: what made this checkpoint, each file's size and sha256 "
                "(sudo criu-lab checkpoint verify DIR)",
}

# Where each architecture keeps its registers in core-*.img: CRIU's images/core.proto gives
# x86 `thread_info` and every other architecture its own `ti_<arch>` (core-<arch>.proto);
# (field of core_entry, instruction pointer, stack pointer), a register inside a repeated
# field as (field, index): the ABI's stack pointer register (ppc64 r1, s390 r15, loongarch r3).
REGISTERS = {
    "X86_64": ("thread_info", "ip", "sp"),
    "AARCH64": ("ti_aarch64", "pc", "sp"),
    "ARM": ("ti_arm", "pc", "sp"),
    "PPC64": ("ti_ppc64", "nip", ("gpr", 1)),
    "S390": ("ti_s390", "psw_addr", ("gprs", 15)),
    "MIPS": ("ti_mips", "cp0_epc", "r29"),
    "LOONGARCH64": ("ti_loongarch64", "pc", ("regs", 3)),
    "RISCV64": ("ti_riscv64", "pc", "sp"),
}

# Images named after a task (core-TID, mm-PID...): one whose number is no task of pstree.img
# is left over from another dump into the same directory.
PER_TASK = ("core", "mm", "pagemap", "fs", "ids")
SHOWN_PATHS = 5


def registers(core):
    """(instruction pointer, stack pointer) of a core_entry, as hex strings; None for an
    architecture this table does not know (a newer CRIU's), so the rest is still explained."""
    field, ip, sp = REGISTERS.get(core["mtype"], (None, None, None))
    if field not in core:
        return None
    regs = core[field]["gpregs"]

    def value(reg):
        v = regs[reg[0]][reg[1]] if isinstance(reg, tuple) else regs[reg]
        return v if isinstance(v, str) else hex(v)
    return value(ip), value(sp)


def describe(path, name):
    """(what the file holds, one line of what crit decodes from it, extra: paths of files.img)"""
    kind = re.split(r"[-.]", name)[0]
    holds = HOLDS.get(kind, "a CRIU image (see https://criu.org/Images)" if name.endswith(".img") else "not an image")
    if kind == "pages":
        return holds, f"{os.path.getsize(path) // 4096} pages", []
    if kind not in ("pstree", "core", "mm", "pagemap", "files", "fdinfo"):
        return holds, "", []
    e = show(path)
    paths = []
    if kind == "pstree":
        got = "; ".join(f"PID {p['pid']} (parent {p['ppid']}, session {p['sid']}, {len(p['threads'])} thread(s))" for p in e)
    elif kind == "core":
        regs = registers(e[0])
        got = f"{e[0]['tc']['comm']} on {e[0]['mtype']}, " + (
            f"instruction pointer {regs[0]}, stack pointer {regs[1]}" if regs else "registers not decoded here")
    elif kind == "mm":
        got = f"{len(e[0]['vmas'])} memory mappings"
    elif kind == "pagemap":
        got = f"{len(e) - 1} address ranges, {sum(x.get('nr_pages', 0) for x in e[1:])} pages saved"
    elif kind == "files":
        kinds = {}
        for x in e:
            kinds[x.get("type", "?")] = kinds.get(x.get("type", "?"), 0) + 1
        paths = [x["reg"]["name"] for x in e if "reg" in x]
        got = f"{len(e)} open files: " + ", ".join(f"{n} {t}" for t, n in sorted(kinds.items()))
    else:
        got = "fds " + ", ".join(str(x["fd"]) for x in e)
    return holds, got, paths


def stale_files(d, names, tree):
    """Names of images that belong to no task of pstree.img: per-task images of other PIDs,
    and the pages-N/fdinfo-N those tasks' pagemap/ids do not point to."""
    tasks = {t for p in tree for t in p["threads"]} | {p["pid"] for p in tree}
    pids = {p["pid"] for p in tree}
    stale, numbered = set(), {}
    for name in names:
        m = re.fullmatch(r"([a-z]+)-(\d+)\.img", name)
        if m:
            numbered[name] = (m.group(1), int(m.group(2)))
    for name, (kind, n) in numbered.items():
        if kind in PER_TASK and n not in (tasks if kind == "core" else pids):
            stale.add(name)
    pages = {show(os.path.join(d, f"pagemap-{p}.img"))[0].get("pages_id") for p in pids
             if f"pagemap-{p}.img" in numbered}
    fdtables = {show(os.path.join(d, f"ids-{p}.img"))[0].get("files_id") for p in pids
                if f"ids-{p}.img" in numbered}
    for name, (kind, n) in numbered.items():
        if (kind == "pages" and n not in pages) or (kind == "fdinfo" and n not in fdtables):
            stale.add(name)
    return stale


def cmd_analyze(args):
    d = args.dir
    if not os.path.isdir(d):
        return USAGE, {"ok": False, "error": f"{d}: no such directory"}, f"criu-lab analyze: {d}: no such directory"
    if not os.path.isfile(os.path.join(d, "pstree.img")):
        return USAGE, {"ok": False, "error": f"{d}: no pstree.img, not a checkpoint directory (criu dump -D DIR)"}, \
            f"criu-lab analyze: {d} is not a checkpoint directory (no pstree.img; make one with criu dump -D DIR)"
    if not os.access(CRIT, os.X_OK):
        return NOT_READY, {"ok": False, "error": f"crit is not installed at {CRIT}"}, f"crit is not installed at {CRIT}"
    try:
        names = sorted(n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n)))
        tree = show(os.path.join(d, "pstree.img"))
        stale = stale_files(d, names, tree)
        files = []
        for name in names:
            path = os.path.join(d, name)
            holds, details, paths = describe(path, name)
            f = {"name": name, "bytes": os.path.getsize(path), "holds": holds, "details": details,
                 "stale": name in stale}
            if paths:
                f["paths"] = paths
            files.append(f)
        s = show(os.path.join(d, "stats-dump"))[0]["dump"] if "stats-dump" in names else {}
    except (LabError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        return BROKEN, {"ok": False, "error": str(e)}, f"criu-lab analyze: {e}"
    pids = [p["pid"] for p in tree]
    r = {"ok": True, "imagesDir": os.path.abspath(d), "pids": pids, "totalBytes": sum(f["bytes"] for f in files),
         "files": files, "stale": sorted(stale), "stats": s or None}
    return OK, r, human(r)


def human(r):
    files = r["files"]
    lines = [f"{r['imagesDir']}: {len(files)} files, {human_bytes(r['totalBytes'])}, "
             f"process tree of PID {', '.join(map(str, r['pids']))}"]
    for f in files:
        mark = "  (STALE: no process of pstree.img)" if f["stale"] else ""
        lines.append(f"{f['name']:<22}{human_bytes(f['bytes']):>10}  {f['holds']}{mark}")
        if f["details"]:
            lines.append(f"{'':<34}{f['details']}")
        paths = f.get("paths", [])
        for p in paths[:SHOWN_PATHS]:
            lines.append(f"{'':<36}{p}")
        if len(paths) > SHOWN_PATHS:
            lines.append(f"{'':<36}... and {len(paths) - SHOWN_PATHS} more (crit show {f['name']})")
    if r["stale"]:
        lines.append(f"{len(r['stale'])} file(s) belong to no process of pstree.img: left over from an earlier "
                     "dump into this directory. Dump into an empty directory to keep checkpoints apart.")
    s = r["stats"]
    if s:
        lines.append(f"The process was frozen for {s['frozen_time']} us; {s['pages_written']} of "
                     f"{s['pages_scanned']} scanned memory pages were written.")
    lines.append("More: crit show FILE.img, crit x DIR ps|fds|mems")
    return "\n".join(lines)
