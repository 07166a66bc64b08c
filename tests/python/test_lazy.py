"""How a lazy migration ends (lazy.py), with real processes: the daemon's keeper shell, and the
decision by its exit code, the destination's commands run by a local shell (the SSH hop is the
VM tier's: tests/vm/lab-debian13.test.ts)."""
import os
import signal
import subprocess
import time

from criu_lab import faults, lazy


class HereAsThere:
    """The destination's commands run by sh on this host (as Remote.run returns them)."""
    host = "b"

    def run(self, script, timeout=120):
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout)


class Migration:
    def __init__(self, pid, run_dir):
        self.pid, self.dir, self.images = pid, run_dir, os.path.join(run_dir, "images")
        self.remote, self.r, self.reaped = HereAsThere(), {}, False
        self.ram = None  # the images on disk (ram_images.to_disk has nothing to move)

    def reap(self):
        self.reaped = True


def wait_state(pid, prefix):
    for _ in range(100):
        if faults.state_of(pid).startswith(prefix):
            return
        time.sleep(0.02)
    raise AssertionError(f"PID {pid} is {faults.state_of(pid)}, not {prefix}")


def keeper_files(run_dir, pid, rc):
    for name, value in (("pid", pid), ("rc", rc)):
        with open(os.path.join(run_dir, f"lazy-pages.{name}"), "w") as f:
            f.write(f"{value}\n")


def daemon_of(tmp_path, monkeypatch, script):
    """lazy.start_daemon's keeper run here, CRIU being the shell SCRIPT (lines after #!/bin/sh)."""
    fake = tmp_path / "criu"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(lazy, "CRIU", str(fake))
    return HereAsThere().run(lazy.start_daemon(str(tmp_path), str(tmp_path / "images"), 4000), 30)


