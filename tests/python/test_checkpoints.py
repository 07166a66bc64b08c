"""checkpoints.py: where a training checkpoint is dumped (RAM or disk, from the numbers), its
persisting to disk (on a temporary directory), and which checkpoint a restore takes."""
import hashlib
import json
import os

import pytest

from criu_lab import checkpoints as ckpt
from criu_lab.outcome import NOT_READY, LabError

MIB, GIB = 2**20, 2**30


def test_ram_when_memavailable_less_the_margin_and_the_tmpfs_hold_the_images():
    where, why = ckpt.placement(1, 300 * MIB, 4 * GIB, 8 * GIB, 50 * GIB)
    assert where == "ram"
    assert why == "about 300.0 MiB of images fit in the 4.0 GiB of RAM available (MemAvailable, margin 256.0 MiB)"


@pytest.mark.parametrize("need, available, ram_free, budget, why", [
    # The margin counts: 300 MiB + 256 MiB > 512 MiB available.
    (300 * MIB, 512 * MIB, 8 * GIB, None,
     "about 300.0 MiB of images plus a margin of 256.0 MiB, more than the 512.0 MiB of RAM available (MemAvailable)"),
    (300 * MIB, 4 * GIB, 200 * MIB, None, "about 300.0 MiB of images, more than the 200.0 MiB free on the tmpfs at "
     f"{ckpt.RAM_ROOT}"),
    (300 * MIB, 4 * GIB, 8 * GIB, 0, "about 300.0 MiB of images, more than the RAM budget of 0 B (--ram-budget-mib)"),
    (300 * MIB, 4 * GIB, None, None, f"no tmpfs at {ckpt.RAM_ROOT} to dump into"),
])
def test_disk_when_ram_is_short_with_the_numbers(need, available, ram_free, budget, why):
    assert ckpt.placement(2, need, available, ram_free, 50 * GIB, budget) == ("disk", why)


def test_a_budget_that_holds_the_images_keeps_them_in_ram():
    assert ckpt.placement(1, 300 * MIB, 4 * GIB, 8 * GIB, 50 * GIB, budget=300 * MIB)[0] == "ram"


def test_no_room_on_disk_either_fails_before_the_freeze_naming_the_numbers():
    with pytest.raises(LabError) as e:
        ckpt.placement(3, 300 * MIB, 4 * GIB, 8 * GIB, 100 * MIB)
    assert e.value.code == NOT_READY
    assert str(e.value).startswith("no room on disk for checkpoint 3: about 300.0 MiB of images, 100.0 MiB free "
                                   "where checkpoints are kept; nothing was frozen.")


def test_mem_available_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:         1000 kB\nMemAvailable:    2048 kB\n")
    assert ckpt.mem_available(str(meminfo)) == 2048 * 1024
    meminfo.write_text("MemTotal:       16000000 kB\n")
    with pytest.raises(LabError, match="no MemAvailable in"):
        ckpt.mem_available(str(meminfo))


def images(path, files, parent=None):
    os.makedirs(path)
    for name, data in files.items():
        (path / name).write_bytes(data)
    if parent:
        os.symlink(parent, os.path.join(path, "parent"))
    return str(path)


def test_persist_copies_from_ram_writes_the_manifest_and_renames_into_place(tmp_path):
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    ram = images(tmp_path / "ram" / "1", {"pages-1.img": b"p" * 8192, "core-7.img": b"c" * 10})
    ms = ckpt.persist(ram, disk, 1, {"step": 9, "where": "ram"})
    assert ms >= 0
    assert sorted(os.listdir(disk)) == ["1"]  # no .1.partial left
    assert sorted(os.listdir(os.path.join(disk, "1"))) == ["MANIFEST.json", "core-7.img", "pages-1.img"]
    with open(os.path.join(disk, "1", "MANIFEST.json")) as f:
        m = json.load(f)
    assert m["files"] == {"core-7.img": {"size": 10, "sha256": hashlib.sha256(b"c" * 10).hexdigest()},
                          "pages-1.img": {"size": 8192, "sha256": hashlib.sha256(b"p" * 8192).hexdigest()}}
    assert (m["checkpoint"], m["step"], m["where"], m["links"]) == (1, 9, "ram", {})
    assert os.stat(os.path.join(disk, "1", "MANIFEST.json")).st_mode & 0o777 == 0o600
    assert os.path.isdir(ram)  # the caller frees the RAM copy once this returned
    assert ckpt.latest_complete(disk) == (1, os.path.join(disk, "1"))


