"""A migration's images in RAM on both ends while the process is down (docs/design.md "Where a
migration's images live"): the pair check picks RAM or disk (checkpoints.migration_placement),
use_ram points the Migration's images there, make_dirs makes its directories on both ends, and
to_disk moves them into the run's directory on disk once the process runs again (or was
restored back here), so that nothing of the process's memory stays in RAM after a run."""
import argparse
import os
import shlex
import subprocess
import time

from . import checkpoints as ckpt
from .common import LOG_DIR, private_dir, run, run_root


def add_ram_flag(p):
    p.add_argument("--ram-budget-mib", type=mib_or_zero, metavar="MIB",
                   help="images a migration may keep in RAM on each end while the process is down (default: "
                        f"what MemAvailable leaves, less {ckpt.MARGIN // ckpt.MIB} MiB, and what the tmpfs at "
                        f"{ckpt.RAM_ROOT} holds, on both ends; 0: on disk). They move to the run's directory on "
                        "disk once it runs again")


def mib_or_zero(value):
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number of MiB")
    return int(value)


def ram_budget(a):
    """--ram-budget-mib in bytes, or None."""
    return None if a.ram_budget_mib is None else a.ram_budget_mib * ckpt.MIB


def use_ram(m):
    """The images (and pre-copy's rounds) go to RAM_ROOT/criu-lab-migrate-RUN on both ends,
    RUN the run's TIME-PID, laid out as in the run's directory (relative parent links hold)."""
    run_id = os.path.basename(run_root(m.dir)).split("-", 1)[1]
    m.ram = os.path.join(ckpt.RAM_ROOT, f"criu-lab-migrate-{run_id}")
    m.images = os.path.join(m.ram, "images")


def make_dirs(m):
    """The run's directory and the images' (in RAM or in it), root's alone (0700), both ends."""
    q = shlex.quote
    m.made = True
    private_dir(m.dir)
    if m.ram:
        os.makedirs(m.ram, 0o700)
        os.chmod(m.ram, 0o700)
        os.makedirs(m.images, 0o700)
    else:
        os.makedirs(m.images, 0o700)
    # There too (the Remote's umask makes what it creates private): an older lab's LOG_DIR is 0755.
    m.remote.must(f"mkdir -p {q(m.images)} {q(m.dir)} && chmod 700 {q(LOG_DIR)}"
                  + (f" {q(m.ram)}" if m.ram else ""), "mkdir")


def to_disk(m, keep):
    """Off the critical path (the process runs there, or back here): the RAM directory's
    images move into the run's directory on disk, on both ends at once, and the RAM directory
    goes. KEEP (a failure's evidence): a copy that fails leaves them in RAM, named; otherwise
    they go anyway (the process runs: its images would hold RAM for nothing). Returns where
    the images are now, here and there, and what went wrong, in words."""
    disk = os.path.join(m.dir, "images")
    if not m.ram or not m.made:
        return m.images, m.images, []
    q = shlex.quote
    copy = f"mkdir -p {q(m.dir)} && cp -a {q(m.ram)}/. {q(m.dir)}/"
    script = f"{copy} && rm -rf {q(m.ram)}" if keep else f"{copy}; ok=$?; rm -rf {q(m.ram)}; exit $ok"
    started = time.monotonic()
    there = subprocess.Popen(m.remote.argv(script), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    here = run(["sh", "-c", script], 1800)
    try:
        err_there = there.communicate(timeout=1800)[1]
    except subprocess.TimeoutExpired:
        there.kill()
        err_there = "timed out"
    m.r["toDiskMs"] = round((time.monotonic() - started) * 1000, 1)
    ram, m.ram = m.ram, None
    where, problems = [], []
    for end, code, err in (("here", here.returncode, here.stderr), (m.remote.host, there.returncode, err_there)):
        if code == 0:
            where.append(disk)
            continue
        why = err.strip()[-200:] or f"exit {code}"
        where.append(m.images if keep else None)
        problems.append(f"moving the images from RAM ({ram}) to {disk} failed on {end} ({why}): "
                        + ("left in RAM" if keep else "not kept"))
    m.images = disk
    m.r["imagesDir"] = where[0] or disk  # where they belong; imagesNotOnDisk says they were not kept
    if problems:
        m.r["imagesNotOnDisk"] = problems
    return where[0], where[1], problems
