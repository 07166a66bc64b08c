"""doctor.py: the verdicts per exercise and the fixes, from a probe result fed in; the parsing
of `criu check --feature`; the network-lock choice; the report."""
import subprocess

import pytest

from criu_lab import doctor
from criu_lab.outcome import BROKEN, NOT_READY, OK, LabError

EXERCISES = ["training-full", "training-incremental", "game", "migration-cold", "migration-page-server",
             "migration-pre-copy", "migration-lazy", "advise", "advise-dirty-rate"]


def probed(check=True, lock="iptables", **missing):
    """A probe result: every feature present except those given as NAME=OUTPUT (uffd_noncoop
    for uffd-noncoop)."""
    features = {name: {"ok": True, "output": ""} for name in doctor.FEATURES}
    for name, output in missing.items():
        features[name.replace("_noncoop", "-noncoop")] = {"ok": False, "output": output}
    return {"criuCheck": {"ok": check, "output": ""}, "criuCheckAll": {"ok": check and not missing, "output": ""},
            "features": features, "networkLock": lock, "link": shaping()}


def shaping(delay=True):
    """link.capabilities() of a host that can shape a rate, and a delay unless DELAY is false."""
    return {"rate": {"ok": True, "output": "tbf added in a throwaway network namespace"},
            "delay": {"ok": True, "output": "netem added in a throwaway network namespace"} if delay else
            {"ok": False, "output": "Error: Specified qdisc kind is unknown.",
             "kernelConfig": "# CONFIG_NET_SCH_NETEM is not set"}}


def failing(verdicts):
    return {name: v for name, v in verdicts.items() if not v["ok"]}


def test_every_exercise_runs_on_a_complete_host():
    v = doctor.verdicts(probed())
    assert list(v) == EXERCISES
    assert all(x == {"ok": True, "reason": ""} for x in v.values())
    assert doctor.fix_keys(probed()) == []


def test_a_failing_criu_check_stops_every_exercise():
    v = doctor.verdicts(probed(check=False, lock=None, mem_dirty_track="Dirty tracking is OFF"))
    assert list(failing(v)) == EXERCISES
    # The first reason is the one that matters: nothing runs without `criu check`.
    assert {x["reason"] for x in v.values()} == {"`criu check` fails"}
    assert {x["fix"] for x in v.values()} == {doctor.FIXES["criuCheck"]}


def test_no_dirty_tracking_stops_the_incremental_exercises_only():
    v = doctor.verdicts(probed(mem_dirty_track="Dirty tracking is OFF"))
    assert list(failing(v)) == ["training-incremental", "migration-pre-copy", "advise-dirty-rate"]
    assert v["training-incremental"] == {
        "ok": False, "fix": doctor.FIXES["mem_dirty_track"],
        "reason": "no dirty-page tracking (`criu check --feature mem_dirty_track`: Dirty tracking is OFF)"}
    assert doctor.fix_keys(probed(mem_dirty_track="off")) == ["mem_dirty_track"]


def test_no_network_lock_stops_the_game_only():
    r = probed(lock=None)
    v = doctor.verdicts(r)
    assert list(failing(v)) == ["game"]
    assert v["game"]["reason"] == "no network-lock backend for --tcp-established"
    assert v["game"]["fix"] == doctor.FIXES["networkLock"]
    assert doctor.fix_keys(r) == ["networkLock"]


@pytest.mark.parametrize("missing", [{"uffd": "no uffd"}, {"uffd_noncoop": "no events"}])
def test_lazy_migration_needs_both_userfaultfd_features(missing):
    v = doctor.verdicts(probed(**missing))
    assert list(failing(v)) == ["migration-lazy"]
    assert v["migration-lazy"]["fix"] == doctor.FIXES["uffd"]


def test_fix_keys_name_each_missing_part_once_in_order():
    r = probed(check=False, lock=None, mem_dirty_track="", uffd="", uffd_noncoop="")
    assert doctor.fix_keys(r) == ["criuCheck", "mem_dirty_track", "uffd", "uffd-noncoop", "networkLock"]
    assert all(k in doctor.FIXES for k in doctor.fix_keys(r))


def completed(returncode=0, stdout="", stderr=""):
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


