"""common.py: argument types, sizes, result validation, run directories and disk use."""
import argparse
import json
import os
import stat
import subprocess

import pytest

from criu_lab import common
from criu_lab.outcome import BROKEN, NOT_READY, OK, USAGE, LabError

# Above the largest pid_max Linux allows (2**22): never a running process.
NO_SUCH_PID = 2**22 + 1


@pytest.mark.parametrize("value, number", [("0", 0), ("7", 7), ("65535", 65535)])
def test_whole_takes_whole_numbers(value, number):
    assert common.whole(value) == number


@pytest.mark.parametrize("value", ["-1", "1.5", "", "ten", " 3", "0x10"])
def test_whole_refuses_the_rest_naming_the_value(value):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        common.whole(value)
    assert str(e.value) == f"'{value}' is not a whole number"


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"),
    (2**30 - 1, "1024.0 MiB"), (3 * 2**30, "3.0 GiB"), (2**40, "1024.0 GiB"),
])
def test_human_bytes(n, text):
    assert common.human_bytes(n) == text


def test_checked_leaves_a_valid_result_alone():
    r = {"ok": True, "pid": 1}
    assert common.checked(r, [], OK) == OK
    assert r == {"ok": True, "pid": 1}


def test_checked_turns_problems_into_a_failure_naming_them():
    r = {"ok": True}
    assert common.checked(r, ["pid is missing", "kernel is empty"], OK) == BROKEN
    assert r == {"ok": False, "error": "its own result failed validation: pid is missing; kernel is empty"}


def test_checked_keeps_the_earlier_error_and_exit_code():
    r = {"ok": False, "error": "criu dump exited 1"}
    assert common.checked(r, ["pid is missing"], NOT_READY) == NOT_READY
    assert r["error"] == "criu dump exited 1; its own result failed validation: pid is missing"


def test_checked_refuses_what_is_not_strict_json():
    r = {"ok": True, "dumpMs": float("nan")}
    assert common.checked(r, [], OK) == BROKEN
    assert r["ok"] is False
    assert r["error"].startswith("its own result failed validation: not JSON: ")


@pytest.mark.parametrize("name, match", [
    ("demo-20261206T050922Z-11741", ("demo", "11741")),
    ("training-20261206T050924Z-1", ("training", "1")),
    ("demo-latest", None),
    ("Demo-20261206T050922Z-11741", None),
    ("demo-20261206T050922-11741", None),
    ("demo-20261206T050922Z-11741.tmp", None),
])
def test_run_names(name, match):
    m = common.RUN.match(name)
    assert (m.groups() if m else None) == match


def test_run_root_is_the_run_a_path_is_in(log_dir):
    run = os.path.join(log_dir, "migrate-20261206T050922Z-42")
    assert common.run_root(os.path.join(run, "images", "pages-1.img")) == run
    assert common.run_root(run) == run


def test_new_run_names_a_run_of_this_process(log_dir):
    path = common.new_run("game")
    assert os.path.dirname(path) == log_dir
    m = common.RUN.match(os.path.basename(path))
    assert m and m.groups() == ("game", str(os.getpid()))
    assert not os.path.exists(path)  # named, not made


