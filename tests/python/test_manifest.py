"""manifest.py: a checkpoint's MANIFEST.json built, compared with its directory, verified here,
and checked on another host by the shell line it gives (run here with sh: Python's hashlib, or
sha256sum where there is no Python)."""
import hashlib
import json
import os
import re
import subprocess

import pytest

from criu_lab import __version__, manifest
from criu_lab.outcome import BROKEN, NOT_READY, LabError

HOST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host")


def checkpoint(path, files, links=None):
    os.makedirs(path)
    for name, data in files.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    for name, target in (links or {}).items():
        os.symlink(target, os.path.join(path, name))
    return str(path)


def flip(path, offset=0):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


def test_the_manifest_holds_each_files_size_and_sha256_and_what_made_it(tmp_path):
    d = checkpoint(tmp_path / "c", {"pages-1.img": b"p" * 5000, "stats-dump": b"s"}, {"parent": "../1"})
    m = manifest.write(d, {"pid": 7})
    with open(os.path.join(d, "MANIFEST.json")) as f:
        assert json.load(f) == m
    assert m["files"] == {"pages-1.img": {"size": 5000, "sha256": hashlib.sha256(b"p" * 5000).hexdigest()},
                          "stats-dump": {"size": 1, "sha256": hashlib.sha256(b"s").hexdigest()}}
    assert m["links"] == {"parent": "../1"}
    assert m["pid"] == 7 and m["format"] == "criu-lab-checkpoint/1" and m["labVersion"] == __version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["createdAt"])
    for key in ("criuVersion", "kernel", "arch", "cpuModel", "cpuFlags"):
        assert key in m
    assert os.stat(os.path.join(d, "MANIFEST.json")).st_mode & 0o777 == 0o600
    # Written again (a restore's stats-restore beside it): the manifest never lists itself.
    assert "MANIFEST.json" not in manifest.write(d)["files"]


def test_the_lab_version_is_the_projects():
    with open(os.path.join(HOST, "pyproject.toml")) as f:
        assert re.search(r'^version = "([^"]+)"$', f.read(), re.M).group(1) == __version__


def test_cpu_reads_model_and_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nmodel name : AMD EPYC 7R13\nflags : sse2 avx aes\n\nprocessor : 1\n"
                    "model name : other\nflags : x\n")
    assert manifest.cpu(str(info)) == ("AMD EPYC 7R13", "aes avx sse2")
    assert manifest.cpu(str(tmp_path / "none")) == ("", "")


@pytest.mark.parametrize("name, kind", [("sub", "dir"), ("bad name.img", "file")])
def test_a_directory_that_is_no_checkpoint_gets_no_manifest(tmp_path, name, kind):
    d = checkpoint(tmp_path / "c", {"pages-1.img": b"p"})
    os.mkdir(os.path.join(d, name)) if kind == "dir" else open(os.path.join(d, name), "w").close()
    with pytest.raises(LabError) as e:
        manifest.write(d)
    assert e.value.code == BROKEN and name in str(e.value)


M = {"files": {"a.img": {"size": 3, "sha256": "aa"}, "b.img": {"size": 2, "sha256": "bb"},
               "c.img": {"size": 1, "sha256": "cc"}}, "links": {"parent": "../1"}}


def test_compare_names_each_file_that_differs_and_how():
    files = {"a.img": {"size": 3, "sha256": "aX"}, "b.img": {"size": 5, "sha256": "bb"},
             "stats-restore": {"size": 9, "sha256": "ss"}, "pages-9.img": {"size": 1, "sha256": "zz"}}
    assert manifest.compare(M, files, {"parent": "../2"}) == [
        {"file": "a.img", "problem": "sha256", "expected": "aa", "actual": "aX"},
        {"file": "b.img", "problem": "size", "expected": 2, "actual": 5},
        {"file": "c.img", "problem": "missing"},
        {"file": "parent", "problem": "link", "expected": "../1", "actual": "../2"},
        # An extra image could be read by CRIU; stats-restore (a restore writes it) is fine.
        {"file": "pages-9.img", "problem": "extra"},
    ]
    same = {n: dict(f) for n, f in M["files"].items()}
    assert manifest.compare(M, {**same, "stats-restore": {"size": 1, "sha256": "x"}}, {"parent": "../1"}) == []


def test_verify_refuses_a_changed_byte_naming_the_file(tmp_path):
    d = checkpoint(tmp_path / "c", {"pages-1.img": b"p" * 4096, "core-1.img": b"c" * 10})
    manifest.write(d)
    assert manifest.verify(d)["files"]["core-1.img"]["size"] == 10
    flip(os.path.join(d, "pages-1.img"), 4000)
    with pytest.raises(LabError) as e:
        manifest.verify(d)
    assert e.value.code == NOT_READY
    assert str(e.value).startswith(f"checkpoint {d} refused: pages-1.img changed (sha256 ")
    assert e.value.result["differs"][0]["file"] == "pages-1.img"


