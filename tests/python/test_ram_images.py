"""ram_images.py: a migration's images moved from RAM to the run's directory on disk, on
"both ends" (the destination a fake that runs its shell here, its paths under THERE)."""
import os
import shutil
import types

from criu_lab import ram_images


def migration(tmp_path, ram_root, made=True):
    here = tmp_path / "here"
    there = tmp_path / "there"
    remote = types.SimpleNamespace(host="b", argv=lambda script: ["sh", "-c", script.replace(str(here), str(there))])
    ram = here / ram_root / "criu-lab-migrate-x"
    (ram / "images").mkdir(parents=True)
    (ram / "pre-1").mkdir()
    (ram / "images" / "pages-1.img").write_bytes(b"p" * 4096)
    os.symlink("../pre-1", ram / "images" / "parent")
    shutil.copytree(here, there, symlinks=True)
    return types.SimpleNamespace(dir=str(here / "logs" / "migrate-x"), ram=str(ram), images=str(ram / "images"),
                                 made=made, remote=remote, r={})


def test_to_disk_moves_the_images_with_their_rounds_and_removes_the_ram_dir(tmp_path):
    m = migration(tmp_path, "shm")
    here, there, problems = ram_images.to_disk(m, keep=False)
    disk = os.path.join(m.dir, "images")
    assert (here, there, problems) == (disk, disk, [])
    assert open(os.path.join(disk, "pages-1.img"), "rb").read() == b"p" * 4096
    assert os.readlink(os.path.join(disk, "parent")) == "../pre-1" and os.path.isdir(os.path.join(m.dir, "pre-1"))
    assert os.listdir(tmp_path / "here" / "shm") == os.listdir(tmp_path / "there" / "shm") == []
    assert os.path.isfile(str(tmp_path / "there" / os.path.relpath(disk, tmp_path / "here") / "pages-1.img"))
    assert m.r["imagesDir"] == disk and m.r["toDiskMs"] >= 0 and m.ram is None and m.images == disk
    assert ram_images.to_disk(m, keep=True) == (disk, disk, [])  # once: nothing left to move


def test_to_disk_after_a_failure_keeps_in_ram_what_could_not_be_copied_and_names_it(tmp_path):
    m = migration(tmp_path, "shm")
    for end in ("here", "there"):
        os.makedirs(tmp_path / end / "logs")
        (tmp_path / end / "logs" / "migrate-x").write_text("a file where the run's directory should be")
    ram = m.ram
    here, there, problems = ram_images.to_disk(m, keep=True)
    assert here == there == os.path.join(ram, "images") and os.path.isfile(os.path.join(here, "pages-1.img"))
    assert len(problems) == 2 and problems[0].startswith(f"moving the images from RAM ({ram}) to {m.dir}/images "
                                                         "failed on here (")
    assert problems[0].endswith("): left in RAM") and " failed on b (" in problems[1]
    assert m.r["imagesNotOnDisk"] == problems


def test_to_disk_of_a_migration_that_made_no_dirs_does_nothing(tmp_path):
    m = migration(tmp_path, "shm", made=False)
    assert ram_images.to_disk(m, keep=True) == (m.images, m.images, [])
    assert os.path.isdir(m.images)
