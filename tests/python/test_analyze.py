"""analyze.py: what it reads from crit's decoded images (fed in here, as crit would print
them), the left-overs of another dump, and the explanation it prints."""
import argparse
import os

import pytest

from criu_lab import analyze
from criu_lab.outcome import NOT_READY, USAGE


def test_registers_of_x86_as_hex():
    core = {"mtype": "X86_64", "thread_info": {"gpregs": {"ip": 0x401000, "sp": 0x7FFC0000}}}
    assert analyze.registers(core) == ("0x401000", "0x7ffc0000")


def test_registers_in_a_repeated_field_and_as_crit_prints_them():
    # ppc64 keeps the stack pointer in r1 of `gpr`; crit may print registers as hex strings.
    core = {"mtype": "PPC64", "ti_ppc64": {"gpregs": {"nip": "0x10000abc", "gpr": ["0x0", "0x7fff0000"]}}}
    assert analyze.registers(core) == ("0x10000abc", "0x7fff0000")


def test_registers_of_an_architecture_not_in_the_table():
    assert analyze.registers({"mtype": "NEWARCH", "ti_newarch": {"gpregs": {}}}) is None
    assert analyze.registers({"mtype": "AARCH64"}) is None  # its field missing


IMAGES = {
    "pstree.img": [{"pid": 100, "ppid": 1, "sid": 100, "threads": [100, 101]}],
    "core-100.img": [{"mtype": "X86_64", "tc": {"comm": "python3"},
                      "thread_info": {"gpregs": {"ip": 0x401000, "sp": 0x7FFC0000}}}],
    "core-101.img": [{"mtype": "X86_64", "tc": {"comm": "python3"}, "thread_info": {"gpregs": {"ip": 1, "sp": 2}}}],
    "core-55.img": [{"mtype": "X86_64", "tc": {"comm": "old"}}],
    "mm-100.img": [{"vmas": [{}, {}, {}]}],
    "mm-55.img": [{"vmas": []}],
    "mm-101.img": [{"vmas": []}],  # 101 is a thread of 100 now: no process of its own
    "pagemap-100.img": [{"pages_id": 1}, {"nr_pages": 3}, {"nr_pages": 5}],
    "pagemap-55.img": [{"pages_id": 2}],
    "ids-100.img": [{"files_id": 7}],
    "fdinfo-7.img": [{"fd": 0}, {"fd": 1}, {"fd": 2}],
    "fdinfo-9.img": [{"fd": 0}],
    "files.img": [{"type": "REG", "reg": {"name": f"/usr/lib/lib{i}.so"}} for i in range(7)]
    + [{"type": "PIPE"}, {"type": "INETSK"}],
    "stats-dump": [{"dump": {"frozen_time": 1, "pages_written": 2, "pages_scanned": 3}}],
}


@pytest.fixture
def images(tmp_path, monkeypatch):
    """A checkpoint directory whose images crit "decodes" from IMAGES."""
    for name in [*IMAGES, "pages-1.img", "pages-2.img"]:
        (tmp_path / name).write_bytes(b"\0" * (4096 * 8 if name == "pages-1.img" else 64))
    monkeypatch.setattr(analyze, "show", lambda path: IMAGES[os.path.basename(path)])
    return tmp_path


def test_stale_files_are_the_images_of_no_task_of_pstree(images):
    names = sorted(os.listdir(images))
    stale = analyze.stale_files(str(images), names, IMAGES["pstree.img"])
    assert stale == {"core-55.img", "mm-55.img", "mm-101.img", "pagemap-55.img", "pages-2.img", "fdinfo-9.img"}


@pytest.mark.parametrize("name, holds, details", [
    ("pstree.img", analyze.HOLDS["pstree"], "PID 100 (parent 1, session 100, 2 thread(s))"),
    ("core-100.img", analyze.HOLDS["core"], "python3 on X86_64, instruction pointer 0x401000, stack pointer 0x7ffc0000"),
    ("mm-100.img", analyze.HOLDS["mm"], "3 memory mappings"),
    ("pagemap-100.img", analyze.HOLDS["pagemap"], "2 address ranges, 8 pages saved"),
    ("fdinfo-7.img", analyze.HOLDS["fdinfo"], "fds 0, 1, 2"),
    ("files.img", analyze.HOLDS["files"], "9 open files: 1 INETSK, 1 PIPE, 7 REG"),
    ("pages-1.img", analyze.HOLDS["pages"], "8 pages"),
    ("ids-100.img", analyze.HOLDS["ids"], ""),
    ("stats-dump", analyze.HOLDS["stats"], ""),
])
def test_describe_each_image(images, name, holds, details):
    got = analyze.describe(str(images / name), name)
    assert got[:2] == (holds, details)
    assert got[2] == ([f"/usr/lib/lib{i}.so" for i in range(7)] if name == "files.img" else [])