def test_feature_keeps_criu_last_words_without_their_prefix(monkeypatch):
    # CRIU's warning about hardware breakpoints may come last: it is no answer about the feature.
    said = ("Error (criu/cr-check.c:1637): Dirty tracking is OFF. Memory snapshot will not work.\n"
            "Warn  (criu/kerndat.c:1270): Hardware breakpoints appear to be disabled\n")
    monkeypatch.setattr(doctor, "run", lambda cmd, timeout=120: completed(1, "", said))
    assert doctor.feature("mem_dirty_track") == (False, "Dirty tracking is OFF. Memory snapshot will not work.")
    monkeypatch.setattr(doctor, "run", lambda cmd, timeout=120: completed(0, "uffd is supported\n"))
    assert doctor.feature("uffd") == (True, "uffd is supported")
    monkeypatch.setattr(doctor, "run", lambda cmd, timeout=120: completed(0))
    assert doctor.feature("uffd") == (True, "")


@pytest.mark.parametrize("binaries, nftables, lock", [
    ({"iptables-restore"}, False, "iptables"),
    ({"iptables-legacy-restore"}, True, "iptables"),
    (set(), True, "nftables"),
    (set(), False, None),
])
def test_network_lock_prefers_iptables_then_nftables(monkeypatch, binaries, nftables, lock):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/sbin/{name}" if name in binaries else None)
    assert doctor.network_lock({"network_lock_nftables": {"ok": nftables}}) == lock


def test_require_names_the_exercise_its_reason_and_fix(monkeypatch):
    r = probed(mem_dirty_track="Dirty tracking is OFF")
    r["exercises"] = doctor.verdicts(r)
    monkeypatch.setattr(doctor, "probe", lambda: r)
    assert doctor.require("training-full", "migration-cold") is r
    with pytest.raises(LabError) as e:
        doctor.require("training-full", "training-incremental")
    assert e.value.code == BROKEN
    assert str(e.value) == ("training-incremental cannot run on this host: no dirty-page tracking (`criu check "
                            "--feature mem_dirty_track`: Dirty tracking is OFF); " + doctor.FIXES["mem_dirty_track"]
                            + " (see `sudo criu-lab doctor`)")


def fake_host(monkeypatch, free, said, delay=True):
    """A host for probe(): root, CRIU answering from SAID ({argv suffix: CompletedProcess}),
    FREE bytes for the images, netem unless DELAY is false."""
    monkeypatch.setattr(doctor.link, "capabilities", lambda: shaping(delay))
    monkeypatch.setattr(doctor, "ready", lambda what: None)
    monkeypatch.setattr(doctor, "base", lambda: {"ok": False, "criuVersion": "4.1.1", "kernel": "6.1.0"})
    monkeypatch.setattr(doctor, "run", lambda cmd, timeout=120: said.get(" ".join(cmd[1:]), completed(0, "ok")))
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    monkeypatch.setattr(doctor, "disk", lambda: {"dir": "/var/log/criu-lab", "usedBytes": 0, "runs": 0,
                                                 "runBytes": {}, "freeBytes": free, "totalBytes": 2**34})


def test_probe_gathers_the_verdicts_and_fixes(monkeypatch):
    fake_host(monkeypatch, 2**33, {
        "check --all": completed(1, "", "Error (criu/cr-check.c:1): UFFD is not supported\n"),
        "check --feature uffd-noncoop": completed(1, "", "Error (criu/cr-check.c:1): UFFD is not supported\n"),
    })
    r = doctor.probe()
    assert r["ok"] is True
    assert r["criuCheck"]["ok"] is True and r["criuCheckAll"]["ok"] is False
    assert r["features"]["uffd-noncoop"] == {"ok": False, "output": "UFFD is not supported"}
    assert r["networkLock"] == "nftables"  # no iptables binary, and CRIU has nftables
    assert r["archiveCodec"] == "gzip"  # no zstd binary either
    assert list(failing(r["exercises"])) == ["migration-lazy"]
    assert r["fixes"] == [doctor.FIXES["uffd-noncoop"]]


