"""criu_stats: CRIU's own timings and page counts from a dump's stats-dump and a restore's
stats-restore. The files in fixtures/ are a real dump's and restore's (CRIU 4.x, a `sleep`),
decoded here by the real crit when it is installed, and as crit printed them otherwise."""
import json
import os
import shutil
import subprocess

import pytest

from criu_lab import common, remote
from criu_lab.outcome import BROKEN, LabError

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# `crit show` of the files in fixtures/, as it printed them.
DUMP = [{"dump": {"freezing_time": 144, "frozen_time": 9854, "memdump_time": 729, "memwrite_time": 156,
                  "pages_scanned": 56, "pages_skipped_parent": 0, "pages_written": 29, "irmap_resolve": 0,
                  "pages_lazy": 0, "page_pipes": 6, "page_pipe_bufs": 6, "shpages_scanned": 0,
                  "shpages_skipped_parent": 0, "shpages_written": 0}}]
RESTORE = [{"restore": {"pages_compared": 0, "pages_skipped_cow": 0, "forking_time": 3, "restore_time": 4157,
                        "pages_restored": 29}}]
DUMP_STATS = {"freezingTimeUs": 144, "frozenTimeUs": 9854, "memdumpTimeUs": 729, "memwriteTimeUs": 156,
              "pagesScanned": 56, "pagesWritten": 29, "pagesSkippedParent": 0, "pagesLazy": 0}
RESTORE_STATS = {"forkingTimeUs": 3, "restoreTimeUs": 4157, "pagesRestored": 29}


def images(tmp_path, *names):
    """An images directory holding the fixtures NAMES."""
    for name in names:
        shutil.copy(os.path.join(FIXTURES, name), tmp_path / name)
    return str(tmp_path)


@pytest.fixture
def fake_crit(monkeypatch):
    """crit_show answering with what the real crit printed for the fixtures."""
    printed = {"stats-dump": DUMP, "stats-restore": RESTORE}
    monkeypatch.setattr(common, "crit_show", lambda path: printed[os.path.basename(path)])


def test_dump_and_restore_stats_renamed_in_us(tmp_path, fake_crit):
    assert common.criu_stats(images(tmp_path, "stats-dump", "stats-restore")) == {**DUMP_STATS, **RESTORE_STATS}


def test_only_the_files_that_are_there(tmp_path, fake_crit):
    assert common.criu_stats(images(tmp_path, "stats-dump")) == DUMP_STATS
    (tmp_path / "restored").mkdir()
    assert common.criu_stats(images(tmp_path / "restored", "stats-restore")) == RESTORE_STATS
    assert common.criu_stats(str(tmp_path / "nowhere")) == {}


def test_fields_this_criu_does_not_write_are_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "crit_show", lambda path: [{"dump": {"frozen_time": 12, "pages_written": "x"}}])
    # Values pass as crit gives them (the commands' own checks judge them); absent ones are left out.
    assert common.criu_stats(images(tmp_path, "stats-dump")) == {"frozenTimeUs": 12, "pagesWritten": "x"}
    for entries in ([], [{}], [{"restore": {}}], [{"dump": None}], ["dump"]):
        monkeypatch.setattr(common, "crit_show", lambda path: entries)
        assert common.criu_stats(str(tmp_path)) == {}


def test_a_file_crit_cannot_read_gives_no_stats(tmp_path, monkeypatch):
    def fails(path):
        raise LabError(BROKEN, f"crit show {path} failed: bad magic")
    monkeypatch.setattr(common, "crit_show", fails)
    assert common.criu_stats(images(tmp_path, "stats-dump", "stats-restore")) == {}


def test_the_real_crit_reads_the_fixtures_so(tmp_path):
    if not os.access(common.CRIT, os.X_OK):
        reason = f"crit is not installed at {common.CRIT} (sudo npm run setup:host)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert common.crit_show(os.path.join(FIXTURES, "stats-dump")) == DUMP
    assert common.crit_show(os.path.join(FIXTURES, "stats-restore")) == RESTORE
    assert common.criu_stats(images(tmp_path, "stats-dump", "stats-restore")) == {**DUMP_STATS, **RESTORE_STATS}


class There:
    """A destination whose `crit show` exits CODE printing OUT, or cannot be reached."""

    def __init__(self, code=0, out="", unreachable=False):
        self.code, self.out, self.unreachable, self.scripts = code, out, unreachable, []

    def run(self, script, timeout=120):
        self.scripts.append(script)
        if self.unreachable:
            raise LabError(BROKEN, "cannot reach the destination")
        return subprocess.CompletedProcess(script, self.code, self.out, "")


def test_restore_stats_read_on_the_destination():
    there = There(out=json.dumps({"magic": "STATS", "entries": RESTORE}))
    assert remote.criu_stats_there(there, "/var/log/criu-lab/migrate-x/images") == RESTORE_STATS
    assert there.scripts == [f"{common.CRIT} show /var/log/criu-lab/migrate-x/images/stats-restore"]


@pytest.mark.parametrize("there", [There(code=1), There(out="not json"), There(out="[]"), There(unreachable=True)])
def test_no_restore_stats_there_gives_none(there):
    assert remote.criu_stats_there(there, "/images") == {}


def test_frozen_us_is_the_dump_s_frozen_time(tmp_path, fake_crit):
    assert common.frozen_us(images(tmp_path, "stats-dump")) == 9854


def test_frozen_us_names_the_file_when_there_is_none(tmp_path, fake_crit):
    with pytest.raises(LabError) as e:
        common.frozen_us(images(tmp_path, "stats-restore"))
    assert e.value.code == BROKEN
    assert f"{tmp_path}/stats-dump" in str(e.value)


def test_a_lazy_dump_s_stats_are_left_out_with_the_reason(tmp_path, fake_crit):
    # CRIU's lazy page server resets the dump's stats before they are written (common.LAZY_DUMP_STATS):
    # as the VM pair saw them, a frozen time of 1000 s and zeros for a dump that froze and scanned.
    assert common.dump_stats("lazy", {"frozenTimeUs": 1000359400, "freezingTimeUs": 0, "pagesLazy": 0}) is None
    assert "init_stats" in common.LAZY_DUMP_STATS
    for mode in ("cold", "page-server", "pre-copy"):
        assert common.dump_stats(mode, common.criu_stats(images(tmp_path, "stats-dump"))) == DUMP_STATS
