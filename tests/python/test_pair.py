"""pair.py: the comparisons of the pair check, each a pure function of what the two hosts said
(the round trip that asks them: tests/host/migrate.test.ts)."""
import pytest

from criu_lab import pair
from criu_lab.outcome import NOT_READY, USAGE

HERE = {"fpu", "xsave", "sse2", "avx", "avx2", "avx512f", "avx512bw", "aes", "hypervisor", "constant_tsc"}


def test_cpu_a_destination_missing_flags_the_process_may_use_is_refused_naming_them():
    c = pair.cpu_check(HERE, HERE - {"avx512f", "avx512bw"}, (True, ""))
    assert c == {"name": "cpu", "ok": False,
                 "detail": "the destination lacks avx512bw, avx512f, which this host's process may use"}


def test_cpu_extra_flags_there_and_flags_no_process_uses_are_fine():
    c = pair.cpu_check(HERE, (HERE | {"avx512_fp16", "amx_tile"}) - {"hypervisor", "constant_tsc"}, (True, ""))
    assert c["ok"] is True
    assert c["detail"] == ("the destination has the 8 CPU features CRIU cares about that this host has; "
                           "`criu cpuinfo check` passed there")


def test_cpu_criu_s_own_refusal_stands_even_when_the_flags_agree():
    c = pair.cpu_check(HERE, HERE, (False, "cpu: x86: Cpu features mismatch"))
    assert c == {"name": "cpu", "ok": False,
                 "detail": "`criu cpuinfo check` there refuses this host's CPU: cpu: x86: Cpu features mismatch"}


def test_cpu_without_criu_s_cpuinfo_here_the_flags_decide():
    assert pair.cpu_check(HERE, HERE, None)["detail"].endswith("`criu cpuinfo dump` does not run here: flags compared")
    assert pair.cpu_check({"fp", "asimd", "sve"}, {"fp", "asimd"}, None)["detail"].startswith(
        "the destination lacks sve,")


@pytest.mark.parametrize("here, there, ok, detail", [
    ("4.2.1", "4.2.1", True, "CRIU 4.2.1 on both"),
    ("4.1", "4.2.1", True, "CRIU 4.1 here, 4.2.1 there: a newer CRIU restores images an older one wrote"),
    ("4.2.1", "4.1", False, "the destination runs CRIU 4.1, older than 4.2.1 here: it may not read the images "
                            "this CRIU writes; install CRIU 4.2.1 there"),
    ("4.10", "4.9", False, None),  # numbers, not strings
])
def test_criu_versions(here, there, ok, detail):
    c = pair.criu_check(here, there)
    assert c["ok"] is ok
    if detail:
        assert c["detail"] == detail


def test_kernel_another_is_allowed_and_said():
    assert pair.kernel_check("6.1.0", "6.18.4", False) == {
        "name": "kernel", "ok": True,
        "detail": "6.1.0 here, 6.18.4 there: allowed, CRIU needs only the features the mode needs"}
    assert pair.kernel_check("6.1.0", "6.1.0", True)["detail"].startswith("one kernel (6.1.0)")
    assert pair.kernel_check("6.1.0", "6.1.0", False)["detail"] == "6.1.0 on both (another boot there)"


def test_room_refuses_images_that_would_not_fit_there_with_the_numbers():
    c = pair.room_check(42, "b:/var/log/criu-lab/migrate-x/images", 30 * 2**20, 4 * 2**20)
    assert c["ok"] is False
    assert c["detail"].startswith("no room for the images of PID 42 in b:/var/log/criu-lab/migrate-x/images: about "
                                  "30.0 MiB needed (its memory, plus a tenth and 8 MiB), 4.0 MiB free there; nothing was frozen")
    assert pair.room_check(42, "b:/x", 3 * 2**20, 4 * 2**20) == {
        "name": "room", "ok": True, "detail": "about 3.0 MiB of images, 4.0 MiB free in b:/x (on disk)"}
    assert pair.room_check(42, "b:/x", 3 * 2**20, 4 * 2**20, "RAM")["detail"].endswith("free in b:/x (in RAM)")
    assert pair.room_check(42, "b:/x", None, 4)["ok"] is True  # not measured: said, not refused
    assert pair.room_check(42, "b:/x", 5, None)["detail"] == "not measured (df said nothing for b:/x)"