def test_probe_says_how_to_make_room_when_disk_is_low(monkeypatch):
    fake_host(monkeypatch, doctor.LOW_DISK - 1, {})
    r = doctor.probe()
    assert r["fixes"] == ["only 1024.0 MiB free for the images in /var/log/criu-lab: `sudo criu-lab clean` (or "
                          "`clean --all`) removes the runs not kept"]
    fake_host(monkeypatch, doctor.LOW_DISK, {})
    assert doctor.probe()["fixes"] == []


def test_probe_says_when_the_kernel_cannot_delay(monkeypatch):
    fake_host(monkeypatch, 2**33, {}, delay=False)
    r = doctor.probe()
    assert r["ok"] is True and not failing(r["exercises"])  # no exercise needs a delay
    assert r["link"]["delay"]["ok"] is False
    assert r["fixes"] == [doctor.FIXES["netem"]]


def test_the_report_lists_features_exercises_and_fixes(monkeypatch):
    r = {**probed(lock=None, mem_dirty_track="Dirty tracking is OFF"), "criuVersion": "4.1.1", "kernel": "6.1.0",
         "archiveCodec": "gzip",
         "sysctls": {"vm.unprivileged_userfaultfd": "0", "kernel.apparmor_restrict_unprivileged_userns": None},
         "disk": {"dir": "/var/log/criu-lab", "usedBytes": 0, "runs": 0, "runBytes": {}, "freeBytes": 2**33,
                  "totalBytes": 2**34}, "ok": True}
    r["exercises"] = doctor.verdicts(r)
    r["fixes"] = [doctor.FIXES[k] for k in doctor.fix_keys(r)]
    monkeypatch.setattr(doctor, "probe", lambda: r)
    code, result, text = doctor.cmd_doctor(None)
    lines = text.split("\n")
    assert code == OK and result is r
    assert lines[0].startswith("CRIU 4.1.1, kernel 6.1.0 (")
    assert lines[0].endswith("criu check: passed, criu check --all: some optional features missing")
    assert "  mem_dirty_track         NO   Dirty tracking is OFF" in lines
    assert "  network lock            NONE (neither iptables nor nftables)" in lines
    assert "  vm.unprivileged_userfaultfd = 0" in lines
    assert "  checkpoint archives     gzip (zstd packs faster and smaller: sudo apt-get install zstd)" in lines
    assert not any("apparmor" in line for line in lines)  # not on this kernel: not shown
    assert "  game                    no   no network-lock backend for --tcp-established" in lines
    assert "  training-full           yes  " in lines
    assert "  link rate               yes  tbf added in a throwaway network namespace" in lines
    assert "  link delay/loss         yes  netem added in a throwaway network namespace" in lines
    assert lines[lines.index("To fix what is missing:") + 1:] == [
        f"  - {doctor.FIXES['mem_dirty_track']}", f"  - {doctor.FIXES['networkLock']}"]


def test_the_report_fails_with_criu_check(monkeypatch):
    r = {**probed(check=False), "criuVersion": "4.1.1", "kernel": "6.1.0", "sysctls": {}, "ok": False,
         "disk": {"dir": "/l", "usedBytes": 0, "runs": 0, "runBytes": {}, "freeBytes": 2**33, "totalBytes": 2**34}}
    r["exercises"], r["fixes"] = doctor.verdicts(r), [doctor.FIXES["criuCheck"]]
    monkeypatch.setattr(doctor, "probe", lambda: r)
    code, result, text = doctor.cmd_doctor(None)
    assert code == BROKEN and result["error"] == "criu check failed"
    assert "criu check: FAILED" in text


def test_the_report_of_a_host_without_criu(monkeypatch):
    def probe():
        raise LabError(NOT_READY, "CRIU is not installed at /usr/local/sbin/criu")
    monkeypatch.setattr(doctor, "probe", probe)
    monkeypatch.setattr(doctor, "base", lambda: {"ok": False, "criuVersion": "", "kernel": "6.1.0"})
    code, result, text = doctor.cmd_doctor(None)
    assert code == NOT_READY
    assert result == {"ok": False, "criuVersion": "", "kernel": "6.1.0",
                      "error": "CRIU is not installed at /usr/local/sbin/criu"}
    assert text == "criu-lab doctor: CRIU is not installed at /usr/local/sbin/criu"