def test_persist_of_a_dump_straight_to_disk_renames_its_partial_directory(tmp_path):
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    images(tmp_path / "checkpoints" / ".1.partial", {"pages-1.img": b"p" * 4096})
    ckpt.persist(ckpt.partial(disk, 1), disk, 1, {"where": "disk"})
    assert sorted(os.listdir(disk)) == ["1"]
    assert ckpt.complete(disk, 1) is None


def test_an_incremental_checkpoints_parent_link_becomes_relative_on_disk(tmp_path):
    # The dump (in RAM) was given the previous checkpoint on disk by its absolute path.
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    ckpt.persist(images(tmp_path / "ram" / "1", {"pages-1.img": b"p" * 4096}), disk, 1, {})
    assert ckpt.parent_arg(disk, 1) is None
    parent = ckpt.parent_arg(disk, 2)
    assert parent == os.path.join(os.path.abspath(disk), "1") and os.path.isdir(parent)
    ckpt.persist(images(tmp_path / "ram" / "2", {"pages-2.img": b"q" * 4096}, parent=parent), disk, 2, {})
    assert os.readlink(os.path.join(disk, "2", "parent")) == "../1"
    assert ckpt.latest_complete(disk) == (2, os.path.join(disk, "2"))
    # The chain moves with the directory (a run kept elsewhere, a learner's copy).
    moved = str(tmp_path / "moved")
    os.rename(disk, moved)
    assert ckpt.complete(moved, 2) is None
    assert sorted(os.listdir(os.path.join(moved, "2", "parent"))) == ["MANIFEST.json", "pages-1.img"]


def test_an_incremental_checkpoint_whose_parent_is_incomplete_is_not_complete(tmp_path):
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    ckpt.persist(images(tmp_path / "ram" / "1", {"pages-1.img": b"p" * 4096}), disk, 1, {})
    ckpt.persist(images(tmp_path / "ram" / "2", {"pages-2.img": b"q"}, parent=ckpt.parent_arg(disk, 2)), disk, 2, {})
    os.truncate(os.path.join(disk, "1", "pages-1.img"), 100)
    assert ckpt.complete(disk, 2) == f"{disk}/1/pages-1.img has 100 bytes, MANIFEST.json says 4096"
    with pytest.raises(LabError, match="no complete checkpoint in"):
        ckpt.latest_complete(disk)


def test_the_latest_complete_checkpoint_skips_a_copy_cut_short_and_a_damaged_one(tmp_path):
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    for n in (1, 2, 3):
        ckpt.persist(images(tmp_path / "ram" / str(n), {"pages-1.img": b"p" * 4096}), disk, n, {})
    # A crash during checkpoint 4's copy: its .4.partial has no manifest and was never renamed.
    images(tmp_path / "checkpoints" / ".4.partial", {"pages-1.img": b"p" * 10})
    # Checkpoint 3 lost a file (a disk that filled up, a hand that removed it).
    os.unlink(os.path.join(disk, "3", "pages-1.img"))
    assert ckpt.complete(disk, 3) == f"{disk}/3/pages-1.img is missing"
    assert ckpt.latest_complete(disk) == (2, os.path.join(disk, "2"))
    os.unlink(os.path.join(disk, "2", "MANIFEST.json"))
    assert ckpt.complete(disk, 2).startswith(f"{disk}/2 has no MANIFEST.json")
    assert ckpt.latest_complete(disk)[0] == 1


def test_persist_replaces_a_copy_cut_short_before(tmp_path):
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    images(tmp_path / "checkpoints" / ".1.partial", {"stale.img": b"x"})
    ckpt.persist(images(tmp_path / "ram" / "1", {"pages-1.img": b"p"}), disk, 1, {})
    assert sorted(os.listdir(os.path.join(disk, "1"))) == ["MANIFEST.json", "pages-1.img"]


