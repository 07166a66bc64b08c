"""modes.py: one table of what each migration mode needs, read from the doctor's verdicts;
what `--mode auto` chooses from (test_advise.py: how); and the destination's probe that
answers for the lazy mode."""
import subprocess

import pytest

from criu_lab import doctor, modes, remote
from criu_lab.outcome import NOT_READY, LabError

MIGRATION_VERDICTS = [e for e in doctor.EXERCISES if e.startswith("migration-")]


def boot_id():
    with open(modes.BOOT_ID) as f:
        return f.read().strip()


def dest(boot="another-boot", **features):
    """A destination's probe: its boot id and the features asked there (NAME=ok)."""
    return {"bootId": boot, "features": {n.replace("_", "-"): {"ok": ok, "output": ""} for n, ok in features.items()}}


def dirty_tracking(monkeypatch, works):
    """`criu check --feature` here answers yes (for every feature) when WORKS; returns what was asked."""
    asked = []

    def run(cmd, timeout=120):
        asked.append(cmd[1:])
        return subprocess.CompletedProcess(cmd, 0 if works else 1, "", "" if works else "Dirty tracking is OFF.")
    monkeypatch.setattr(doctor, "run", run)
    return asked


def test_every_mode_names_a_verdict_of_the_doctor_and_every_migration_verdict_a_mode():
    assert sorted(m["verdict"] for m in modes.MODES.values()) == sorted(MIGRATION_VERDICTS)
    assert [f"migration-{m}" for m in modes.MODES] == [m["verdict"] for m in modes.MODES.values()]
    assert {m["on"] for m in modes.MODES.values()} == {"source", "destination"}
    assert modes.MODE_CHOICES == ("cold", "page-server", "pre-copy", "lazy", "auto")
    assert set(modes.AUTO_ORDER) < set(modes.MODES) and "lazy" not in modes.AUTO_ORDER


@pytest.mark.parametrize("mode", ["cold", "page-server"])
def test_cold_and_page_server_run_anywhere_and_ask_nothing(monkeypatch, mode):
    asked = dirty_tracking(monkeypatch, False)
    assert modes.mode_unsupported(mode, dest(boot_id())) is None
    assert asked == []


def test_pre_copy_needs_dirty_tracking_here(monkeypatch):
    asked = dirty_tracking(monkeypatch, False)
    why = modes.mode_unsupported("pre-copy", dest())
    assert why == ("pre-copy needs memory dirty tracking (soft-dirty bits), and this host's kernel (the source's) "
                   "has none (`criu check --feature mem_dirty_track`: Dirty tracking is OFF)")
    # The source's kernel decides: the pre-dump rounds run there. Only its feature is asked.
    assert asked == [["check", "--feature", "mem_dirty_track"]]
    dirty_tracking(monkeypatch, True)
    assert modes.mode_unsupported("pre-copy", dest()) is None


def test_lazy_needs_a_second_kernel_with_userfaultfd_there(monkeypatch):
    asked = dirty_tracking(monkeypatch, False)
    same = modes.mode_unsupported("lazy", dest(boot_id(), uffd=True, uffd_noncoop=True))
    assert same.startswith("lazy needs a second kernel: the source and the destination share this kernel")
    for features in ({"uffd": True, "uffd_noncoop": False}, {"uffd": False, "uffd_noncoop": True}):
        assert modes.mode_unsupported("lazy", dest(**features)) == (
            "lazy needs userfaultfd on the destination (`criu check --feature uffd-noncoop` fails there)")
    assert modes.mode_unsupported("lazy", dest(uffd=True, uffd_noncoop=True)) is None
    assert asked == []  # the destination's features, not this host's


def test_the_destination_is_asked_what_the_modes_verdicts_need_there():
    assert modes.destination_features("lazy") == ["uffd", "uffd-noncoop"]
    # auto: every mode's, as the advisor says of each whether it can run (lazy included).
    assert modes.destination_features("auto") == ["uffd", "uffd-noncoop"]
    for mode in ("cold", "page-server", "pre-copy"):
        assert modes.destination_features(mode) == []


def test_a_need_added_to_the_doctor_reaches_the_mode(monkeypatch):
    # The table holds no needs of its own: what the doctor's verdict needs, the mode needs.
    monkeypatch.setitem(doctor.EXERCISES, "migration-cold", ("dirty",))
    dirty_tracking(monkeypatch, False)
    assert modes.mode_unsupported("cold", dest()) == (
        "cold needs what the doctor's migration-cold needs: no dirty-page tracking (`criu check --feature "
        "mem_dirty_track`: Dirty tracking is OFF.)")


class FakeRemote:
    """A destination that answers the probe's script with STDOUT (and records the script)."""
    host, user = "10.0.1.12", "ubuntu"

    def __init__(self, stdout, returncode=0, stderr=""):
        self.said, self.scripts = subprocess.CompletedProcess([], returncode, stdout, stderr), []

    def run(self, script, timeout=120):
        self.scripts.append(script)
        return self.said


def test_probe_reads_the_destination_and_each_feature_asked():
    there = FakeRemote("b00t\n6.12.0-1\n4.2\nyes\nno\n")
    assert remote.probe(there, ["uffd", "uffd-noncoop"]) == {
        "bootId": "b00t", "kernel": "6.12.0-1", "criuVersion": "4.2",
        "features": {"uffd": {"ok": True, "output": ""}, "uffd-noncoop": {"ok": False, "output": ""}},
        "sections": {}}
    assert "check --feature uffd >/dev/null" in there.scripts[0]
    assert "check --feature uffd-noncoop >/dev/null" in there.scripts[0]
    plain = FakeRemote("b00t\n6.12.0-1\n4.2\n")
    assert remote.probe(plain)["features"] == {}
    assert "--feature" not in plain.scripts[0]


def test_probe_asks_its_sections_in_the_same_round_trip_each_answer_by_name():
    there = FakeRemote("b00t\n6.12.0-1\n4.2\nyes\n@@criu-lab@@flags\nfpu sse2 avx\n@@criu-lab@@pid\nfree\n"
                       "@@criu-lab@@files\nmissing\ndir:700\n")
    got = remote.probe(there, ["uffd"], [("flags", "cat /proc/cpuinfo"), ("pid", "echo free"), ("files", "true")])
    assert got["features"] == {"uffd": {"ok": True, "output": ""}}
    assert got["sections"] == {"flags": "fpu sse2 avx", "pid": "free", "files": "missing\ndir:700\n"}
    assert len(there.scripts) == 1
    assert "; echo @@criu-lab@@pid; { echo free; } 2>&1" in there.scripts[0]


def test_probe_refuses_a_destination_without_criu_or_sudo():
    with pytest.raises(LabError, match=r"^CRIU is not installed at .* on 10\.0\.1\.12 \(no version\)$") as e:
        remote.probe(FakeRemote("b00t\n6.12.0-1\n\n"))
    assert e.value.code == NOT_READY
    with pytest.raises(LabError, match=r"^ubuntu cannot run sudo without a password on 10\.0\.1\.12$") as e:
        remote.probe(FakeRemote("", 1, "sudo: a password is required\n"))
    assert e.value.code == NOT_READY


def test_same_kernel_is_this_boot_id_only():
    with open(modes.BOOT_ID) as f:
        boot = f.read().strip()
    assert modes.same_kernel({"bootId": boot})
    assert not modes.same_kernel({"bootId": "00000000-0000-0000-0000-000000000000"})
