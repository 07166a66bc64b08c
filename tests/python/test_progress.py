"""`criu-lab progress`: the store (records merged, written whole, readable, an unreadable file
kept aside), which commands record which exercise, and the evidence of hand-made restores
(checkpoint directories in a home; the command line read from the images' memory, through
pagemap and mm as `crit show` printed them for a real dump of the counter on this project's
test host: fixtures/counter-images)."""
import argparse
import json
import os
import stat

import pytest

from criu_lab import evidence, progress

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "counter-images")
# The counter's argv in that dump, as its pages hold it at mm_arg_start.
ARGV = b"/root/.pyenv/versions/3.11.7/bin/python3\0/work/wt-gtools/cloud-init/counter.py\0"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)["entries"]


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "state" / "progress.json")


def test_a_record_is_written_whole_readable_by_all_with_the_first_completion_kept(store):
    progress.record([("demo", "sudo criu-lab demo passed", 0)], path=store)
    progress.record([("demo", "sudo criu-lab demo passed", 3600), ("images", "analyze", 60)], path=store)
    with open(store) as f:
        data = json.load(f)
    assert data["version"] == 1
    assert data["exercises"]["demo"] == {"at": "1970-01-01T00:00:00Z", "how": "sudo criu-lab demo passed",
                                         "last": "1970-01-01T01:00:00Z", "times": 2}
    assert data["exercises"]["images"]["times"] == 1
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o644
    # Nothing half-written is left beside it.
    assert sorted(os.listdir(os.path.dirname(store))) == ["progress.json", "progress.json.lock"]


def test_evidence_found_again_is_not_counted_again(store):
    found = [("counter", "restore of counter.py found in /home/u/checkpoint_dir", 100)]
    progress.record(found, count=False, path=store)
    before = os.stat(store).st_mtime_ns
    records = progress.record(found, count=False, path=store)
    assert records["counter"]["times"] == 1
    assert os.stat(store).st_mtime_ns == before  # unchanged: not rewritten


def test_an_unreadable_store_is_kept_aside_not_overwritten(store, capsys):
    os.makedirs(os.path.dirname(store))
    with open(store, "w") as f:
        f.write("{half a file")
    records = progress.record([("doctor", "sudo criu-lab doctor passed", 0)], path=store)
    assert list(records) == ["doctor"]
    aside = [n for n in os.listdir(os.path.dirname(store)) if ".unreadable-" in n]
    assert len(aside) == 1
    with open(os.path.join(os.path.dirname(store), aside[0])) as f:
        assert f.read() == "{half a file"
    assert "kept as" in capsys.readouterr().err


@pytest.mark.parametrize("argv, ids", [
    (dict(command="demo"), ["demo"]),
    (dict(command="analyze"), ["images"]),
    (dict(command="doctor"), ["doctor"]),
    (dict(command="scenario", scenario="training"), ["training"]),
    (dict(command="scenario", scenario="game"), ["game"]),
    (dict(command="scenario", scenario="backup"), ["migration"]),
    (dict(command="migrate"), ["migration"]),
    (dict(command="status"), []),
    (dict(command="progress"), []),
])
def test_a_command_that_passed_records_its_exercise(monkeypatch, store, argv, ids):
    monkeypatch.setattr(progress, "STORE", store)
    progress.after_command(argparse.Namespace(**argv), 0)
    recorded = progress.load(store)
    assert sorted(recorded) == ids
    for r in recorded.values():
        assert r["how"] == f"sudo criu-lab {progress.command_key(argparse.Namespace(**argv))} passed"


def test_a_command_that_failed_records_nothing(monkeypatch, store):
    monkeypatch.setattr(progress, "STORE", store)
    for code in (1, 2, 3):
        progress.after_command(argparse.Namespace(command="demo"), code)
    assert not os.path.exists(store)


def test_the_page_of_an_address_in_a_real_pagemap():
    pagemap, mm = fixture("pagemap-30351.json"), fixture("mm-30351.json")[0]
    where = evidence.page_offset(pagemap, int(mm["mm_arg_start"], 16))
    # The stack is the last range (7 + 8 pages): argv near its top, 7628817 bytes into
    # pages-1.img (read back from the real file when the fixtures were made).
    assert where == ("here", 7628817)
    assert evidence.page_offset(pagemap, 0x1000) is None