def test_describe_a_file_that_is_no_known_image(tmp_path):
    assert analyze.describe(str(tmp_path / "x"), "newthing-1.img")[:2] == (
        "a CRIU image (see https://criu.org/Images)", "")
    assert analyze.describe(str(tmp_path / "x"), "notes.txt")[:2] == ("not an image", "")
    assert analyze.describe(str(tmp_path / "x"), "MANIFEST.json")[0].startswith("the lab's manifest: ")


def test_human_explains_each_file_and_the_left_overs():
    files = [{"name": "files.img", "bytes": 2048, "holds": "every open file", "details": "9 open files", "stale": False,
              "paths": [f"/p{i}" for i in range(7)]},
             {"name": "core-55.img", "bytes": 100, "holds": "a task's CPU state", "details": "", "stale": True}]
    r = {"imagesDir": "/d", "pids": [100, 102], "totalBytes": 2148, "files": files, "stale": ["core-55.img"],
         "stats": {"frozen_time": 4567, "pages_written": 30, "pages_scanned": 300}}
    lines = analyze.human(r).split("\n")
    assert lines[0] == "/d: 2 files, 2.1 KiB, process tree of PID 100, 102"
    # Name in 22 columns, size right-aligned in 10.
    assert lines[1] == "files.img".ljust(22) + "2.0 KiB".rjust(10) + "  every open file"
    assert lines[2] == " " * 34 + "9 open files"
    assert lines[3:8] == [" " * 36 + f"/p{i}" for i in range(5)]
    assert lines[8] == " " * 36 + "... and 2 more (crit show files.img)"
    assert lines[9] == "core-55.img".ljust(22) + "100 B".rjust(10) + "  a task's CPU state  (STALE: no process of pstree.img)"
    assert lines[10].startswith("1 file(s) belong to no process of pstree.img")
    assert lines[11] == "The process was frozen for 4567 us; 30 of 300 scanned memory pages were written."
    assert lines[12] == "More: crit show FILE.img, crit x DIR ps|fds|mems"


def test_analyze_a_whole_directory(images, monkeypatch):
    monkeypatch.setattr(analyze, "CRIT", "/bin/true")
    code, r, text = analyze.cmd_analyze(argparse.Namespace(dir=str(images)))
    assert code == 0 and r["ok"] is True
    assert r["pids"] == [100] and r["stats"] == {"frozen_time": 1, "pages_written": 2, "pages_scanned": 3}
    assert r["stale"] == ["core-55.img", "fdinfo-9.img", "mm-101.img", "mm-55.img", "pagemap-55.img", "pages-2.img"]
    assert r["totalBytes"] == sum(os.path.getsize(images / f["name"]) for f in r["files"])
    assert [f["name"] for f in r["files"] if f["stale"]] == r["stale"]
    assert text.startswith(f"{images}: {len(r['files'])} files, ")


def test_analyze_refuses_what_is_no_checkpoint(tmp_path, monkeypatch):
    code, r, text = analyze.cmd_analyze(argparse.Namespace(dir=str(tmp_path / "missing")))
    assert (code, r["error"]) == (USAGE, f"{tmp_path}/missing: no such directory")
    code, r, text = analyze.cmd_analyze(argparse.Namespace(dir=str(tmp_path)))
    assert code == USAGE and "no pstree.img" in r["error"] and "make one with criu dump -D DIR" in text
    (tmp_path / "pstree.img").write_bytes(b"")
    monkeypatch.setattr(analyze, "CRIT", str(tmp_path / "no-crit"))
    code, r, text = analyze.cmd_analyze(argparse.Namespace(dir=str(tmp_path)))
    assert (code, r["error"]) == (NOT_READY, f"crit is not installed at {tmp_path}/no-crit")
