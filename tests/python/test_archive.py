"""archive.py and checkpoint_cmd.py: a checkpoint's archive named, packed and unpacked (both
codecs), a changed or unsafe archive refused naming the member, and the argument checks."""
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from criu_lab import archive, checkpoint_cmd, manifest
from criu_lab.outcome import NOT_READY, USAGE, LabError

CODECS = ["gzip", pytest.param("zstd", marks=pytest.mark.skipif(
    not shutil.which("zstd") and not os.environ.get("CI"), reason="zstd is not installed (apt-get install zstd)"))]


@pytest.mark.parametrize("file, zstd, expected", [
    ("c.tar.zst", True, ("c.tar.zst", "zstd")),
    ("c.tar.gz", True, ("c.tar.gz", "gzip")),
    ("c.tgz", False, ("c.tgz", "gzip")),
    ("backups/c", True, ("backups/c.tar.zst", "zstd")),
    ("backups/c", False, ("backups/c.tar.gz", "gzip")),
    ("c.v2", False, ("c.v2.tar.gz", "gzip")),
])
def test_archive_name_says_the_codec(file, zstd, expected):
    assert archive.archive_name(file, zstd) == expected


@pytest.mark.parametrize("file, zstd, code, message", [
    ("c.tar.zst", False, NOT_READY, "FILE 'c.tar.zst': zstd is not installed here"),
    ("c.zip", True, USAGE, "FILE 'c.zip': an archive ends .tar.zst or .tar.gz (or has no ending: .tar.zst is added)"),
    ("c.tar", False, USAGE, "FILE 'c.tar': an archive ends .tar.zst or .tar.gz (or has no ending: .tar.gz is added)"),
    ("c.tar.xz", True, USAGE, "FILE 'c.tar.xz': an archive ends"),
    ("out/", True, USAGE, "FILE 'out/': the archive's file name, not a directory"),
])
def test_archive_names_that_would_mislead_are_refused(file, zstd, code, message):
    with pytest.raises(LabError) as e:
        archive.archive_name(file, zstd)
    assert e.value.code == code and str(e.value).startswith(message)


def checkpoint(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "pages-1.img").write_bytes(os.urandom(50000))
    (d / "core-1.img").write_bytes(b"core")
    manifest.write(str(d))
    return str(d)


@pytest.mark.parametrize("codec", CODECS)
def test_export_then_import_gives_the_same_checkpoint_private(tmp_path, codec):
    d = checkpoint(tmp_path)
    path = str(tmp_path / f"c.tar.{'zst' if codec == 'zstd' else 'gz'}")
    m, size = archive.pack(d, path, codec)
    assert size == os.path.getsize(path) and os.stat(path).st_mode & 0o777 == 0o600
    assert archive.codec_of(path) == codec
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    out = str(tmp_path / "imported")
    assert archive.unpack(path, out)["files"] == m["files"]
    assert sorted(os.listdir(out)) == ["MANIFEST.json", "core-1.img", "pages-1.img"]
    assert os.stat(out).st_mode & 0o777 == 0o700
    assert {os.stat(os.path.join(out, n)).st_mode & 0o777 for n in os.listdir(out)} == {0o600}


def test_a_changed_checkpoint_is_not_exported(tmp_path):
    d = checkpoint(tmp_path)
    with open(os.path.join(d, "core-1.img"), "wb") as f:
        f.write(b"CORE")
    with pytest.raises(LabError, match="refused: core-1.img changed"):
        archive.pack(d, str(tmp_path / "c.tar.gz"), "gzip")
    assert not os.path.exists(tmp_path / "c.tar.gz")


def test_an_incremental_checkpoint_is_refused_naming_its_parent(tmp_path):
    """Its pages are partly in the parent: an archive of the one directory would restore wrong."""
    parent = checkpoint(tmp_path)
    d = tmp_path / "c2"
    d.mkdir()
    (d / "pages-1.img").write_bytes(b"dirty pages")
    os.symlink("../c", d / "parent")
    manifest.write(str(d))
    with pytest.raises(LabError) as e:
        archive.pack(str(d), str(tmp_path / "c2.tar.gz"), "gzip")
    assert e.value.code == NOT_READY
    assert str(e.value) == (f"{d} is an incremental checkpoint: its parent link points at ../c, which holds pages "
                            "this one does not; an archive carries one directory, so export a full checkpoint "
                            "(`criu-lab checkpoint dump`, or a dump without --prev-images-dir)")
    assert not os.path.exists(tmp_path / "c2.tar.gz") and os.path.isdir(parent)


