"""What the learner did by hand, as it shows on disk: checkpoint directories in their home that
CRIU restored from (its stats-restore), and which of the lab's programs each one holds (its
command line, read from the images' memory). `criu-lab progress` records these."""
import os
import subprocess

from .common import crit_show
from .outcome import LabError

# A home is searched this deep (checkpoint_dir, ckpt/2: two levels) and this wide, so a
# large home costs a bounded walk; hidden directories are never searched.
MAX_DEPTH = 3
MAX_DIRS = 2000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# A parent chain of incremental dumps is followed this far (each `parent` link).
MAX_PARENTS = 16


def images_dirs(home):
    """Directories under HOME that hold a checkpoint (inventory.img and pstree.img)."""
    found, seen = [], 0
    stack = [(home, 0)]
    while stack and seen < MAX_DIRS:
        path, depth = stack.pop()
        seen += 1
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        names = {e.name for e in entries}
        if {"inventory.img", "pstree.img"} <= names:
            found.append(path)
        if depth < MAX_DEPTH:
            stack += [(e.path, depth + 1) for e in entries
                      if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    return sorted(found)


def hexint(value):
    """crit prints addresses as '0x7ffc...' strings and counts as numbers."""
    return int(value, 0) if isinstance(value, str) else int(value)


def page_offset(pagemap, addr):
    """Where ADDR's byte is, from a pagemap's entries as `crit show` prints them (the first
    names the pages file): ("here", offset in pages-ID.img), ("parent", None) for a page an
    incremental dump left in its parent, or None when the dump holds no such page. Pages in
    the file come in the pagemap's order; PE_LAZY pages are in it too."""
    offset = 0
    for entry in pagemap[1:]:
        start, size = hexint(entry["vaddr"]), entry["nr_pages"] * PAGE_SIZE
        flags = entry.get("flags", "")
        in_parent = "PE_PARENT" in flags or entry.get("in_parent") is True
        present = not in_parent and ("PE_PRESENT" in flags or "flags" not in entry)
        if start <= addr < start + size:
            return ("parent", None) if in_parent else (("here", offset + addr - start) if present else None)
        if present:
            offset += size
    return None


def command_line(images):
    """The dumped root process's arguments (a list of str), read from IMAGES' memory, or None
    when they cannot be read (crit missing or failing, pages not there)."""
    try:
        pid = crit_show(os.path.join(images, "pstree.img"))[0]["pid"]
        mm = crit_show(os.path.join(images, f"mm-{pid}.img"))[0]
        start, end = hexint(mm["mm_arg_start"]), hexint(mm["mm_arg_end"])
        for _ in range(MAX_PARENTS):
            pagemap = crit_show(os.path.join(images, f"pagemap-{pid}.img"))
            where = page_offset(pagemap, start)
            if where is None:
                return None
            if where[0] == "here":
                with open(os.path.join(images, f"pages-{pagemap[0]['pages_id']}.img"), "rb") as f:
                    f.seek(where[1])
                    raw = f.read(min(end - start, 4096))
                return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
            images = os.path.join(images, "parent")
    except (LabError, OSError, ValueError, KeyError, IndexError, TypeError, subprocess.SubprocessError):
        return None
    return None


def program_of(argv, programs):
    """The lab program (one of PROGRAMS, e.g. counter.py) ARGV runs: the script an interpreter
    runs (`python3 -u ./counter.py`: a shebang's exec leaves that), or ARGV[0] itself; None
    for anything else (`python3 -c ...` runs no script)."""
    if not argv:
        return None
    script = None
    if os.path.basename(argv[0]) in programs:
        script = argv[0]
    for arg in argv[1:]:
        if script or arg in ("-c", "-m"):
            break
        if not arg.startswith("-"):
            script = arg
    name = os.path.basename(script or "")
    return name if name in programs else None


def restores(homes, programs):
    """[(program, images dir, when restored)] for every checkpoint under HOMES that CRIU
    restored (it writes stats-restore there once a restore succeeded: criu/cr-restore.c
    restore_root_task) and that holds one of PROGRAMS."""
    found = []
    for home in homes:
        for images in images_dirs(home):
            stats = os.path.join(images, "stats-restore")
            if not os.path.isfile(stats):
                continue
            program = program_of(command_line(images), programs)
            if program:
                found.append((program, images, os.path.getmtime(stats)))
    return found