def test_private_dir_makes_the_run_and_the_log_dir_root_only(log_dir):
    os.makedirs(log_dir, 0o755)
    os.chmod(log_dir, 0o755)  # as an older lab left it
    images = os.path.join(log_dir, "demo-20261206T050922Z-1", "images")
    common.private_dir(images)
    assert stat.S_IMODE(os.stat(log_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(images).st_mode) == 0o700
    with pytest.raises(FileExistsError):  # a run's directory is new, never reused
        common.private_dir(images)


def test_keep_latest_passing_removes_earlier_passing_runs_of_its_kind_only(log_dir, make_run):
    old = make_run("demo-20261206T050000Z-1", passed=True)
    failed = make_run("demo-20261206T050100Z-2")
    other_kind = make_run("training-20261206T050200Z-3", passed=True)
    prefix = make_run("demonstration-20261206T050200Z-4", passed=True)  # "demo" + more: another kind
    new = make_run("demo-20261206T050300Z-5")
    link = os.path.join(log_dir, "demo-latest")
    os.symlink(os.path.basename(old), link)
    common.keep_latest_passing(os.path.join(new, "images"))
    assert not os.path.exists(old)
    assert os.path.isdir(failed) and os.path.isdir(other_kind) and os.path.isdir(prefix)
    assert os.path.isfile(os.path.join(new, common.PASSED))
    assert os.path.islink(link)  # a link is never followed into and removed


def test_du_counts_blocks_and_follows_no_link(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "pages-1.img").write_bytes(b"x" * 200_000)
    (data / "link").symlink_to("/usr")
    used = common.du(str(data))
    assert 200_000 <= used < 300_000
    assert common.du(str(tmp_path / "missing")) == 0


def test_disk_when_the_log_dir_is_not_made_yet(log_dir):
    d = common.disk()
    assert (d["dir"], d["usedBytes"], d["runs"], d["runBytes"]) == (log_dir, 0, 0, {})
    assert 0 < d["freeBytes"] <= d["totalBytes"]


def test_disk_counts_runs_per_kind(log_dir, make_run):
    make_run("demo-20261206T050000Z-1", size=100_000)
    make_run("demo-20261206T050100Z-2", size=100_000)
    make_run("training-20261206T050200Z-3", size=300_000)
    os.symlink("demo-20261206T050100Z-2", os.path.join(log_dir, "demo-latest"))
    os.symlink("training-20261206T050200Z-3", os.path.join(log_dir, "training-20261206T050300Z-4"))  # counted once
    os.makedirs(os.path.join(log_dir, "not-a-run"))
    d = common.disk()
    assert d["runs"] == 3
    assert sorted(d["runBytes"]) == ["demo", "training"]
    assert 200_000 <= d["runBytes"]["demo"] < 300_000
    assert 300_000 <= d["runBytes"]["training"] < 400_000
    assert d["usedBytes"] >= d["runBytes"]["demo"] + d["runBytes"]["training"]


def test_disk_text_says_what_the_runs_take_and_how_to_free_it():
    d = {"dir": "/var/log/criu-lab", "usedBytes": 5 * 2**20, "runs": 1, "runBytes": {"training": 4 * 2**20,
         "demo": 2**20}, "freeBytes": 3 * 2**30, "totalBytes": 8 * 2**30}
    assert common.disk_text(d) == ("Disk: 5.0 MiB in /var/log/criu-lab (1 run with their images: demo 1.0 MiB, "
                                   "training 4.0 MiB); 3.0 GiB free of 8.0 GiB; to free space: sudo criu-lab clean [--all]")
    d.update(usedBytes=0, runs=0, runBytes={})
    assert common.disk_text(d) == "Disk: 0 B in /var/log/criu-lab (0 runs with their images); 3.0 GiB free of 8.0 GiB"


def test_process_tree_has_the_children(sleeper):
    child = sleeper()
    tree = common.process_tree(os.getpid())
    assert tree[0] == os.getpid()
    assert child.pid in tree


def test_dump_estimate_is_the_memory_criu_writes_plus_a_tenth_and_8_mib(sleeper):
    child = sleeper()  # asleep: its memory stays as it is
    with open(f"/proc/{child.pid}/smaps_rollup") as f:
        kb = {line.split(":")[0]: int(line.split()[1]) for line in f if line.endswith(" kB\n")}
    memory = sum(kb.get(k, 0) for k in ("Anonymous", "Pss_Shmem", "Swap")) * 1024
    assert memory > 0
    assert common.dump_estimate(child.pid) == memory + memory // 10 + 8 * 2**20
    assert common.dump_estimate(NO_SUCH_PID) is None


def test_room_for_dump_refuses_before_the_freeze(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "free_bytes", lambda path: (2**20, 2**30))
    with pytest.raises(LabError) as e:
        common.room_for_dump(os.getpid(), str(tmp_path))
    assert e.value.code == NOT_READY
    assert str(e.value).startswith(f"no room for the images of PID {os.getpid()} in {tmp_path}: about ")
    assert "(its memory, plus a tenth and 8 MiB), 1.0 MiB free there; nothing was frozen" in str(e.value)


def test_room_for_dump_with_the_pages_elsewhere_needs_8_mib_here(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "free_bytes", lambda path: (8 * 2**20 + 1, 2**30))
    assert common.room_for_dump(os.getpid(), str(tmp_path), pages_elsewhere=True) > 8 * 2**20
    monkeypatch.setattr(common, "free_bytes", lambda path: (8 * 2**20 - 1, 2**30))
    with pytest.raises(LabError, match=r"about 8\.0 MiB needed \(the images but its pages\)"):
        common.room_for_dump(os.getpid(), str(tmp_path), pages_elsewhere=True)


def test_room_for_dump_leaves_it_to_criu_when_proc_cannot_say(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "free_bytes", lambda path: (0, 0))
    assert common.room_for_dump(NO_SUCH_PID, str(tmp_path)) is None


def test_criu_version_reads_the_version_line(monkeypatch):
    out = "Version: 4.1.1\nGitID: v4.1.1\n"
    monkeypatch.setattr(common, "run", lambda cmd, timeout=120: subprocess.CompletedProcess(cmd, 0, out, ""))
    assert common.criu_version() == "4.1.1"


def test_criu_version_is_empty_where_criu_is_missing(monkeypatch):
    monkeypatch.setattr(common, "CRIU", "/nonexistent/criu")
    assert common.criu_version() == ""


def test_crit_show_returns_the_entries_or_names_the_failure(monkeypatch):
    monkeypatch.setattr(common, "run", lambda cmd, timeout=120: subprocess.CompletedProcess(
        cmd, 0, json.dumps({"magic": "PSTREE", "entries": [{"pid": 7}]}), ""))
    assert common.crit_show("pstree.img") == [{"pid": 7}]
    monkeypatch.setattr(common, "run", lambda cmd, timeout=120: subprocess.CompletedProcess(cmd, 1, "", "bad magic\n"))
    with pytest.raises(LabError, match=r"^crit show pstree.img failed: bad magic$") as e:
        common.crit_show("pstree.img")
    assert e.value.code == BROKEN


def test_ready_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match=r"^demo needs root: sudo criu-lab demo$") as e:
        common.ready("demo")
    assert e.value.code == USAGE
