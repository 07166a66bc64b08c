"""outcome.py: the one wrapper every command ends through (its exit codes, its result and the
FAILED line), and the parts of common.py the commands share with it: running CRIU (the tail
of its log on a failure) and reading the counter's output."""
import argparse
import subprocess

import pytest

from criu_lab import check, common, demo, migrate
from criu_lab.outcome import BROKEN, NOT_READY, OK, USAGE, LabError, attempt, failed


def test_a_block_that_ends_well_leaves_the_result_alone_and_exits_0():
    r, cleaned = {"ok": True}, []
    with attempt(r, cleanup=lambda: cleaned.append("stopped")) as outcome:
        r["pid"] = 12
    assert (outcome.code, outcome.failed, r, cleaned) == (OK, False, {"ok": True, "pid": 12}, ["stopped"])


@pytest.mark.parametrize("error, code, text", [
    (LabError(USAGE, "--port 0: expected 1-65535"), USAGE, "--port 0: expected 1-65535"),
    (LabError(NOT_READY, "CRIU is not installed at /usr/local/sbin/criu"), NOT_READY,
     "CRIU is not installed at /usr/local/sbin/criu"),
    (LabError(BROKEN, "criu dump exited 1"), BROKEN, "criu dump exited 1"),
    (FileNotFoundError(2, "No such file or directory"), BROKEN, "FileNotFoundError: [Errno 2] No such file or directory"),
    (subprocess.TimeoutExpired(["criu"], 120), BROKEN,
     "TimeoutExpired: Command '['criu']' timed out after 120 seconds"),
    (KeyError("reg"), BROKEN, "KeyError: 'reg'"),
    (StopIteration(), BROKEN, "StopIteration: "),
])
def test_a_failure_gives_its_exit_code_and_its_text_and_the_cleanup_still_runs(error, code, text):
    r, cleaned = {"ok": False, "pid": 12}, []
    with attempt(r, cleanup=lambda: cleaned.append(r.get("error"))) as outcome:
        raise error
    assert (outcome.code, outcome.failed) == (code, True)
    assert r == {"ok": False, "pid": 12, "error": text}
    assert cleaned == [text]  # after the failure was recorded


def test_a_failure_carries_what_the_failing_step_knew():
    r = {"ok": False, "modeAsked": "auto", "mode": None}
    e = LabError(BROKEN, "criu restore on b exited 1")
    e.result = {"ok": True, "mode": "page-server", "imagesDir": "/var/log/criu-lab/migrate-x/images"}
    with attempt(r) as outcome:
        raise e
    assert outcome.code == BROKEN
    assert r == {"ok": False, "modeAsked": "auto", "mode": "page-server",
                 "imagesDir": "/var/log/criu-lab/migrate-x/images", "error": "criu restore on b exited 1"}


def test_what_no_command_expects_is_no_result_but_a_bug_and_goes_on_up():
    cleaned = []
    with pytest.raises(TypeError):
        with attempt({}, cleanup=lambda: cleaned.append(True)):
            raise TypeError("unsupported operand")
    assert cleaned == [True]


def test_the_failed_line_says_where_the_evidence_is_kept_when_there_is_some(tmp_path):
    r = {"error": "criu dump exited 1; end of x/dump.log:\nError (criu/cr-dump.c:1): oops"}
    assert failed("criu-lab demo", r, str(tmp_path)) == (
        f"criu-lab demo FAILED: {r['error']}\nlogs and images kept in {tmp_path}")
    assert failed("training scenario", r, str(tmp_path), "logs and checkpoints").endswith(
        f"\nlogs and checkpoints kept in {tmp_path}")
    # Refused before the run's directory was made: nothing to point at.
    assert failed("criu-lab demo", r, str(tmp_path / "never-made")) == f"criu-lab demo FAILED: {r['error']}"
    assert failed("criu-lab migrate", {"error": "--pid 0: no such running process"}) == (
        "criu-lab migrate FAILED: --pid 0: no such running process")


