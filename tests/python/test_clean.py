"""criu-lab clean's stale migration images in RAM (clean.ram_why_kept, clean.ram_plan): a
migration's RAM directory goes once its migration is over, and stays while one may run."""
import calendar
import os
import subprocess
import time

import pytest

from criu_lab import clean

# 2026-01-01T00:00:00Z, and two hours later: older than the grace.
T0 = calendar.timegm(time.strptime("20260101T000000Z", "%Y%m%dT%H%M%SZ"))
LATER = T0 + 2 * 3600
# Above any pid_max: no process has it.
NO_PID = 999999991


@pytest.mark.parametrize("busy, lab_runs, now, why", [
    (None, False, LATER, None),
    ("PID 7 (criu page-server) works in it", False, LATER, "in progress: PID 7 (criu page-server) works in it"),
    (None, True, LATER, f"in progress: its criu-lab (PID {NO_PID}) still runs"),
    (None, False, T0 + 600, "started 10 min ago: may be a migration into this host between its steps "
                            "(removed once 60 min old)"),
    # A clock behind the name's (the source's time) is no negative age.
    (None, False, T0 - 5, "started 0 min ago: may be a migration into this host between its steps "
                          "(removed once 60 min old)"),
])
def test_a_ram_directory_stays_while_its_migration_may_run(busy, lab_runs, now, why):
    assert clean.ram_why_kept("20260101T000000Z", NO_PID, now, busy, lambda pid: lab_runs) == why


def exec_done(pid, name, timeout_s=10):
    """Waits until PID runs NAME: a child started by subprocess has the parent's (or an empty)
    command line until its exec."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().split(b"\0")[0] == name:
                return
        time.sleep(0.01)
    raise AssertionError(f"PID {pid} never ran {name!r}")


def test_ram_plan_removes_only_over_migrations_and_leaves_other_names(tmp_path):
    root = tmp_path / "shm"
    stale = root / f"criu-lab-migrate-20260101T000000Z-{NO_PID}"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "pages-1.img").write_bytes(b"\1" * 8192)
    young = root / f"criu-lab-migrate-20260101T015900Z-{NO_PID}"
    young.mkdir()
    worked_in = root / f"criu-lab-migrate-20260101T000000Z-{NO_PID + 1}"
    worked_in.mkdir()
    # Not a migration's: another program's, training's, a file, a link.
    for other in ("criu-lab-training-x", "criu-lab-migrate-soon", "pulse-shm-1"):
        (root / other).mkdir()
    (root / f"criu-lab-migrate-20260101T000000Z-{NO_PID + 2}").write_text("a file")
    os.symlink(stale, root / f"criu-lab-migrate-20260101T000000Z-{NO_PID + 3}")
    sleeper = subprocess.Popen(["sleep", "60"], cwd=worked_in)
    try:
        exec_done(sleeper.pid, b"sleep")  # its name is read from /proc: after the exec, not before
        remove, kept = clean.ram_plan(str(root), now=LATER)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert [r["path"] for r in remove] == [str(stale)]
    assert remove[0]["bytes"] >= 8192
    why = {r["path"]: r["why"] for r in kept}
    assert set(why) == {str(young), str(worked_in)}
    assert why[str(young)].startswith("started 1 min ago: may be a migration into this host")
    assert why[str(worked_in)].startswith(f"in progress: PID {sleeper.pid} (sleep 60) works in it")
    assert clean.ram_plan(str(tmp_path / "none"), now=LATER) == ([], [])
