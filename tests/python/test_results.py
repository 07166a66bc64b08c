"""What a command checks in its own result before printing it (demo, check), the demo's
latest-run link, and the texts of status and autostop."""
import argparse
import os

import pytest

from criu_lab import autostop, check, demo, status


@pytest.fixture
def demo_result(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "pstree.img").write_bytes(b"\0" * 16)
    return {"ok": True, "pid": 4242, "restoredPid": 4242, "lastBeforeDump": 5, "firstAfterRestore": 6,
            "dumpMs": 120.5, "restoreMs": 80, "frozenUs": 40_000, "imageBytes": 5_000_000,
            "imagesDir": str(images), "criuVersion": "4.1.1", "kernel": "6.1.0-28-amd64"}


def test_a_good_demo_result_has_no_problems(demo_result):
    assert demo.problems(demo_result) == []


@pytest.mark.parametrize("change, problems", [
    ({"pid": True}, ["pid is True, not int"]),
    ({"dumpMs": "120"}, ["dumpMs is '120', not a number"]),
    ({"ok": 1}, ["ok is 1, not bool"]),
    ({"frozenUs": -1}, ["frozenUs is -1, below 0"]),
    ({"restoredPid": 4243}, ["restored PID 4243 differs from the checkpointed PID 4242"]),
    ({"firstAfterRestore": 5},
     ["the counter did not continue: last before dump 5, first after restore 5"]),
    ({"imageBytes": 0}, ["no images in {images}"]),
    ({"kernel": ""}, ["criuVersion or kernel is empty"]),
])
def test_a_demo_result_that_contradicts_itself(demo_result, change, problems):
    demo_result.update(change)
    assert demo.problems(demo_result) == [p.format(images=demo_result["imagesDir"]) for p in problems]


def test_a_demo_result_missing_fields_or_images(demo_result):
    del demo_result["restoreMs"], demo_result["kernel"]
    assert demo.problems(demo_result) == ["restoreMs is missing", "kernel is missing"]
    demo_result.update(restoreMs=1, kernel="6.1.0")
    os.remove(os.path.join(demo_result["imagesDir"], "pstree.img"))
    assert demo.problems(demo_result) == [f"no images in {demo_result['imagesDir']}"]


def test_a_failed_demo_needs_an_error():
    assert demo.problems({"ok": False, "error": "criu dump exited 1"}) == []
    assert demo.problems({"ok": False}) == ["a failed demo without an error"]
    assert demo.problems({"ok": False, "error": ""}) == ["a failed demo without an error"]


def test_keep_latest_points_demo_latest_at_the_latest_passing_run(log_dir, make_run):
    first = make_run("demo-20261206T050000Z-1")
    link = demo.keep_latest(first)
    assert link == os.path.join(log_dir, "demo-latest")
    assert os.readlink(link) == os.path.basename(first)  # relative: the directory may move
    second = make_run("demo-20261206T050100Z-2")
    demo.keep_latest(second)
    assert os.readlink(link) == os.path.basename(second)
    assert not os.path.exists(first)
    assert sorted(os.listdir(log_dir)) == ["demo-20261206T050100Z-2", "demo-latest"]  # no temporary link left


CHECK_OK = {"ok": True, "criuVersion": "4.1.1", "kernel": "6.1.0", "output": "Looks good."}


@pytest.mark.parametrize("r, problems", [
    (CHECK_OK, []),
    ({**CHECK_OK, "output": "Looks good but some kernel features are missing"}, []),
    ({**CHECK_OK, "output": ""}, ["criu check exited 0 without saying \"Looks good\""]),
    ({**CHECK_OK, "criuVersion": "git"}, ["criuVersion 'git' or kernel '6.1.0' is not a version"]),
    ({**CHECK_OK, "ok": "yes"}, ["ok is 'yes', not a bool"]),
    ({"ok": False, "criuVersion": "", "kernel": "6.1.0"}, ["a failed check without an error"]),
    ({"ok": False, "criuVersion": "", "kernel": "6.1.0", "error": "criu check exited 1"}, []),
])
def test_check_result_problems(r, problems):
    assert check.problems(r) == problems


