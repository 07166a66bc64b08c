"""migrate.py: the destination flags, the drawing of a migration, and what it reads from /proc
(the modes two hosts can run: test_modes.py)."""
import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import types

import pytest

from criu_lab import common, migrate, pair
from criu_lab.outcome import USAGE, LabError


def flags(to="ubuntu@10.0.1.12", port=22, identity=None, known_hosts=None):
    return argparse.Namespace(to=to, port=port, identity=identity, known_hosts=known_hosts)


@pytest.mark.parametrize("to, user_host", [
    ("ubuntu@10.0.1.12", ("ubuntu", "10.0.1.12")),
    ("root@lab-host.example.com", ("root", "lab-host.example.com")),
    ("_ci.user-1@fe80::1", ("_ci.user-1", "fe80::1")),
])
def test_destination_flags_give_user_and_host(to, user_host):
    assert migrate.check_destination_flags(flags(to)) == user_host


@pytest.mark.parametrize("to", ["10.0.1.12", "ubuntu@", "Ubuntu@host", "ubuntu@-oProxyCommand=x",
                                "ubuntu@host;reboot", "ubuntu@host name", None])
def test_destination_flags_refuse_what_is_not_user_at_host(to):
    with pytest.raises(LabError) as e:
        migrate.check_destination_flags(flags(to))
    assert e.value.code == USAGE
    assert str(e.value) == f"--to '{to}': expected USER@HOST (e.g. ubuntu@10.0.1.12)"


@pytest.mark.parametrize("port", [0, 65536])
def test_destination_flags_refuse_a_port_out_of_range(port):
    with pytest.raises(LabError, match=rf"^--port {port}: expected 1-65535$"):
        migrate.check_destination_flags(flags(port=port))


