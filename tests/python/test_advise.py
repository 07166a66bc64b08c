"""advise.py: the mode advisor's parsing of /proc, its model of each mode's downtime, its pick,
and its measuring where it runs without root (this process's memory; the link's timing
through a local shell standing in for the SSH command)."""
import os
import subprocess

import pytest

from criu_lab import advise, doctor, modes
from criu_lab.outcome import BROKEN, LabError

MIB = advise.MIB
NO_TRACKING = (False, "Dirty tracking is OFF. Memory snapshot will not work.")
TRACKS = (True, "")
NET = {"rttMs": 10.0, "bytesPerSec": 100 * MIB, "probeBytes": 8 * MIB, "probeMs": 90.0}
COST = {"dumpFixedMs": 50, "dumpMiBs": 1000, "restoreFixedMs": 100, "restoreMiBs": 500, "hashMiBs": 400}


def test_kib_fields_of_status_and_smaps_rollup():
    status = "Name:\tpython3\nVmHWM:\t  40000 kB\nVmRSS:\t   38512 kB\nRssAnon:\t 30000 kB\n"
    assert advise.kib_field(status, "VmRSS") == 38512 * 1024
    assert advise.kib_field(status, "VmSwap") == 0
    # "Anonymous" is not "AnonHugePages" nor a prefix of another field.
    rollup = "Rss:  10 kB\nAnonymous:  300 kB\nAnonHugePages:  2048 kB\nPss_Shmem:  4 kB\nSwap:  8 kB\n"
    assert advise.kib_field(rollup, "Anonymous") == 300 * 1024


def test_memory_of_a_process_counts_what_it_holds():
    before = advise.memory(os.getpid())
    held = bytearray(os.urandom(32 * MIB))
    after = advise.memory(os.getpid())
    assert after["rssBytes"] >= after["pagesBytes"] > 0
    assert after["pagesBytes"] - before["pagesBytes"] >= 30 * MIB
    assert len(held) == 32 * MIB


def test_writable_ranges_of_maps():
    maps = ("55d0c0000000-55d0c0021000 r--p 00000000 08:01 131 /usr/bin/python3.13\n"
            "55d0c2000000-55d0c2003000 rw-p 00000000 00:00 0 [heap]\n"
            "7f0000000000-7f0000100000 rw-s 00000000 00:01 9 /dev/zero (deleted)\n"
            "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
            "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n")
    assert advise.writable_ranges(maps) == [(0x55d0c2000000, 0x55d0c2003000), (0x7f0000000000, 0x7f0000100000),
                                            (0x7ffd00000000, 0x7ffd00021000)]


def test_soft_dirty_pages_are_present_or_swapped_and_bit_55():
    sd, present, swapped = advise.SOFT_DIRTY, advise.PRESENT, advise.SWAPPED
    entries = [present | sd | 1234, present | 99, swapped | sd, sd, 0, present | sd]
    assert advise.soft_dirty_pages(entries) == 3


def test_the_dirty_rate_says_plainly_when_the_kernel_cannot_track(monkeypatch):
    touched = []
    monkeypatch.setattr(advise, "process_tree", lambda pid: touched.append(pid) or [pid])
    said = advise.dirty_rate(os.getpid(), 0.1, NO_TRACKING)
    assert said == {"ok": False, "why": "cannot measure the dirty rate: this kernel has no soft-dirty page tracking "
                                        "(`criu check --feature mem_dirty_track`: Dirty tracking is OFF. Memory "
                                        "snapshot will not work.)"}
    assert touched == []  # nothing written to clear_refs