def test_commands_end_through_it_with_the_code_of_what_stopped_them(monkeypatch):
    def not_installed(what):
        raise LabError(NOT_READY, f"CRIU is not installed at /nowhere/criu (for {what})")
    monkeypatch.setattr(check, "ready", not_installed)
    monkeypatch.setattr(check, "base", lambda: {"ok": False, "criuVersion": "", "kernel": "6.1.0"})
    code, r, text = check.cmd_check(argparse.Namespace(json=False))
    assert code == NOT_READY
    assert r == {"ok": False, "criuVersion": "", "kernel": "6.1.0",
                 "error": "CRIU is not installed at /nowhere/criu (for check)"}
    assert text == "criu-lab check: CRIU is not installed at /nowhere/criu (for check)"
    monkeypatch.setattr(migrate, "base", lambda: {"ok": False, "criuVersion": "4.2", "kernel": "6.1.0"})
    a = argparse.Namespace(to="ubuntu@h;reboot", port=22, identity=None, known_hosts=None, pid=4242, mode="auto",
                           json=True)
    code, r, text = migrate.cmd_migrate(a)
    assert code == USAGE
    assert r == {"ok": False, "criuVersion": "4.2", "kernel": "6.1.0", "modeAsked": "auto", "mode": None, "pid": 4242,
                 "error": "--to 'ubuntu@h;reboot': expected USER@HOST (e.g. ubuntu@10.0.1.12)"}
    assert text == "criu-lab migrate FAILED: --to 'ubuntu@h;reboot': expected USER@HOST (e.g. ubuntu@10.0.1.12)"


def test_a_demo_refused_before_it_starts_keeps_nothing_and_says_so(log_dir, monkeypatch):
    def not_root(what):
        raise LabError(USAGE, f"{what} needs root: sudo criu-lab {what}")
    monkeypatch.setattr(demo, "ready", not_root)
    code, r, text = demo.cmd_demo(argparse.Namespace(json=True, interval=0.5))
    assert code == USAGE
    assert r["ok"] is False and r["error"] == "demo needs root: sudo criu-lab demo"
    assert text == "criu-lab demo FAILED: demo needs root: sudo criu-lab demo"


def test_criu_names_its_log_and_its_tail_when_it_fails(tmp_path, monkeypatch):
    log = tmp_path / "restore.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    monkeypatch.setattr(common, "run", lambda cmd, timeout=120: subprocess.CompletedProcess(cmd, 1, "", ""))
    with pytest.raises(LabError) as e:
        common.criu(["restore", "-d", "-D", str(tmp_path)], str(log))
    assert e.value.code == BROKEN
    assert str(e.value) == (f"criu restore exited 1; end of {log}:\n" + "".join(f"line {i}\n" for i in range(10, 30)))
    # A log CRIU never wrote: the failure says why there is no tail.
    with pytest.raises(LabError, match=r"end of .*/none\.log:\n\[Errno 2\] No such file or directory"):
        common.criu(["restore", "-d", "-D", str(tmp_path)], str(tmp_path / "none.log"))


def test_criu_checks_the_room_for_a_dump_unless_the_caller_did(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(common, "room_for_dump", lambda pid, images: asked.append((pid, images)))
    monkeypatch.setattr(common, "run", lambda cmd, timeout=120: asked.append((cmd[1:], timeout))
                        or subprocess.CompletedProcess(cmd, 0, "", ""))
    common.criu(["dump", "-t", "42", "-D", str(tmp_path)], str(tmp_path / "dump.log"))
    common.criu(["dump", "-t", "42", "-D", str(tmp_path)], str(tmp_path / "dump.log"), timeout=1800, check_room=False)
    log = ["-o", str(tmp_path / "dump.log"), "-v4"]
    assert asked == [(42, str(tmp_path)), (["dump", "-t", "42", "-D", str(tmp_path), *log], 120),
                     (["dump", "-t", "42", "-D", str(tmp_path), *log], 1800)]


def test_tail_gives_the_last_lines_or_why_not(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"".join(b"line %d\n" % i for i in range(30)))
    assert common.tail(str(f), 2) == "line 28\nline 29\n"
    assert common.tail(str(tmp_path / "missing")).startswith("[Errno 2] No such file or directory")


def test_counts_reads_the_counter_log(tmp_path):
    log = tmp_path / "counter.log"
    log.write_text("PID: 12\nCounter: 0\nCounter: 1\nnoise Counter: 5\nCounter: 2\nCounter: 3")
    assert common.counts(str(log)) == [0, 1, 2, 3]
    assert common.counts(str(tmp_path / "missing")) == []
    assert common.counts_in("Counter: 9\nCounter: 10\nCounter: 1") == [9, 10, 1]