def test_destination_flags_need_the_key_files_to_exist(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("key")
    assert migrate.check_destination_flags(flags(identity=str(key), known_hosts=str(key))) == ("ubuntu", "10.0.1.12")
    for flag, kw in (("--identity", "identity"), ("--known-hosts", "known_hosts")):
        with pytest.raises(LabError, match=rf"^{flag} {tmp_path}/missing: no such file$") as e:
            migrate.check_destination_flags(flags(**{kw: str(tmp_path / "missing")}))
        assert e.value.code == USAGE
    with pytest.raises(LabError, match=r": no such file$"):  # a directory is no key file
        migrate.check_destination_flags(flags(identity=str(tmp_path)))


def result(**kw):
    r = {"pid": 4242, "destination": "ubuntu@10.0.1.12", "restoredPid": 4242, "mode": "cold", "freezeMs": 100,
         "transferMs": 300, "restoreMs": 0, "downtimeMs": 400.5, "bytesTransferred": 123456, "carried": []}
    return {**r, **kw}


def test_timeline_draws_each_part_to_scale():
    lines = migrate.timeline(result()).split("\n")
    assert lines == [
        "PID 4242 now runs on ubuntu@10.0.1.12 as PID 4242 (cold).",
        "[" + "#" * 10 + "=" * 30 + "+] downtime 400.5 ms",  # a part of 0 ms still shows
        "  # freeze 100 ms, = transfer 300 ms, + restore 0 ms",
        "  123456 bytes sent; carried: nothing",
    ]


def test_timeline_names_the_carried_files_and_the_counts():
    r = result(freezeMs=0, transferMs=0, carried=["/var/log/criu-lab/x", "/tmp/y"], lastBeforeDump=7,
               firstAfterRestore=8)
    lines = migrate.timeline(r).split("\n")
    assert lines[1].startswith("[#=+] ")
    assert lines[3] == "  123456 bytes sent; carried: /var/log/criu-lab/x, /tmp/y"
    assert lines[4] == "  counted 7 here, then 8 there"


def test_timeline_says_what_criu_measured_and_leaves_out_what_it_did_not():
    r = result(criu={"dump": {"frozenTimeUs": 91234, "pagesWritten": 1187}, "restore": {"restoreTimeUs": 4157}})
    assert migrate.timeline(r).split("\n")[4] == "  CRIU's own: frozen 91.2 ms, 1187 pages written, restore 4.2 ms"
    r = result(criu={"dump": {"frozenTimeUs": 91234}, "restore": {}})
    assert migrate.timeline(r).split("\n")[4] == "  CRIU's own: frozen 91.2 ms"
    assert len(migrate.timeline(result(criu={"dump": {}, "restore": {}})).split("\n")) == 4
    # A value crit gave that is no number is left out of the drawing (the JSON keeps it as given).
    r = result(criu={"dump": {"frozenTimeUs": "soon", "pagesWritten": 3}, "restore": {}})
    assert migrate.timeline(r).split("\n")[4] == "  CRIU's own: 3 pages written"
    # A lazy dump's stats are left out (null: common.LAZY_DUMP_STATS); the restore's still said.
    r = result(criu={"dump": None, "restore": {"restoreTimeUs": 4157}, "dumpLeftOut": "why"})
    assert migrate.timeline(r).split("\n")[4] == "  CRIU's own: restore 4.2 ms"


def test_sha256(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"".join(b"line %d\n" % i for i in range(30)))
    assert pair.sha256(str(f)) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_process_files_of_a_detached_process(tmp_path, sleeper):
    out = tmp_path / "out.log"
    with open(out, "w") as f:
        child = sleeper(stdout=f)
    mapped, opened, dirs = pair.process_files(child.pid)
    assert os.path.realpath(subprocess.check_output(["sh", "-c", "command -v sleep"], text=True).strip()) in mapped
    assert all(os.path.isfile(p) for p in mapped)
    assert opened == {str(out): True}  # written to: must not be replaced there
    assert dirs == [str(tmp_path)]


def test_process_files_refuses_a_process_with_a_socket(sleeper):
    with socket.socket() as s:
        child = sleeper(stdout=s.fileno())
    with pytest.raises(LabError, match=rf"^PID {child.pid} has a socket open \(fd 1\)") as e:
        pair.process_files(child.pid)
    assert e.value.code == USAGE


def test_timeline_of_a_lazy_migration_says_when_it_ran_there_and_when_its_pages_were_all_there():
    r = result(mode="lazy", resumeMs=120.0, completeMs=2400.5, downtimeMs=120.0)
    assert "downtime 120.0 ms" in migrate.timeline(r).split("\n")[1]
    assert migrate.timeline(r).split("\n")[4] == (
        "  running there after 120.0 ms; its last page there after 2400.5 ms (until then it needed this host)")
    assert len(migrate.timeline(result(resumeMs=400.5, completeMs=400.5)).split("\n")) == 4  # cold: no such line


def test_timeline_of_a_pre_copy_says_its_rounds_and_why_they_stopped():
    rounds = [{"round": 1, "pages": 3000, "bytes": 3000 * 4096}, {"round": 2, "pages": 20, "bytes": 20 * 4096}]
    lines = migrate.timeline(result(mode="pre-copy", preCopyRounds=rounds, preCopyStop="converged")).split("\n")
    assert lines[4] == "  pre-copy: 2 rounds while it ran (11.8 MiB of pages), stopped: converged"


def migration_in_ram(tmp_path, mode):
    """A Migration whose images and first pre-copy round sit in RAM here and "there" (a fake
    destination that runs its shell here, its paths under THERE), its second round's directory
    just made."""
    here, there = tmp_path / "here", tmp_path / "there"
    remote = types.SimpleNamespace(host="b", target="root@b",
                                   argv=lambda script: ["sh", "-c", script.replace(str(here), str(there))])
    said = []
    m = migrate.Migration(os.getpid(), mode, remote, lambda: None, said.append, run_dir=str(here / "logs" / "migrate-x"))
    m.ram, m.made = str(here / "shm" / "criu-lab-migrate-x"), True
    m.images = os.path.join(m.ram, "images")
    for d in ("images", "pre-1", "pre-2"):
        os.makedirs(os.path.join(m.ram, d))
    with open(os.path.join(m.ram, "pre-1", "pages-1.img"), "wb") as f:
        f.write(b"p" * 4096)
    os.makedirs(m.dir)
    shutil.copytree(here, there, symlinks=True)
    return m, here, there, said


def no_room_in_ram(here):
    """room_for_dump as if RAM here had 10 bytes free and the disk plenty."""
    def room_for_dump(pid, images, pages_elsewhere=False):
        if images.startswith(str(here / "shm")):
            raise common.no_room(pid, images, 100 * 2**20, 10)
        return 100 * 2**20
    return room_for_dump


def test_pre_copy_rounds_that_outgrow_ram_move_to_disk_on_both_ends_and_go_on(tmp_path, monkeypatch):
    m, here, there, said = migration_in_ram(tmp_path, "pre-copy")
    monkeypatch.setattr(migrate, "room_for_dump", no_room_in_ram(here))
    monkeypatch.setattr(migrate, "free_there", lambda remote, path: 2**40)
    ram = m.ram
    d = m.room(os.path.join(ram, "pre-2"))
    assert d == os.path.join(m.dir, "pre-2") and os.path.isdir(d)
    assert m.images == os.path.join(m.dir, "images") and m.ram is None
    for end in (here, there):  # the rounds moved, with their pages, and RAM is empty on both ends
        top = str(end)
        assert os.path.isfile(os.path.join(m.dir, "pre-1", "pages-1.img").replace(str(here), top))
        assert not os.path.exists(ram.replace(str(here), top))
    why = m.r["imagesIn"]["why"]
    assert m.r["imagesIn"]["here"] == m.r["imagesIn"]["there"] == "disk"
    assert why.startswith(f"RAM ran short at pre-2 (no room for the images of PID {os.getpid()} in {ram}/pre-2: "
                          "about 100.0 MiB needed")
    assert why.endswith("free there): moved to disk on both ends")
    assert said == [f"{why} in {m.r['toDiskMs']} ms"]


def test_other_modes_keep_the_refusal_of_a_dump_that_does_not_fit_in_ram(tmp_path, monkeypatch):
    m, here, _, said = migration_in_ram(tmp_path, "cold")
    monkeypatch.setattr(migrate, "room_for_dump", no_room_in_ram(here))
    with pytest.raises(LabError, match="^no room for the images of PID .* nothing was frozen"):
        m.room(m.images)
    assert m.ram and os.path.isdir(m.images) and said == []


def test_checked_runs_after_the_pair_check_passed_and_before_anything_is_frozen(tmp_path, monkeypatch):
    """The migration scenario starts its follower there in CHECKED: before the check, its `tail`
    took the counter's own PID on a twin destination and the check refused (Debian 13 VM pair)."""
    events = []
    remote = types.SimpleNamespace(target="ubuntu@10.0.1.12", host="10.0.1.12", connect=lambda: None)

    def checks(m, say, refuse):
        events.append("pair check")
        if refuse:
            raise LabError(3, "the pair check with 10.0.1.12 refused, nothing was frozen: pid: PID 1208 is taken")
        return {"kernel": "6.12.0", "bootId": "another boot"}, "cold", [], set(), None

    def made(m):
        events.append("make_dirs")
        raise LabError(1, "stopped here: the dump would come next")

    monkeypatch.setattr(migrate, "make_dirs", made)
    for refuse, seen in ((False, ["pair check", "checked", "make_dirs"]), (True, ["pair check"])):
        events.clear()
        monkeypatch.setattr(migrate, "check_pair", lambda m, say: checks(m, say, refuse))
        with pytest.raises(LabError):
            migrate.migrate(os.getpid(), "cold", remote, lambda: None, lambda s: None, run_dir=str(tmp_path / str(refuse)),
                            checked=lambda: events.append("checked"))
        assert events == seen