@pytest.mark.parametrize("minutes, now, sessions, last, boot, decision", [
    (0, 10_000, 0, 0, 0, "stay: auto-stop is disabled (0 minutes)"),
    (30, 10_000, 2, 0, 0, "stay: 2 SSH session(s) open"),
    (30, 10_000, 0, 9_000, 0, "stay: no SSH session for 16 minute(s) of 30"),
    (30, 10_000, 0, 8_200, 0, "poweroff: no SSH session for 30 minute(s) (limit 30)"),
    # A host started again after a stop counts from its boot, not from the session before it.
    (30, 10_000, 0, 1_000, 9_500, "stay: no SSH session for 8 minute(s) of 30"),
])
def test_autostop_decision(minutes, now, sessions, last, boot, decision):
    assert autostop.autostop_decision(minutes, now, sessions, last, boot) == decision


def autostop_args(state, **kw):
    return argparse.Namespace(**{"minutes": 30, "now": 10_000, "sessions": 0, "boot_time": 0, "port": 22,
                                 "state": str(state), "dry_run": True, **kw})


def test_autostop_remembers_the_last_session_in_its_state_file(tmp_path):
    state = tmp_path / "state" / "autostop-last-session"
    assert autostop.cmd_autostop(autostop_args(state, sessions=1))[2] == "stay: 1 SSH session(s) open"
    assert state.read_text() == "10000\n"
    code, r, text = autostop.cmd_autostop(autostop_args(state, now=10_000 + 29 * 60))
    assert (code, text) == (0, "stay: no SSH session for 29 minute(s) of 30")
    assert r == {"decision": text, "sessions": 0}
    assert state.read_text() == "10000\n"  # no session now: the last one is kept
    assert autostop.cmd_autostop(autostop_args(state, now=10_000 + 30 * 60))[2].startswith("poweroff: ")


def test_autostop_with_an_unreadable_state_counts_from_the_boot(tmp_path):
    state = tmp_path / "autostop-last-session"
    state.write_text("garbage")
    assert autostop.cmd_autostop(autostop_args(state, boot_time=9_000))[2] == "stay: no SSH session for 16 minute(s) of 30"


DISK = {"dir": "/var/log/criu-lab", "usedBytes": 0, "runs": 0, "runBytes": {}, "freeBytes": 2**30, "totalBytes": 2**31}


def test_status_text_of_an_installed_lab():
    install = {"criuVersion": "4.1.1", "criu": "/usr/local/sbin/criu", "installedAt": "2026-12-06T05:00:00Z",
               "log": "/var/log/criu-lab/install.log",
               "source": {"kind": "tarball", "url": "https://deb.debian.org/criu_4.1.1.orig.tar.gz", "sha256": "ab12"}}
    setup = {"user": "ubuntu", "finishedAt": "2026-12-06T05:10:00Z", "ok": True, "autoStopMinutes": 45}
    lines = status.human({"criuVersion": "4.1.1", "install": install, "setup": setup, "disk": DISK}).split("\n")
    assert lines == [
        "CRIU 4.1.1 at /usr/local/sbin/criu",
        "  source:    tarball https://deb.debian.org/criu_4.1.1.orig.tar.gz (sha256 ab12)",
        "  installed: 2026-12-06T05:00:00Z (log /var/log/criu-lab/install.log)",
        "Lab user:  ubuntu (set up 2026-12-06T05:10:00Z: ready)",
        "Auto-stop: after 45 minutes with no SSH session",
        "Disk: 0 B in /var/log/criu-lab (0 runs with their images); 1.0 GiB free of 2.0 GiB",
    ]


def test_status_text_of_a_lab_set_up_by_hand_or_failed():
    install = {"criuVersion": "4.1.1", "source": {"kind": "git", "repository": "https://github.com/checkpoint-restore/criu",
                                                  "version": "v4.1.1", "commit": "abc"}}
    text = status.human({"criuVersion": "", "install": install, "setup": None, "disk": DISK})
    assert "CRIU 4.1.1 at None (but no criu runs there now)" in text
    assert "  source:    git https://github.com/checkpoint-restore/criu tag v4.1.1 (commit abc)" in text
    assert "Lab: no setup record (the lab was not set up by setup-lab.sh)" in text
    setup = {"user": "ubuntu", "ok": False, "error": "apt-get failed", "autoStopMinutes": 0}
    text = status.human({"criuVersion": "4.1.1", "install": {**install, "source": {}}, "setup": setup, "disk": DISK})
    assert "  source:    unknown" in text
    assert "(set up None: FAILED: apt-get failed)" in text and "Auto-stop: never (0 minutes)" in text
