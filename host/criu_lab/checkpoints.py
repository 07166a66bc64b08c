"""Where a training checkpoint is dumped, and how it becomes a complete checkpoint on disk.

The job stands still while CRIU writes its memory (`--leave-running` resumes it when the dump
ends), so the dump goes to RAM (a private directory on a tmpfs) when RAM has room for it, and
the copy to disk happens after the job runs on: the freeze lasts as long as a write to memory,
not to disk. A checkpoint is complete on disk once it is in its numbered directory with its
manifest, and the latest checkpoint is the highest complete one:

    checkpoints/.3.partial/   a copy under way (ignored: a crash here leaves checkpoint 2 the latest)
    checkpoints/3/            the images, fsynced, and MANIFEST.json (its files, their sizes and
                              sha256s: manifest.py), written last, before the rename to 3; the
                              directory fsynced after it

When RAM is short (MemAvailable less a margin, the tmpfs's free space, or --ram-budget-mib)
the dump goes straight to the disk's .N.partial and the same fsync and rename follow.

A migration's images follow the same rule on both of its hosts (migration_placement).
"""
import hashlib
import os
import shutil
import tempfile
import time

from . import manifest
from .common import human_bytes
from .outcome import BROKEN, NOT_READY, LabError

MIB = 2**20
# Left to everything else on the host while a checkpoint sits in RAM: a tmpfs's pages count
# against MemAvailable, and the job goes on allocating (its RSS stays while the copy exists).
MARGIN = 256 * MIB
RAM_ROOT = os.environ.get("CRIU_LAB_RAM_DIR", "/dev/shm")


def mem_available(meminfo="/proc/meminfo"):
    """MemAvailable in bytes (the kernel's estimate of what can be had without swapping)."""
    with open(meminfo) as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise LabError(NOT_READY, f"no MemAvailable in {meminfo}")


def placement(n, need, available, ram_free, disk_free, budget=None, margin=MARGIN):
    """Where checkpoint N's images (about NEED bytes, the process's memory as dump_estimate
    counts it) go: ("ram" | "disk", why). AVAILABLE: MemAvailable; RAM_FREE: free space on the
    tmpfs (None: no tmpfs); DISK_FREE: free space where checkpoints are kept; BUDGET: bytes
    allowed in RAM (None: no limit past MemAvailable). Raises (exit 3, nothing frozen) when
    the disk cannot hold it: every checkpoint ends up there."""
    if need > disk_free:
        raise LabError(NOT_READY, f"no room on disk for checkpoint {n}: about {human_bytes(need)} of images, "
                       f"{human_bytes(disk_free)} free where checkpoints are kept; nothing was frozen. Free space "
                       "with `sudo criu-lab clean`, or a smaller --size-mib")
    size = f"about {human_bytes(need)} of images"
    if budget is not None and need > budget:
        return "disk", f"{size}, more than the RAM budget of {human_bytes(budget)} (--ram-budget-mib)"
    if ram_free is None:
        return "disk", f"no tmpfs at {RAM_ROOT} to dump into"
    if need + margin > available:
        return "disk", (f"{size} plus a margin of {human_bytes(margin)}, more than the {human_bytes(available)} "
                        "of RAM available (MemAvailable)")
    if need > ram_free:
        return "disk", f"{size}, more than the {human_bytes(ram_free)} free on the tmpfs at {RAM_ROOT}"
    return "ram", (f"{size} fit in the {human_bytes(available)} of RAM available (MemAvailable, "
                   f"margin {human_bytes(margin)})")


def ram_dir():
    """A directory of root's alone (0700, mkdtemp) on the tmpfs, or None when there is none."""
    if not os.path.isdir(RAM_ROOT):
        return None
    return tempfile.mkdtemp(prefix="criu-lab-training-", dir=RAM_ROOT)


def partial(checkpoints, n):
    return os.path.join(checkpoints, f".{n}.partial")


def parent_arg(checkpoints, n):
    """--prev-images-dir for incremental checkpoint N: the previous one as persisted on disk,
    by absolute path, so the dump finds it whether it writes to RAM or to disk (CRIU reads
    the parent's pagemaps and links `parent` to this path); persist() then rewrites the link
    to ../N-1, which holds wherever the checkpoints directory is later moved. None for N=1."""
    return os.path.join(os.path.abspath(checkpoints), str(n - 1)) if n > 1 else None


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_hashed(src, dst):
    """Copies SRC to DST (or reads SRC when it is DST), fsynced; returns its sha256 (the
    manifest's), from the one read the copy needs anyway."""
    h = hashlib.sha256()
    with open(src, "rb") as f, (open(dst, "wb") if src != dst else open(os.devnull, "wb")) as out:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    fsync_path(dst)
    return h.hexdigest()


