"""What `criu-lab clean` would remove and keep (on a temporary LOG_DIR), and procs.py: the one
helper that starts, waits on and stops a process under test."""
import os
import sys

import pytest

from criu_lab import clean, procs
from criu_lab.outcome import BROKEN, LabError

# Above the largest pid_max Linux allows (2**22): never a running process.
NO_SUCH_PID = 2**22 + 1


def runs(found):
    return {os.path.basename(r["path"]): r.get("why") for r in found}


def test_clean_keeps_failed_runs_and_the_latest_passing_run_of_each_kind(log_dir, make_run):
    for name, passed in (("demo-20261206T050000Z", True), ("demo-20261206T050100Z", False),
                         ("demo-20261206T050200Z", True), ("training-20261206T050300Z", True)):
        make_run(f"{name}-{NO_SUCH_PID}", passed=passed, size=10_000)
    os.symlink(f"demo-20261206T050200Z-{NO_SUCH_PID}", os.path.join(log_dir, "demo-latest"))
    remove, kept = clean.plan(keep_all=False)
    assert runs(remove) == {f"demo-20261206T050000Z-{NO_SUCH_PID}": None}
    assert runs(kept) == {
        f"demo-20261206T050100Z-{NO_SUCH_PID}": "failed: kept as evidence (--all removes it)",
        f"demo-20261206T050200Z-{NO_SUCH_PID}": "the latest passing demo run (--all removes it)",
        f"training-20261206T050300Z-{NO_SUCH_PID}": "the latest passing training run (--all removes it)",
    }
    assert all(r["bytes"] >= 10_000 and r["kind"] in ("demo", "training") for r in remove + kept)
    assert {r["outcome"] for r in kept} == {"passed", "failed"}
    remove, kept = clean.plan(keep_all=True)
    assert len(remove) == 4 and kept == []


def test_clean_never_removes_a_run_in_progress(log_dir, make_run, sleeper):
    busy = make_run(f"game-20261206T050000Z-{NO_SUCH_PID}", passed=True)
    mine = make_run(f"demo-20261206T050000Z-{os.getpid()}")  # named after a process that is no criu-lab
    child = sleeper(cwd=busy)
    remove, kept = clean.plan(keep_all=True)
    assert runs(remove) == {os.path.basename(mine): None}
    assert runs(kept)[os.path.basename(busy)] == f"in progress: PID {child.pid} (sleep 600) works in it"


def test_wait_for_returns_the_first_true_value():
    values = iter([None, [], [3]])
    assert procs.wait_for("three", lambda: next(values)) == [3]


def test_wait_for_names_what_it_waited_for():
    with pytest.raises(LabError) as e:
        procs.wait_for("the counter to count to 3", lambda: False, timeout=0)
    assert e.value.code == BROKEN
    assert str(e.value) == "timed out after 0 s waiting for the counter to count to 3"


def test_alive_and_stop_only_the_process_named(sleeper):
    child = sleeper()
    assert procs.alive(child.pid) and not procs.alive(NO_SUCH_PID)
    procs.stop(child.pid, b"counter.py")  # its PID, but not the counter: left alone
    assert procs.alive(child.pid)
    procs.stop(child.pid, b"sleep")
    assert not procs.alive(child.pid)  # ended (a zombie until reaped counts as gone)
    procs.stop(NO_SUCH_PID, b"sleep")  # gone already: nothing to do


def test_start_detached_runs_python_in_its_own_session_without_a_terminal(tmp_path):
    program = tmp_path / "hello.py"
    program.write_text("import os, sys\nprint(os.getsid(0) == os.getpid(), sys.stdin.read() == '', flush=True)\n")
    log = tmp_path / "out.log"
    log.write_text("before\n")
    child = procs.start_detached([str(program)], str(log), append=True, cwd=str(tmp_path))
    assert child.wait(30) == 0
    assert child.args[0] == sys.executable  # a .py runs under this interpreter
    assert log.read_text() == "before\nTrue True\n"
    child = procs.start_detached([str(program)], str(log))
    assert child.wait(30) == 0
    assert log.read_text() == "True True\n"  # not appending: a new log