def test_ram_dir_is_private_and_absent_without_a_tmpfs(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "RAM_ROOT", str(tmp_path))
    d = ckpt.ram_dir()
    assert os.path.dirname(d) == str(tmp_path) and os.stat(d).st_mode & 0o777 == 0o700
    monkeypatch.setattr(ckpt, "RAM_ROOT", str(tmp_path / "none"))
    assert ckpt.ram_dir() is None


def test_a_byte_changed_in_the_latest_checkpoint_is_refused_naming_the_file(tmp_path):
    # Same size, other bytes: complete by sizes, but the restore would take changed memory.
    disk = str(tmp_path / "checkpoints")
    os.mkdir(disk)
    for n in (1, 2):
        ckpt.persist(images(tmp_path / "ram" / str(n), {"pages-1.img": b"p" * 4096}), disk, n, {})
    with open(os.path.join(disk, "2", "pages-1.img"), "r+b") as f:
        f.seek(100)
        f.write(b"X")
    assert ckpt.complete(disk, 2) is None
    with pytest.raises(LabError) as e:
        ckpt.latest_complete(disk)
    assert e.value.code == NOT_READY
    assert f"checkpoint {disk}/2 refused: pages-1.img changed (sha256" in str(e.value)


# A migration's images: one path on both hosts, so RAM on both ends or disk on both.
ROOMY = {"available": 8 * GIB, "ramFree": 4 * GIB}


def test_migration_images_in_ram_when_both_ends_hold_them_said_with_the_numbers():
    placed = ckpt.migration_placement(300 * MIB, 300 * MIB, 300 * MIB, ROOMY, ROOMY)
    assert placed == {"here": "ram", "there": "ram", "why": "about 300.0 MiB of images here and 300.0 MiB there fit "
                      "in RAM (8.0 GiB and 8.0 GiB available, margin 256.0 MiB)"}


@pytest.mark.parametrize("here, there, budget, why", [
    (ROOMY, ROOMY, 100 * MIB, "about 300.0 MiB of images here, more than the RAM budget of 100.0 MiB (--ram-budget-mib)"),
    ({"available": 8 * GIB, "ramFree": None}, ROOMY, None, f"no tmpfs at {ckpt.RAM_ROOT} here"),
    ({"available": 500 * MIB, "ramFree": GIB}, ROOMY, None,
     "about 300.0 MiB of images here plus a margin of 256.0 MiB, more than the 500.0 MiB of RAM available here (MemAvailable)"),
    (ROOMY, {"available": 8 * GIB, "ramFree": 200 * MIB}, None,
     f"about 300.0 MiB of images there, more than the 200.0 MiB free on the tmpfs at {ckpt.RAM_ROOT} there"),
    # There the restored process takes its memory beside the images until they move to disk.
    (ROOMY, {"available": 800 * MIB, "ramFree": GIB}, None,
     "about 300.0 MiB of images there beside the process's 300.0 MiB plus a margin of 256.0 MiB, more than the "
     "800.0 MiB of RAM available there (MemAvailable)"),
    (ROOMY, {"available": None, "ramFree": GIB}, None, "no MemAvailable in /proc/meminfo there"),
    (ROOMY, {**ROOMY, "shared": True}, None, f"{ckpt.RAM_ROOT} is the same directory on both hosts (one kernel, one "
     "filesystem): each end needs its own copy of the images"),
])
def test_migration_images_on_disk_on_both_ends_when_either_is_short_with_the_reason(here, there, budget, why):
    assert ckpt.migration_placement(300 * MIB, 300 * MIB, 300 * MIB, here, there, budget) == {
        "here": "disk", "there": "disk", "why": why}


def test_migration_a_page_servers_pages_need_room_only_there():
    small_here = {"available": 400 * MIB, "ramFree": 100 * MIB}
    assert ckpt.migration_placement(8 * MIB, 300 * MIB, 300 * MIB, small_here, ROOMY)["here"] == "ram"
    assert ckpt.migration_placement(300 * MIB, 300 * MIB, 300 * MIB, small_here, ROOMY)["here"] == "disk"