def test_pages_left_in_the_parent_are_looked_for_there():
    pagemap = [{"pages_id": 2},
               {"vaddr": "0x1000", "nr_pages": 1, "flags": "PE_PRESENT"},
               {"vaddr": "0x5000", "nr_pages": 2, "flags": "PE_PARENT"},
               {"vaddr": "0x9000", "nr_pages": 1, "flags": "PE_LAZY | PE_PRESENT"}]
    page = evidence.PAGE_SIZE
    assert evidence.page_offset(pagemap, 0x5010) == ("parent", None)
    # The parent's pages take no room in this dump's pages file.
    assert evidence.page_offset(pagemap, 0x9004) == ("here", page + 4)


def write_images(path, pid=30351, argv=ARGV, restored=True):
    """An images directory as CRIU writes it, as far as evidence reads it: the real dump's
    pagemap and mm, its argv in a sparse pages file at its real offset."""
    os.makedirs(path)
    for name in ("inventory.img", "pstree.img", f"mm-{pid}.img", f"pagemap-{pid}.img", "stats-dump"):
        open(os.path.join(path, name), "w").close()
    with open(os.path.join(path, "pages-1.img"), "wb") as f:
        f.seek(7628817)
        f.write(argv)
    if restored:
        open(os.path.join(path, "stats-restore"), "w").close()


@pytest.fixture
def crit(monkeypatch):
    """crit show as it printed the real images (by file name)."""
    def show(path):
        name = os.path.basename(path)
        if name == "pstree.img":
            return fixture("pstree.json")
        return fixture(name.replace(".img", ".json"))
    monkeypatch.setattr(evidence, "crit_show", show)


def test_a_restored_counter_in_a_home_is_found(tmp_path, crit):
    home = tmp_path / "home"
    write_images(str(home / "checkpoint_dir"))
    write_images(str(home / "ckpt" / "1"), restored=False)       # dumped, never restored
    write_images(str(home / ".cache" / "hidden"))                # never searched
    write_images(str(home / "other"), argv=b"/usr/bin/sleep\x00600\x00")  # not a lab program
    found = evidence.restores([str(home)], {"counter.py", "trainer.py"})
    assert [(p, os.path.relpath(d, home)) for p, d, _ in found] == [("counter.py", "checkpoint_dir")]
    table = progress.exercises()
    assert progress.found_by_hand(table, [str(home)])[0][:2] == (
        "counter", f"restore of counter.py found in {home}/checkpoint_dir")


def test_a_command_line_unreadable_is_no_evidence(tmp_path, monkeypatch):
    def failing(path):
        raise OSError("crit: not found")
    monkeypatch.setattr(evidence, "crit_show", failing)
    write_images(str(tmp_path / "checkpoint_dir"))
    assert evidence.restores([str(tmp_path)], {"counter.py"}) == []


@pytest.mark.parametrize("argv, program", [
    (["/usr/bin/python3", "./counter.py"], "counter.py"),
    (["./trainer.py", "--size-mib", "64"], "trainer.py"),
    (["python3", "/home/ubuntu/game_server.py", "--port", "7777"], "game_server.py"),
    (["python3", "-c", "counter.py"], None),
    (None, None),
])
def test_program_of(argv, program):
    assert evidence.program_of(argv, {"counter.py", "trainer.py", "game_server.py"}) == program


def test_the_verifiers_own_runs_record_nothing(monkeypatch, store):
    """`sudo CRIU_LAB_PROGRESS=off criu-lab demo --json` (verify/checks.ts NOT_THE_LEARNER)."""
    monkeypatch.setattr(progress, "STORE", store)
    monkeypatch.setenv("CRIU_LAB_PROGRESS", "off")
    progress.after_command(argparse.Namespace(command="demo"), 0)
    assert not os.path.exists(store)


def test_a_fault_the_lab_recovered_from_records_the_faults_exercise(monkeypatch, store):
    """migrate --fault ends non-zero when the fault broke the migration; the exercise is to
    cause it and see the lab recover (the process runs), so that is what records it."""
    monkeypatch.setattr(progress, "STORE", store)
    args = argparse.Namespace(command="migrate", fault={"name": "page-server-kill"})
    assert progress.command_key(args) == "migrate --fault"
    frozen = {"fault": {"name": "page-server-kill", "outcome": "failed, never dumped", "processHere": "stopped (T)"}}
    progress.after_command(args, 1, result=frozen)
    assert not os.path.exists(store)
    recovered = {"fault": {**frozen["fault"], "processHere": "running"}}
    progress.after_command(args, 1, result=recovered)
    recorded = progress.load(store)
    assert sorted(recorded) == ["faults"]
    assert recorded["faults"]["how"] == "sudo criu-lab migrate --fault page-server-kill: failed, never dumped"