def test_pid_taken_on_another_kernel_is_refused_on_the_same_kernel_the_dump_frees_it():
    assert pair.pid_check(42, False, "taken nginx") == {
        "name": "pid", "ok": False, "detail": "PID 42 is taken on the destination (by nginx): the restore needs that "
                                              "PID; end that process there, or migrate another"}
    assert pair.pid_check(42, False, "free")["ok"] is True
    assert pair.pid_check(42, True, "taken python3") == {
        "name": "pid", "ok": True, "detail": "one kernel: the dump frees PID 42 for the restore"}


def test_refusal_names_every_failed_check_exit_3_or_2_for_the_mode_alone():
    ok = pair.check("kernel", True, "same")
    cpu = pair.check("cpu", False, "the destination lacks avx512f, which this host's process may use")
    mode = pair.check("mode", False, "lazy needs a second kernel")
    assert pair.refusal("b", [ok]) is None
    e = pair.refusal("b", [cpu, ok, mode])
    assert e.code == NOT_READY
    assert str(e) == ("the pair check with b refused, nothing was frozen: cpu: the destination lacks avx512f, which "
                      "this host's process may use; mode: lazy needs a second kernel")
    assert pair.refusal("b", [ok, mode]).code == USAGE


def test_pid_probe_counts_other_sessions_holders_not_its_own():
    """The probe for real: a sleep in another session (setsid) holds its PID; one the probe's
    own shell started, in its session, does not (twin hosts' PIDs run in step)."""
    import subprocess
    import time
    other = subprocess.Popen(["setsid", "sleep", "30"])
    try:
        # Until setsid has made its session and become sleep, the PID is still in ours.
        for _ in range(500):
            with open(f"/proc/{other.pid}/comm") as f:
                if f.read().strip() == "sleep":
                    break
            time.sleep(0.01)
        ran = subprocess.run(["sh", "-c", pair.pid_probe(other.pid, 0)], capture_output=True, text=True, check=True)
        assert ran.stdout.strip() == "taken sleep"
    finally:
        other.kill()
        other.wait()
    own = subprocess.run(["sh", "-c", f"sleep 30 & p=$!; {pair.pid_probe('$p', 0)}; kill $p"],
                         capture_output=True, text=True, check=True)
    assert own.stdout.strip() == "free"
    gone = subprocess.run(["sh", "-c", f"sleep 0 & p=$!; wait $p; {pair.pid_probe('$p', 0)}"],
                          capture_output=True, text=True, check=True)
    assert gone.stdout.strip() == "free"


def test_pid_probe_numbers_the_destinations_new_processes_above_the_tree():
    """In a PID namespace of its own (its own counter, ns_last_pid): PID 500 is free there, the
    probe moves the counter up to 500, and the next process there is numbered above it, as the
    migration's own processes on the destination are before the restore. A counter already
    higher is left alone."""
    import subprocess
    script = f"{pair.pid_probe(500, 500)}; sh -c 'echo $$'; {pair.pid_probe(400, 400)}; sh -c 'echo $$'"
    ran = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                         capture_output=True, text=True, check=True)
    said = ran.stdout.split()
    assert said[:3] == ["free", "above", "500"]
    assert int(said[3]) > 500
    assert said[4] == "free" and int(said[5]) > int(said[3])
    assert pair.pid_check(957, False, "free above 960")["detail"] == (
        "PID 957 is free there; its new processes are numbered above 960 now, clear of this tree's PIDs")


def test_image_needs_per_mode_where_the_pages_land():
    e, rest = 300 * 2**20, 8 * 2**20
    assert pair.image_needs("cold", e) == (e, e)
    assert pair.image_needs("page-server", e) == (rest, e)  # the pages go straight there
    assert pair.image_needs("lazy", e) == (rest, rest)  # memory to memory
    assert pair.image_needs("pre-copy", e) == (2 * e, 2 * e)  # the rounds beside the final dump


def test_ram_side_reads_the_probe_and_knows_a_ram_dir_shared_with_this_host():
    said = "8000000\n4294967296\n27:1\n"
    assert pair.ram_side(said) == {"available": 8000000 * 1024, "ramFree": 4294967296, "shared": False}
    assert pair.ram_side(said, True, "27:1")["shared"] is True  # one boot, the same directory
    assert pair.ram_side(said, False, "27:1")["shared"] is False  # another host's 27:1 is another directory
    assert pair.ram_side(said, True, "28:1")["shared"] is False
    assert pair.ram_side("8000000\n") == {"available": 8000000 * 1024, "ramFree": None, "shared": False}  # no tmpfs
    assert pair.ram_side("") == {"available": None, "ramFree": None, "shared": False}