def tar_of(path, members):
    """A gzip tar of MEMBERS: (name, bytes) or a TarInfo for other kinds."""
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def test_an_archive_whose_image_changed_is_refused_naming_it(tmp_path):
    d = checkpoint(tmp_path)
    with open(os.path.join(d, "MANIFEST.json"), "rb") as f:
        listed = f.read()
    path = tar_of(str(tmp_path / "bad.tar.gz"), [("MANIFEST.json", listed), ("core-1.img", b"CORE"),
                                                 ("pages-1.img", open(os.path.join(d, "pages-1.img"), "rb").read())])
    out = str(tmp_path / "imported")
    with pytest.raises(LabError) as e:
        archive.unpack(path, out)
    assert e.value.code == NOT_READY and f"checkpoint {out} refused: core-1.img changed" in str(e.value)
    assert os.path.isfile(os.path.join(out, "core-1.img"))  # kept, as evidence


@pytest.mark.parametrize("member", ["../escape.img", "/etc/cron.d/x", "sub/pages-1.img", "link"])
def test_members_that_are_no_plain_checkpoint_files_are_refused(tmp_path, member):
    if member == "link":
        info = tarfile.TarInfo("parent")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        entry = info
    else:
        entry = (member, b"x")
    path = tar_of(str(tmp_path / "a.tar.gz"), [entry])
    with pytest.raises(LabError, match="not a checkpoint file") as e:
        archive.unpack(path, str(tmp_path / "out"))
    assert e.value.code == NOT_READY
    assert not os.path.exists(tmp_path / "escape.img")


def test_a_file_that_is_no_archive_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(LabError, match="is neither a zstd nor a gzip archive"):
        archive.codec_of(str(tmp_path / "x"))


def test_the_import_there_is_tar_and_a_sha256_check_in_one_shell_line(tmp_path):
    # What the backup host runs (no criu-lab there): the archive on stdin, checked against
    # this host's manifest. Here "there" is another directory of the same path on this host.
    d = checkpoint(tmp_path)
    path = str(tmp_path / "c.tar.gz")
    archive.pack(d, path, "gzip")
    shutil.rmtree(d + "-keep", ignore_errors=True)
    os.rename(d, d + "-keep")
    os.mkdir(d)
    shutil.copy(os.path.join(d + "-keep", "MANIFEST.json"), d)  # the manifest "here"
    with open(path, "rb") as f:
        p = subprocess.run(["sh", "-c", archive.unpack_there(d, "gzip")], stdin=f, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(os.listdir(d)) == ["MANIFEST.json", "core-1.img", "pages-1.img"]


def test_check_args_name_the_argument(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "a.tar.gz").write_text("x")
    cases = [
        (("verify", str(tmp_path / "none")), f"DIR '{tmp_path}/none': no such directory"),
        (("import", str(tmp_path / "full"), str(tmp_path / "a.tar.gz")),
         f"DIR '{tmp_path}/full' exists and is not empty: import writes into a new directory"),
        (("import", str(tmp_path / "new"), str(tmp_path / "b.tar.gz")), f"FILE '{tmp_path}/b.tar.gz': no such file"),
        (("dump", str(tmp_path / "no" / "where")), f"DIR '{tmp_path}/no/where': its parent directory does not exist"),
        (("export", str(tmp_path / "full"), str(tmp_path / "a.tar.gz")),
         f"FILE '{tmp_path}/a.tar.gz' exists: export writes a new archive"),
    ]
    for args, message in cases:
        with pytest.raises(LabError) as e:
            checkpoint_cmd.check_args(*args)
        assert (e.value.code, str(e.value)) == (USAGE, message)
    checkpoint_cmd.check_args("import", str(tmp_path / "new"), str(tmp_path / "a.tar.gz"))