def persist(images, checkpoints, n, info):
    """Makes the dump in IMAGES checkpoint N of CHECKPOINTS, complete on disk: copied (when it
    is elsewhere) into .N.partial, every file fsynced, its `parent` link made ../N-1, the
    manifest (MANIFEST.json, manifest.py) written last (fsynced), renamed to N, the directory
    fsynced so that the rename survives a crash of the machine. INFO goes into the manifest.
    Returns the ms it took. IMAGES may be .N.partial itself (a dump straight to disk)."""
    started = time.monotonic()
    target = partial(checkpoints, n)
    if os.path.abspath(images) != os.path.abspath(target):
        shutil.rmtree(target, ignore_errors=True)  # a copy cut short earlier
        os.makedirs(target, 0o700)
    hashes = {}
    for name in sorted(os.listdir(images)):
        src, dst = os.path.join(images, name), os.path.join(target, name)
        if os.path.islink(src):
            if name != "parent":
                raise LabError(BROKEN, f"unexpected link {src} in the images")
            if os.path.lexists(dst):
                os.unlink(dst)
            os.symlink(f"../{n - 1}", dst)
            continue
        hashes[name] = copy_hashed(src, dst)
    manifest.write(target, {"checkpoint": n, **info}, hashes)
    fsync_path(target)
    os.rename(target, os.path.join(checkpoints, str(n)))
    fsync_path(checkpoints)
    return round((time.monotonic() - started) * 1000, 1)


def complete(checkpoints, n):
    """Why checkpoint N is not complete on disk (no manifest, a file missing or of another size
    than its manifest says, an incomplete parent), or None. Sizes only: cheap enough to look
    at every checkpoint; the one restored is then verified whole (latest_complete)."""
    d = os.path.join(checkpoints, str(n))
    try:
        m = manifest.load(d)
    except LabError as e:
        return str(e)
    for name, f in m["files"].items():
        try:
            actual = os.path.getsize(os.path.join(d, name))
        except OSError:
            return f"{d}/{name} is missing"
        if actual != f.get("size"):
            return f"{d}/{name} has {actual} bytes, {manifest.NAME} says {f.get('size')}"
    if os.path.islink(os.path.join(d, "parent")):
        parent = os.readlink(os.path.join(d, "parent"))
        if parent != f"../{n - 1}":
            return f"{d}/parent points at {parent}, not ../{n - 1}"
        return complete(checkpoints, n - 1)
    return None


def latest_complete(checkpoints):
    """(N, its directory) of the newest complete checkpoint on disk: the highest numbered one
    that is complete (a .N.partial never is), verified against its manifest's sha256s. Raises,
    naming what is wrong, when none is complete, or (exit 3) the file that changed in it: a
    checkpoint whose bytes changed is refused, not silently passed over."""
    problems = []
    for n in sorted((int(n) for n in os.listdir(checkpoints) if n.isdigit()), reverse=True):
        why = complete(checkpoints, n)
        if why is None:
            manifest.verify(os.path.join(checkpoints, str(n)))
            return n, os.path.join(checkpoints, str(n))
        problems.append(why)
    raise LabError(NOT_READY, f"no complete checkpoint in {checkpoints}"
                   + (": " + "; ".join(problems) if problems else ""))


def migration_placement(need_here, need_there, memory, here, there, budget=None, margin=MARGIN):
    """Where a migration's images go, one absolute path on both hosts, so on both ends RAM or
    both disk: {"here": "ram" | "disk", "there": the same, "why": in words}. NEED_HERE, NEED_THERE:
    bytes of images each end writes (a page server's pages land only there; lazy pages in
    neither); MEMORY: the process's memory, which the destination holds beside its images until
    they move to disk. HERE, THERE: {"available": MemAvailable, "ramFree": free bytes on the
    tmpfs at RAM_ROOT (None: none there)}; THERE's "shared": RAM_ROOT there is this host's own
    directory (one kernel, one filesystem: the images of both ends cannot sit apart there).
    BUDGET: bytes of images allowed in RAM on each end (--ram-budget-mib; None: no limit)."""
    def short(host, need, held, side):
        size = f"about {human_bytes(need)} of images {host}"
        if budget is not None and need > budget:
            return f"{size}, more than the RAM budget of {human_bytes(budget)} (--ram-budget-mib)"
        if side.get("ramFree") is None:
            return f"no tmpfs at {RAM_ROOT} {host}"
        if side.get("available") is None:
            return f"no MemAvailable in /proc/meminfo {host}"
        if need + held + margin > side["available"]:
            beside = f" beside the process's {human_bytes(held)}" if held else ""
            return (f"{size}{beside} plus a margin "
                    f"of {human_bytes(margin)}, more than the {human_bytes(side['available'])} of RAM available "
                    f"{host} (MemAvailable)")
        if need > side["ramFree"]:
            return f"{size}, more than the {human_bytes(side['ramFree'])} free on the tmpfs at {RAM_ROOT} {host}"
        return None

    if there.get("shared"):
        why = (f"{RAM_ROOT} is the same directory on both hosts (one kernel, one filesystem): "
               "each end needs its own copy of the images")
    else:
        why = short("here", need_here, 0, here) or short("there", need_there, memory, there)
    if why:
        return {"here": "disk", "there": "disk", "why": why}
    return {"here": "ram", "there": "ram",
            "why": (f"about {human_bytes(need_here)} of images here and {human_bytes(need_there)} there fit in RAM "
                    f"({human_bytes(here['available'])} and {human_bytes(there['available'])} available, "
                    f"margin {human_bytes(margin)})")}