def test_the_keeper_says_when_the_daemon_listens_its_pid_and_how_it_ended(tmp_path, monkeypatch):
    # A daemon that writes its ready byte to --status-fd 3, as CRIU does once it listens.
    p = daemon_of(tmp_path, monkeypatch, "printf '\\0' >&3\nexec sleep 300")
    assert p.returncode == 0, p.stdout
    pid = int((tmp_path / "lazy-pages.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    end = lazy.daemon_end(Migration(0, str(tmp_path)))
    assert end == {"pid": pid, "exit": 137}  # 128 + SIGKILL: not a whole transfer


def test_a_daemon_that_ends_before_it_listens_is_a_failure_with_its_log(tmp_path, monkeypatch):
    p = daemon_of(tmp_path, monkeypatch, "echo 'Error: no uffd' >>\"$(echo \"$@\" | sed 's/.*-o \\([^ ]*\\).*/\\1/')\"\nexit 1")
    assert p.returncode == 1
    assert p.stdout.startswith("it exited 1; end of its log:") and "Error: no uffd" in p.stdout


def test_a_daemon_killed_while_the_dump_exited_0_resumes_the_process_here_and_kills_the_copy_there(tmp_path, sleeper):
    source, copy = sleeper(), sleeper()
    os.kill(source.pid, signal.SIGSTOP)  # as --leave-stopped leaves it
    wait_state(source.pid, "stopped")
    keeper_files(tmp_path, 999999, 137)
    m = Migration(source.pid, str(tmp_path))
    m.r["restoredPid"] = copy.pid
    dump = subprocess.Popen(["true"])
    said = lazy.end(m, dump, 1, lazy.identity(source.pid), time.monotonic())
    assert "criu lazy-pages on b exited 137 while the dump here exited 0" in said
    assert copy.wait(10) == -signal.SIGKILL
    wait_state(source.pid, "running")
    assert m.r["lazy"]["source"].startswith(f"PID {source.pid} continued (SIGCONT")
    assert m.r["lazy"]["destination"] == f"PID {copy.pid}, the incomplete copy, killed (kill -9)"
    assert m.r["lazy"]["dumpExit"] == 0 and m.r["lazy"]["lazyPagesExit"] == 137
    assert m.r["lazy"]["evidence"]["lazyPagesLogThere"] == f"b:{tmp_path}/lazy-pages.log"
    assert m.r["lazy"]["evidence"]["imagesHere"] == m.images and f"the images {m.images} here" in said
    assert "completeMs" not in m.r and not m.reaped


def test_a_copy_there_gone_already_is_said(tmp_path, sleeper):
    source = sleeper()
    keeper_files(tmp_path, 999999, 137)
    m = Migration(source.pid, str(tmp_path))
    m.r["restoredPid"] = 999999  # above the default pid_max: no such process
    lazy.end(m, subprocess.Popen(["true"]), 1, lazy.identity(source.pid), time.monotonic())
    assert m.r["lazy"]["destination"].startswith("PID 999999 was already gone")


def test_a_copy_there_that_is_another_program_is_left_alone(tmp_path, sleeper):
    source, other = sleeper(), sleeper(argv=["cat"])
    keeper_files(tmp_path, 999999, 1)
    m = Migration(source.pid, str(tmp_path))
    m.r["restoredPid"] = other.pid
    said = lazy.end(m, subprocess.Popen(["false"]), 1, lazy.identity(source.pid), time.monotonic())
    assert said.startswith("the lazy migration did not end whole on b: criu dump --lazy-pages exited 1")
    assert other.poll() is None and faults.state_of(source.pid) == "running"
    assert m.r["lazy"]["source"] == f"PID {source.pid} runs again, whole (CRIU resumed it after its failed dump)"
    assert m.r["lazy"]["destination"] == f"PID {other.pid} there is another program now: left alone"


def test_a_whole_transfer_ends_the_stopped_process_here(tmp_path, sleeper):
    source = sleeper()
    os.kill(source.pid, signal.SIGSTOP)
    keeper_files(tmp_path, 999999, 0)
    m = Migration(source.pid, str(tmp_path))
    m.r["restoredPid"] = 12345
    assert lazy.end(m, subprocess.Popen(["true"]), 1, lazy.identity(source.pid), time.monotonic()) is None
    assert source.wait(10) == -signal.SIGKILL
    assert m.reaped and m.r["completeMs"] >= 0 and m.r["lazy"]["source"] == "ended here: every page went there"


def test_a_dump_that_outlives_the_daemon_there_is_killed(tmp_path, monkeypatch):
    keeper_files(tmp_path, 999999, 137)
    monkeypatch.setattr(lazy, "DUMP_AFTER_DAEMON_S", 0)
    dump = subprocess.Popen(["sleep", "300"])  # a dump the daemon's hang-up never reached
    try:
        assert lazy.wait_dump(Migration(0, str(tmp_path)), dump, limit_s=60) == -signal.SIGKILL
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()


def test_stages_are_back_to_back_from_the_freeze_so_they_add_up_to_the_downtime(monkeypatch):
    clock = iter([10.25, 10.5, 13.0, 13.0])
    monkeypatch.setattr(lazy.time, "monotonic", lambda: next(clock))
    r = {}
    stages = lazy.Stages(r, 10.0)
    for key in ("freezeMs", "manifestMs", "transferMs", "restoreMs"):
        stages.mark(key)
    assert r == {"freezeMs": 250.0, "manifestMs": 250.0, "transferMs": 2500.0, "restoreMs": 0.0}
    assert stages.total() == sum(r.values()) == 3000.0


def test_a_stage_marked_again_is_the_time_since_the_mark_before_it(monkeypatch):
    # m.restore records its own restoreMs; the stage's mark, after it, is the one that stays.
    clock = iter([1.0, 1.5])
    monkeypatch.setattr(lazy.time, "monotonic", lambda: next(clock))
    r = {"restoreMs": 123.4}
    stages = lazy.Stages(r, 0.5)
    stages.mark("freezeMs")
    stages.mark("restoreMs")
    assert r == {"freezeMs": 500.0, "restoreMs": 500.0} and stages.total() == 1000.0


def test_every_lazy_stage_is_one_the_bench_sums():
    # The bench and the VM test check the stages add up by their names (bench/cases/migration.ts
    # STAGES): a stage it does not know would show as a gap.
    ts = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "cases", "migration.ts")
    with open(ts, encoding="utf-8") as f:
        text = f.read()
    listed = text[text.index("export const STAGES = ["):]
    listed = listed[:listed.index("]")]
    assert [k for k in lazy.STAGES if f'"{k}"' not in listed] == []