def test_verify_refuses_a_missing_file_and_a_missing_manifest(tmp_path):
    d = checkpoint(tmp_path / "c", {"pages-1.img": b"p", "core-1.img": b"c"})
    manifest.write(d)
    os.unlink(os.path.join(d, "core-1.img"))
    with pytest.raises(LabError, match="refused: core-1.img is missing"):
        manifest.verify(d)
    os.unlink(os.path.join(d, "MANIFEST.json"))
    with pytest.raises(LabError, match="has no MANIFEST.json: not a complete checkpoint") as e:
        manifest.verify(d)
    assert e.value.code == NOT_READY


def test_verify_follows_an_incremental_checkpoints_parent(tmp_path):
    one = checkpoint(tmp_path / "1", {"pages-1.img": b"p" * 100})
    manifest.write(one)
    two = checkpoint(tmp_path / "2", {"pages-2.img": b"q"}, {"parent": "../1"})
    manifest.write(two)
    manifest.verify(two)
    flip(os.path.join(one, "pages-1.img"))
    with pytest.raises(LabError, match=f"checkpoint {one} refused: pages-1.img changed"):
        manifest.verify(two)


def test_a_manifest_naming_a_path_is_refused(tmp_path):
    d = checkpoint(tmp_path / "c", {})
    with open(os.path.join(d, "MANIFEST.json"), "w") as f:
        json.dump({"files": {"../etc/passwd": {"size": 1, "sha256": "x"}}}, f)
    with pytest.raises(LabError, match="names a file outside the checkpoint: '../etc/passwd'"):
        manifest.verify(d)


def test_host_notes_say_how_the_maker_differs():
    here = manifest.host_facts()
    assert manifest.host_notes(here) == []
    there = {**here, "kernel": "5.15.0-1", "cpuFlags": here["cpuFlags"] + " zz_new_flag"}
    assert manifest.host_notes(there)[0] == f"kernel '5.15.0-1' there, {here['kernel']!r} here"
    assert manifest.host_notes(there)[-1] == "CPU flags this CPU lacks: zz_new_flag"


def sh(script):
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


@pytest.mark.parametrize("python", [manifest.PYTHON, "/nonexistent/python3"], ids=["hashlib", "sha256sum"])
def test_the_check_there_is_sha256_over_this_hosts_manifest(tmp_path, monkeypatch, python):
    # With the lab's Python there, its hashlib; without it, coreutils' sha256sum: either says
    # which file differs as sha256sum -c does.
    monkeypatch.setattr(manifest, "PYTHON", python)
    d = checkpoint(tmp_path / "c", {"pages-1.img": b"p" * 4096, "core-1.img": b"c", "inventory.img": b"i"})
    manifest.write(d)
    ok = sh(manifest.check_there(d))
    assert (ok.returncode, ok.stdout) == (0, "")
    flip(os.path.join(d, "pages-1.img"), 7)
    os.unlink(os.path.join(d, "inventory.img"))
    p = sh(manifest.check_there(d))
    assert p.returncode == manifest.DIFFERS_THERE
    if python != "/nonexistent/python3":  # hashlib's lines only
        assert p.stdout.splitlines() == ["inventory.img: FAILED open or read", "pages-1.img: FAILED"]
    else:  # sha256sum's, its own complaint among them
        assert "sha256sum: inventory.img: No such file or directory" in p.stdout
    e = manifest.refused_there(p.stdout, d, "10.0.1.12")
    assert e.code == NOT_READY
    assert str(e).startswith(f"checkpoint {d} refused on 10.0.1.12: inventory.img is missing; "
                             "pages-1.img changed (sha256)")


def test_hashes_ahead_then_written_there_by_a_shell_line(tmp_path):
    # migrate hashes the images while it copies them, writes the manifest after, and has the
    # restore's own command write it there: the same bytes, readable by root only.
    d = checkpoint(tmp_path / "c", {"pages-1.img": b"p" * 4096, "core-1.img": b"c"}, {"parent": "../0"})
    ahead = manifest.hashes(d)
    assert ahead == {"core-1.img": hashlib.sha256(b"c").hexdigest(),
                     "pages-1.img": hashlib.sha256(b"p" * 4096).hexdigest()}
    manifest.write(d, hashes=ahead)
    path = os.path.join(d, manifest.NAME)
    with open(path) as f:
        here = f.read()
    script = manifest.put_there(d)
    os.unlink(path)  # "there": the images without their manifest
    assert sh(script).returncode == 0
    with open(path) as f:
        assert f.read() == here
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sh(manifest.check_there(d)).returncode == 0


def test_no_check_there_without_a_manifest_here(tmp_path):
    # A lazy migration's images: its pages stay behind, so nothing is listed to check.
    assert manifest.check_there(checkpoint(tmp_path / "c", {"core-1.img": b"c"})) == "true"
