"""precopy.py: when pre-copy's rounds stop (converged, not shrinking, round limit), when the process
dirties memory faster than the link carries it, and the loop that reports each round."""
import os

from criu_lab import manifest, precopy

MiB = 2**20


def rounds(*sizes, since=1000, copy=100, sent=None):
    """Rounds of SIZES MiB dirty, each SINCE ms after the one before, copied in COPY ms
    (SENT bytes: the size, unless given)."""
    return [{"round": i + 1, "bytes": s * MiB, "sinceMs": since if i else None, "copyMs": copy,
             "sentBytes": sent if sent is not None else s * MiB} for i, s in enumerate(sizes)]


def test_goes_on_while_the_rounds_shrink():
    assert precopy.verdict(rounds(100)) == (None, None, None)
    assert precopy.verdict(rounds(100, 40)) == (None, None, None)


def test_converges_at_1_mib_or_5_percent_of_the_first_round():
    stop, why, slow = precopy.verdict(rounds(100, 20, 1))
    assert (stop, slow) == ("converged", None)
    assert why == "round 3 found 1.0 MiB dirty, at most 1.0 MiB or 5% of round 1's 100.0 MiB"
    assert precopy.verdict(rounds(400, 19))[0] == "converged"  # under 5% of 400 MiB
    assert precopy.verdict(rounds(0.5))[0] == "converged"  # a small process: one round, then the final dump


def test_stops_when_a_round_is_not_a_tenth_smaller_than_the_one_before():
    stop, why, slow = precopy.verdict(rounds(100, 50, 46))
    assert stop == "not shrinking"
    assert why == "round 3 found 46.0 MiB dirty, not a tenth less than round 2's 50.0 MiB"
    assert slow is None  # 46 MiB in 1 s, the link carries 10 MiB in 100 ms: not the link's fault
    assert precopy.verdict(rounds(100, 50, 44))[0] is None


def test_stops_at_the_round_limit():
    sizes = [100 * 0.85 ** i for i in range(precopy.ROUND_LIMIT)]  # shrinking, never converging
    assert precopy.verdict(rounds(*sizes[:-1]))[0] is None
    stop, why, _ = precopy.verdict(rounds(*sizes))
    assert stop == "round limit"
    assert why == "8 rounds, the last still 32.1 MiB dirty"


def test_a_process_dirtying_faster_than_the_link_is_told_so_with_the_numbers():
    # 60 MiB dirtied in the 1.5 s since the round before: 40 MiB/s; the link carried
    # 100 + 60 + 60 MiB in 3 x 3000 ms: 24.4 MiB/s.
    stop, _, slow = precopy.verdict(rounds(100, 60, 60, since=1500, copy=3000))
    assert stop == "not shrinking"
    assert slow == ("the process dirties 40.0 MiB/s, faster than the link carries it (24.4 MiB/s measured over "
                    "the rounds' copies): more rounds would not catch up, the final dump moves the rest")


def test_a_process_that_rewrites_all_of_its_memory_is_told_so_though_its_rate_reads_slower_than_the_link():
    # 512 MiB dirty again in the 130 s since round 1 (3.9 MiB/s, a floor: it cannot dirty more
    # than all of it); the link carried 4.1 MiB/s (the VM pair's emulated link).
    stop, _, slow = precopy.verdict(rounds(512, 500, since=130_000, copy=125_000))
    assert stop == "not shrinking"
    assert slow == ("the process dirtied about all of its memory between rounds (500.0 MiB of round 1's 512.0 MiB): "
                    "more rounds would not catch up, the final dump moves the rest")
    assert precopy.cannot_catch_up(rounds(512, 460, since=130_000, copy=125_000)) is None  # under 90 %: the rate decides


def test_pre_copy_runs_rounds_until_the_rule_stops_them_and_reports_each(tmp_path, monkeypatch):
    """The loop around the rule, on a process that dirties 40, 8, then 0.5 MiB: CRIU's pre-dump
    (soft-dirty tracking: the VM tier runs it for real) stands in as the pages it would write,
    the copy as the bytes it would send."""
    dirty = iter([40 * MiB, 8 * MiB, MiB // 2])
    asked, said = [], []

    class M:
        dir, pid, remote, r = str(tmp_path), 4242, None, {"bytesTransferred": 0}
        images = str(tmp_path / "images")  # the rounds go beside it, in RAM or in the run's directory

        def criu(self, argv, log):
            asked.append(argv)
            with open(argv[argv.index("-D") + 1] + "/pages-1.img", "wb") as f:
                f.truncate(next(dirty))
            return 12.5

    monkeypatch.setattr(precopy, "ship", lambda remote, paths: (
        sum(os.path.getsize(p) for p in paths if os.path.isfile(p)), 50.0))
    m = M()
    assert precopy.pre_copy(m, said.append) == "../pre-3"
    assert [a[a.index("-D") + 1] for a in asked] == [f"{tmp_path}/pre-{i}" for i in (1, 2, 3)]
    assert asked[0][-1] == "--track-mem" and asked[2][-2:] == ["--prev-images-dir", "../pre-2"]
    assert [(x["round"], x["pages"], x["bytes"], x["ms"], x["copyMs"]) for x in m.r["preCopyRounds"]] == [
        (1, 40 * MiB // precopy.PAGE, 40 * MiB, 12.5, 50.0), (2, 8 * MiB // precopy.PAGE, 8 * MiB, 12.5, 50.0),
        (3, MiB // 2 // precopy.PAGE, MiB // 2, 12.5, 50.0)]
    assert m.r["preCopyStop"] == "converged"
    # Each round's directory carries its manifest, copied with it, as every checkpoint dir does.
    manifests = [manifest.load(f"{tmp_path}/pre-{i}") for i in (1, 2, 3)]
    assert [(x["preDumpRound"], sorted(x["files"])) for x in manifests] == [(i, ["pages-1.img"]) for i in (1, 2, 3)]
    assert manifests[2]["files"]["pages-1.img"]["size"] == MiB // 2
    assert m.r["bytesTransferred"] == 48 * MiB + MiB // 2 + sum(
        os.path.getsize(f"{tmp_path}/pre-{i}/MANIFEST.json") for i in (1, 2, 3))
    assert said[0] == f"pre-dump round 1: {40 * MiB // precopy.PAGE} pages (40.0 MiB) dirty, dumped in 12.5 ms, " \
                      "copied in 50.0 ms while PID 4242 runs"
    assert said[-1].startswith("pre-copy stops after round 3: converged (round 3 found 512.0 KiB dirty")