class LocalShell:
    """A Remote whose commands run here (sh -c), timed as the SSH ones are."""
    host, target = "localhost", "root@localhost"

    def argv(self, script):
        return ["sh", "-c", script]

    def must(self, script, what):
        p = subprocess.run(self.argv(script), capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError(BROKEN, f"{what} exited {p.returncode}")
        return p.stdout

    def raise_if_unreachable(self, p):
        pass


def test_link_times_round_trips_and_probes_sent_to_dev_null():
    net = advise.link(LocalShell(), 4 * MIB)
    assert net["probeBytes"] == 4 * MIB and net["probeMs"] > 0 and net["rttMs"] > 0
    # Three runs in one command, each timed to the command's word that it has them all; the
    # fastest counts: the shell's start is in rttMs, not in the rate.
    assert len(net["probeRunsMs"]) == 3 and net["probeMs"] == min(net["probeRunsMs"])
    assert net["bytesPerSec"] == pytest.approx(4 * MIB * 1000 / net["probeMs"], rel=0.01)


def test_link_names_a_probe_that_failed_or_hung(monkeypatch):
    class Failing(LocalShell):
        def argv(self, script):
            return ["sh", "-c", "echo ready; head -c 10 >/dev/null; echo no room >&2; exit 1"
                    if "dev/null" in script else script]
    with pytest.raises(OSError, match="sending 1.0 MiB to localhost failed: no room"):
        advise.link(Failing(), MIB)

    class Silent(LocalShell):
        def argv(self, script):
            return ["sh", "-c", "exit 0" if "dev/null" in script else script]
    with pytest.raises(OSError, match="sending 1.0 MiB to localhost failed: no answer"):
        advise.link(Silent(), MIB)

    class Stuck(LocalShell):
        def argv(self, script):
            return ["sh", "-c", "echo ready; exec sleep 60" if "dev/null" in script else script]
    monkeypatch.setattr(advise, "PROBE_TIMEOUT_S", 0.5)
    with pytest.raises(OSError, match="sending 1.0 MiB to localhost failed"):
        advise.link(Stuck(), MIB)


def test_the_model_of_each_mode():
    p = advise.predict(256 * MIB, {"ok": False, "why": "no tracking"}, NET, COST)
    # cold: dump 50 + 256 | 10 + 2560, the hashing's 640 beside it | 10 + hash 640 there + 100 + 512;
    # the room check's 10.
    assert p["cold"]["stages"] == {"freezeMs": 306.0, "transferMs": 2570.0, "restoreMs": 1262.0, "otherMs": 10.0}
    assert p["cold"]["downtimeMs"] == 4148.0
    # On a link faster than the hashing, the copy waits for the hashes: 10 + 640, not 10 + 256.
    fast = advise.predict(256 * MIB, {"ok": False, "why": ""}, {**NET, "bytesPerSec": 1000 * MIB}, COST)
    assert fast["cold"]["stages"]["transferMs"] == 650.0
    # page-server: the dump waits on the link (50 + 2560 > 50 + 256); no hashing of the pages.
    assert p["page-server"]["stages"] == {"freezeMs": 2610.0, "transferMs": 10.0, "restoreMs": 622.0, "otherMs": 10.0}
    # lazy: no pages in the freeze; they follow at the link's rate.
    assert p["lazy"] == {"downtimeMs": 180.0, "pagesFollowMs": 2560.0,
                         "stages": {"freezeMs": 50, "transferMs": 20.0, "restoreMs": 110.0, "otherMs": 0}}
    assert p["pre-copy"] == {"why": "no prediction without a dirty rate (no tracking)"}


@pytest.mark.parametrize("mib", [1, 64, 1024])
@pytest.mark.parametrize("link_mib", [10, 1000])
def test_page_server_is_never_predicted_longer_than_cold(mib, link_mib):
    p = advise.predict(mib * MIB, {"ok": False, "why": ""}, {**NET, "bytesPerSec": link_mib * MIB}, COST)
    assert p["page-server"]["downtimeMs"] <= p["cold"]["downtimeMs"]


def test_pre_copy_rounds_stop_as_the_migration_stops_them():
    def dump(b):
        return 50 + b * 1000 / (1000 * MIB)

    def send(b):
        return b * 1000 / (100 * MIB)
    # A process that writes nothing: round 2 finds nothing dirty (converged), the final dump has nothing.
    assert advise.precopy_rounds(256 * MIB, 0, dump, send) == (2, 0)
    # Dirtying 10 MiB/s: round 1 takes 2.87 s (28.7 MiB dirtied meanwhile), round 2 0.37 s (3.7
    # MiB, under 5 % of round 1: converged after round 3), the final dump about 0.9 MiB.
    n, final = advise.precopy_rounds(256 * MIB, 10 * MIB, dump, send)
    assert n == 3 and 0.85 * MIB < final < 0.95 * MIB
    # Faster than the link: every round as large as the memory, not shrinking after round 2.
    assert advise.precopy_rounds(256 * MIB, 1000 * MIB, dump, send) == (2, 256 * MIB)


def test_pre_copy_is_predicted_with_a_dirty_rate():
    slow = advise.predict(256 * MIB, {"ok": True, "bytesPerSec": 10 * MIB}, NET, COST)["pre-copy"]
    assert slow["rounds"] == 3 and slow["downtimeMs"] < 1000
    # Its restore is of the whole memory: the final dump's pages land on the rounds' ones.
    assert slow["stages"]["restoreMs"] > 100 + 512


def unsupported(precopy=None, lazy="lazy needs a second kernel"):
    return {"pre-copy": precopy, "page-server": None, "cold": None, "lazy": lazy}


def test_auto_picks_the_shortest_prediction_and_never_lazy():
    p = advise.predict(256 * MIB, {"ok": True, "bytesPerSec": 10 * MIB}, NET, COST)
    assert p["lazy"]["downtimeMs"] < p["pre-copy"]["downtimeMs"]
    assert advise.choose(p, unsupported(lazy=None)) == ("pre-copy", [])


def test_auto_passes_over_pre_copy_when_it_cannot_run_or_is_predicted_longer():
    no_rate = advise.predict(256 * MIB, {"ok": False, "why": "cannot measure"}, NET, COST)
    why = "pre-copy needs memory dirty tracking"
    assert advise.choose(no_rate, unsupported(precopy=why)) == ("page-server", [{"mode": "pre-copy", "why": why}])
    # Where it could run but no rate was measured: its prediction's why.
    assert advise.choose(no_rate, unsupported())[1][0]["why"].startswith("no prediction without a dirty rate")
    fast = advise.predict(256 * MIB, {"ok": True, "bytesPerSec": 1000 * MIB}, NET, COST)
    pick, passed = advise.choose(fast, unsupported())
    assert pick == "page-server"
    assert passed == [{"mode": "pre-copy", "why": f"predicted {fast['pre-copy']['downtimeMs']:.0f} ms, more than "
                                                  f"page-server's {fast['page-server']['downtimeMs']:.0f} ms"}]


def test_a_tie_goes_to_the_mode_first_in_auto_order():
    same = {m: {"downtimeMs": 100.0} for m in modes.MODES}
    assert advise.choose(same, unsupported(lazy=None)) == ("pre-copy", [])


def test_advise_reads_the_modes_and_the_doctor_and_says_it_all(monkeypatch):
    asked = []

    def run(cmd, timeout=120):
        asked.append(cmd[1:])
        return subprocess.CompletedProcess(cmd, 1, "", "Dirty tracking is OFF.")
    monkeypatch.setattr(doctor, "run", run)
    held = bytearray(os.urandom(16 * MIB))
    dest = {"bootId": "another-boot", "features": {"uffd": {"ok": True}, "uffd-noncoop": {"ok": True}}}
    said = []
    a = advise.advise(os.getpid(), LocalShell(), dest, probe_bytes=MIB, window=0.1, say=said.append)
    assert a["pick"] == "page-server" and [p["mode"] for p in a["passedOver"]] == ["pre-copy"]
    assert a["predictions"]["lazy"]["ok"] is True and a["predictions"]["pre-copy"]["ok"] is False
    assert a["measurements"]["memory"]["pagesBytes"] >= len(held)
    assert a["measurements"]["dirty"]["ok"] is False and a["model"] == advise.COST
    text = said[0]
    assert "dirty rate: cannot measure the dirty rate: this kernel has no soft-dirty" in text
    assert "\n  lazy         " in text and "--mode auto never picks lazy" in text
    assert "\npick: page-server; passed over pre-copy: pre-copy needs memory dirty tracking" in text
    assert ["check", "--feature", "mem_dirty_track"] in asked
