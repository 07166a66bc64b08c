"""The pair check: the source and the destination of a migration compared before anything is
frozen (criu-lab migrate, scenario run migration). One SSH round trip asks the destination
everything (remote.probe's sections); the comparisons are pure functions. Each check is
{name, ok, detail}, all of them in the result (pairChecks); a failed one refuses the migration,
naming the difference (docs/design.md "CRIU and the kernel").
"""
import base64
import os
import re
import shlex
import stat
import tempfile

from . import checkpoints as ckpt
from .common import CRIU, dump_estimate, free_bytes, human_bytes, no_room, process_tree, run
from .manifest import sha256
from .advise import advise
from .modes import destination_features, mode_unsupported
from .outcome import NOT_READY, USAGE, LabError
from .ram_images import use_ram
from .remote import cpu_flags, probe, remote_state, state_script

# The CPU features a process may start using and a restore cannot take away: the FPU and its
# save areas (xsave*, what CRIU's --cpu-cap fpu compares) and the instruction sets a program or
# its libraries pick at start (glibc's ifuncs). avx* and amx* by prefix: every AVX-512 part.
CPU_FLAGS = {"fpu", "fxsr", "xsave", "xsaveopt", "xsavec", "xsaves", "xgetbv1", "mmx", "sse", "sse2", "pni", "ssse3",
             "sse4_1", "sse4_2", "sse4a", "popcnt", "movbe", "aes", "pclmulqdq", "fma", "fma4", "f16c", "bmi1", "bmi2",
             "adx", "abm", "sha_ni", "rdrand", "rdseed", "gfni", "vaes", "vpclmulqdq", "cx16", "erms", "fsrm",
             "clflushopt", "clwb", "movdiri", "movdir64b", "pku", "ospke",
             # arm64 (Features): the vector and crypto extensions
             "fp", "asimd", "sve", "sve2", "pmull", "sha1", "sha2", "sha3", "sha512", "atomics", "crc32"}
CPU_PREFIXES = ("avx", "amx")


def cared(flags):
    """The flags of FLAGS the cpu check compares."""
    return {f for f in flags if f in CPU_FLAGS or f.startswith(CPU_PREFIXES)}


def check(name, ok, detail):
    return {"name": name, "ok": ok, "detail": detail}


def cpu_check(here, there, criu_said):
    """HERE, THERE: the CPUs' flag sets. CRIU_SAID: `criu cpuinfo check` there on this host's
    cpuinfo image, (passed, its last words), or None when this CRIU cannot dump it here."""
    missing = sorted(cared(here) - set(there))
    if missing:
        return check("cpu", False, f"the destination lacks {', '.join(missing)}, which this host's process may use")
    if criu_said and not criu_said[0]:
        return check("cpu", False, f"`criu cpuinfo check` there refuses this host's CPU: {criu_said[1] or 'no reason given'}")
    how = "`criu cpuinfo check` passed there" if criu_said else "`criu cpuinfo dump` does not run here: flags compared"
    return check("cpu", True, f"the destination has the {len(cared(here))} CPU features CRIU cares about that this "
                 f"host has; {how}")


def version(v):
    """'4.2.1' -> (4, 2, 1): CRIU's versions compared."""
    return tuple(int(n) for n in re.findall(r"\d+", v)[:3])


def criu_check(here, there):
    """An older CRIU there is refused: CRIU reads the images older versions wrote, not always
    those of newer ones (fields and images they added). A newer one passes, reported."""
    if version(here) == version(there):
        return check("criu", True, f"CRIU {here} on both")
    if version(there) > version(here):
        return check("criu", True, f"CRIU {here} here, {there} there: a newer CRIU restores images an older one wrote")
    return check("criu", False, f"the destination runs CRIU {there}, older than {here} here: it may not read the "
                 f"images this CRIU writes; install CRIU {here} there")


def kernel_check(here, there, same_boot):
    """Another kernel is allowed (CRIU restores across kernels with the features a mode needs,
    the mode check), and said."""
    if same_boot:
        return check("kernel", True, f"one kernel ({here}): the destination shares this host's boot")
    if here == there:
        return check("kernel", True, f"{here} on both (another boot there)")
    return check("kernel", True, f"{here} here, {there} there: allowed, CRIU needs only the features the mode needs")


def room_check(pid, where, estimate, free, medium="disk"):
    """Images of about ESTIMATE bytes (common.dump_estimate; None: /proc could not say) into
    WHERE, FREE bytes free there (None: df said nothing), on MEDIUM ("disk", or "RAM": the tmpfs
    image_placement picked)."""
    if estimate is None or free is None:
        return check("room", True, f"not measured ({'/proc gave no estimate' if estimate is None else 'df said nothing'} "
                     f"for {where})")
    if estimate > free:
        return check("room", False, str(no_room(pid, where, estimate, free)))
    return check("room", True, f"about {human_bytes(estimate)} of images, {human_bytes(free)} free in {where} "
                 f"({'in RAM' if medium == 'RAM' else 'on disk'})")


def ram_probe():
    """Shell that prints on the destination its MemAvailable (kB) and, when RAM_ROOT is a
    directory there, the bytes free in it (df) and its device:inode (stat), a line each."""
    r = shlex.quote(ckpt.RAM_ROOT)
    return (f"sed -n 's/^MemAvailable: *\\([0-9]*\\) kB$/\\1/p' /proc/meminfo; if [ -d {r} ]; then "
            f"df -P -B1 {r} | awk 'NR == 2 {{print $4}}'; stat -c %d:%i {r}; fi")


def ram_side(lines, same_boot=False, here_id=None):
    """ram_probe's answer (LINES) as checkpoints.migration_placement takes a side: {available,
    ramFree, shared}; shared when the destination shares this boot and RAM_ROOT there is the
    directory HERE_ID (device:inode) names here."""
    words = lines.split()
    available = int(words[0]) * 1024 if words and words[0].isdigit() else None
    free = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    return {"available": available, "ramFree": free,
            "shared": bool(same_boot and here_id and len(words) > 2 and words[2] == here_id)}


def ram_here():
    """This host's side for checkpoints.migration_placement, and RAM_ROOT's device:inode here."""
    if not os.path.isdir(ckpt.RAM_ROOT):
        return {"available": ckpt.mem_available(), "ramFree": None}, None
    st = os.stat(ckpt.RAM_ROOT)
    return {"available": ckpt.mem_available(), "ramFree": free_bytes(ckpt.RAM_ROOT)[0]}, f"{st.st_dev}:{st.st_ino}"


def image_needs(mode, estimate):
    """(bytes of images written here, there) in MODE, for ESTIMATE bytes of them in all: a page
    server's pages land only there; lazy pages stay in memory here and go to memory there (8 MiB:
    the rest of the images); pre-copy keeps its rounds beside the final dump (twice: the first
    round holds everything, the later ones shrink; Migration.room checks each)."""
    rest = 8 * 2**20
    return {"page-server": (rest, estimate), "lazy": (rest, rest),
            "pre-copy": (2 * estimate, 2 * estimate)}.get(mode, (estimate, estimate))


def pid_probe(pid, highest):
    """Shell that answers pid_check's question on the destination: "free", "free above N" or
    "taken COMM". A process of the probe's own SSH session is no holder: two hosts booted alike
    from one image (the VM pair, a class's host pairs) count PIDs in step, and the probe's own
    shell has been seen holding the very PID it asked about. The session is the 4th field after
    the comm's ")" in /proc/PID/stat (proc(5)); a PID gone meanwhile is free.

    When the PID is free, the destination's PID counter moves up to HIGHEST (the tree's highest
    PID or thread ID) if it is below: the processes this migration starts there later (its SSH
    sessions, the page server, criu restore itself) are then numbered above the tree's PIDs and
    cannot take one before the restore needs it ("Can't fork for PID: File exists" in the VM
    pair). ns_last_pid is the counter of the writer's PID namespace, writable by root
    (kernel/pid_namespace.c, pid_ns_ctl_handler); CRIU itself writes it on kernels before clone3."""
    sid = "sed 's/.*) //' /proc/{}/stat 2>/dev/null | cut -d' ' -f4"
    last = "/proc/sys/kernel/ns_last_pid"
    return (f"if [ -e /proc/{pid} ] && [ \"$({sid.format(pid)})\" != \"$({sid.format('$$')})\" ]; "
            f"then echo taken $(cat /proc/{pid}/comm 2>/dev/null); "
            f"elif [ \"$(cat {last})\" -lt {highest} ] && {{ echo {highest} > {last}; }} 2>/dev/null; then echo free above {highest}; "
            "else echo free; fi")


def pid_check(pid, same_boot, there):
    """THERE: the destination's answer about PID (pid_probe). On one kernel the dump frees the
    PID (its parent reaps it), so it is taken there now, as it should be."""
    if same_boot:
        return check("pid", True, f"one kernel: the dump frees PID {pid} for the restore")
    if there.startswith("taken"):
        comm = there[len("taken"):].strip() or "another process"
        return check("pid", False, f"PID {pid} is taken on the destination (by {comm}): the restore needs that PID; "
                     "end that process there, or migrate another")
    above = re.fullmatch(r"free above (\d+)", there)
    return check("pid", True, f"PID {pid} is free there" + (
        f"; its new processes are numbered above {above[1]} now, clear of this tree's PIDs" if above else ""))


def highest_id(pid):
    """The highest PID or thread ID in PID's tree: each needs its number free at the restore."""
    ids = [pid]
    for p in process_tree(pid):
        try:
            ids += [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            pass
    return max(ids)


def refusal(host, checks):
    """The LabError a failed check makes, or None: every failed check named, exit 3; exit 2
    when only the mode (a flag's choice) cannot run."""
    bad = [c for c in checks if not c["ok"]]
    if not bad:
        return None
    code = USAGE if all(c["name"] == "mode" for c in bad) else NOT_READY
    return LabError(code, f"the pair check with {host} refused, nothing was frozen: "
                    + "; ".join(f"{c['name']}: {c['detail']}" for c in bad))


def check_pair(m, say):
    """Runs the pair check of Migration M; returns (destination's probe, mode, what to carry,
    the paths known there: those compared and the root, the process's stdout file). Raises refusal()."""
    pid, remote, r = m.pid, m.remote, m.r
    mapped, opened, dirs = process_files(pid)
    paths = mapped + sorted(opened) + dirs
    image = cpuinfo_here()
    q = shlex.quote
    sections = [
        ("flags", "sed -n 's/^\\(flags\\|Features\\)[[:space:]]*: *//p' /proc/cpuinfo | head -n 1"),
        ("free", f"d={q(m.images)}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; "
                 "df -P -B1 \"$d\" | awk 'NR == 2 {print $4}'"),
        ("pid", pid_probe(pid, highest_id(pid))),
        ("ram", ram_probe()),
        ("files", state_script(paths) if paths else "true"),
    ]
    if image:
        sections.append(("cpuinfo", f"d=$(mktemp -d) && echo {base64.b64encode(image).decode()} | base64 -d > $d/cpuinfo.img"
                                    f" && {{ {CRIU} cpuinfo check --cpu-cap=fpu,ins -D $d -o $d/check.log -v1 && echo pass"
                                    " || { echo fail; tail -n 1 $d/check.log; }; }; rm -rf $d"))
    dest = probe(remote, destination_features(m.mode), sections)
    there = dest.pop("sections")
    r["destinationKernel"] = dest["kernel"]
    with open("/proc/sys/kernel/random/boot_id") as f:
        same_boot = f.read().strip() == dest["bootId"]
    if image:
        said = there.get("cpuinfo", "").strip().split("\n")
        criu_said = (said[0] == "pass", re.sub(r"^(Warn|Error) *\([^)]*\): *", "", said[-1]))
    else:
        criu_said = None
    mode = m.mode
    if mode == "auto":
        # The advisor measures the process and the link (nothing frozen) and picks the mode
        # predicted shortest; migrate prints its prediction beside the downtime measured.
        r["advice"] = advise(pid, remote, dest, say=say)
        mode, r["modesPassedOver"] = r["advice"]["pick"], r["advice"]["passedOver"]
        r["mode"] = mode
        r["predictedMs"] = r["advice"]["predictions"][mode]["downtimeMs"]
        why = None
    else:
        why = mode_unsupported(mode, dest)
    problems, carry, stdout = compare_files(remote.host, pid, mapped, opened, dirs,
                                            dict(zip(paths, there.get("files", "").split())))
    estimate = dump_estimate(pid)
    free = there.get("free", "").strip()
    free = int(free) if free.isdigit() else None
    here, here_id = ram_here()
    if estimate is None:
        placed = {"here": "disk", "there": "disk", "why": "/proc gave no estimate of the images"}
    else:
        placed = ckpt.migration_placement(*image_needs(mode, estimate), estimate, here,
                                          ram_side(there.get("ram", ""), same_boot, here_id), m.ram_budget)
    if placed["here"] == "ram":
        use_ram(m)
        placed["ramDir"] = m.ram
        free = ram_side(there.get("ram", "")).get("ramFree")
    r["imagesIn"] = placed
    checks = [
        cpu_check(cpu_flags(), there.get("flags", "").split(), criu_said),
        criu_check(r["criuVersion"], dest["criuVersion"]),
        kernel_check(r["kernel"], dest["kernel"], same_boot),
        check("mode", why is None, f"{why}; --mode auto picks the best mode these two hosts can run" if why
              else f"{mode}{' (picked by --mode auto)' if m.mode == 'auto' else ''}: these two hosts can run it"),
        check("files", not problems, problems or f"the {len(mapped)} files it maps are the same there; "
              f"carrying {', '.join(carry) or 'nothing'}"),
        # Lazy pages stay in memory and go to memory there: only the rest of the images lands.
        room_check(pid, f"{remote.host}:{m.images}", 8 * 2**20 if mode == "lazy" and estimate else estimate,
                   free, "RAM" if placed["here"] == "ram" else "disk"),
        pid_check(pid, same_boot, there.get("pid", "").strip()),
    ]
    r["pairChecks"] = checks
    say(f"pair check with {remote.target}:\n" + "\n".join(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}"
                                                        for c in checks)
        + f"\nimages in {'RAM' if placed['here'] == 'ram' else 'the run directory on disk'} on both ends: {placed['why']}")
    refused = refusal(remote.host, checks)
    if refused:
        raise refused
    # The root too: every process's images name it (files.img), process_files refused any other,
    # and every host has one; left out, migrate looked it up there while the process was frozen,
    # a round trip in every downtime.
    return dest, mode, carry, set(paths) | {"/"}, stdout


def cpuinfo_here():
    """This CPU's cpuinfo image (`criu cpuinfo dump`), or None where CRIU cannot dump it."""
    with tempfile.TemporaryDirectory(prefix="criu-lab-cpuinfo-") as d:
        p = run([CRIU, "cpuinfo", "dump", "-D", d, "-o", os.path.join(d, "dump.log")], 60)
        path = os.path.join(d, "cpuinfo.img")
        if p.returncode != 0 or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()


def process_files(pid):
    """From /proc, before anything freezes: (files the process maps, files it has open,
    directories it uses), or raises what cannot be migrated."""
    mapped = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/") and not parts[5].endswith(" (deleted)\n"):
                mapped.add(parts[5].rstrip("\n"))
    mapped.add(os.readlink(f"/proc/{pid}/exe"))
    mapped = {p for p in mapped if os.path.isfile(p)}  # /dev/zero and the like are no binaries
    opened, dirs = {}, {os.readlink(f"/proc/{pid}/cwd")}
    if os.readlink(f"/proc/{pid}/root") != "/":
        raise LabError(USAGE, f"PID {pid} runs in a chroot: migrate moves processes that see the host's root")
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:"):
            raise LabError(USAGE, f"PID {pid} has a socket open (fd {fd}): its peer and address stay on this "
                           "host, so migrate refuses it (the game exercise keeps TCP connections on one host)")
        if target.startswith("/dev/pts/") or target.startswith("/dev/tty"):
            raise LabError(USAGE, f"PID {pid} has a terminal open (fd {fd} -> {target}): start it detached "
                           "(setsid PROGRAM </dev/null >LOG 2>&1 &) to migrate it")
        if not target.startswith("/") or target.endswith(" (deleted)"):
            continue  # pipes, anonymous inodes; deleted files travel inside the images (ghost files)
        st = os.stat(target)
        if stat.S_ISDIR(st.st_mode):
            dirs.add(target)
        elif stat.S_ISREG(st.st_mode):
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = int(re.search(r"^flags:\s*([0-7]+)", f.read(), re.M).group(1), 8)
            opened[target] = opened.get(target, False) or (flags & os.O_ACCMODE) != os.O_RDONLY
    return sorted(mapped), opened, sorted(dirs)


def compare_files(host, pid, mapped, opened, dirs, there):
    """The destination's copies (THERE: remote_state's answer) against this host's: (what is
    wrong, or "" when nothing is; files to carry; the process's stdout file or None). CRIU
    restores only where the files a process maps are identical (docs/design.md "Facts")."""
    problems = []
    for p in mapped:
        if there.get(p) == "missing":
            problems.append(f"{p} is missing there")
        elif there.get(p) != sha256(p):
            problems.append(f"{p} differs there (sha256 {there.get(p)} vs {sha256(p)} here)")
    carry = [p for p in dirs if there.get(p) == "missing"]
    for p in dirs:
        here = f"dir:{os.stat(p).st_mode & 0o7777:o}"
        if there.get(p) not in ("missing", here):
            problems.append(f"directory {p} is {there.get(p)} there, {here} here (CRIU checks its mode)")
    for p, writes in opened.items():
        if there.get(p) == "missing":
            carry.append(p)
        elif writes:
            problems.append(f"{p} (which the process writes) already exists there: move it away there first")
        elif there.get(p) != sha256(p):
            problems.append(f"{p} (open) differs there")
    stdout = os.readlink(f"/proc/{pid}/fd/1") if os.path.exists(f"/proc/{pid}/fd/1") else None
    text = (f"the destination {host} does not have the same files as this host, and CRIU restores a process only "
            "where the files it maps are identical (same image/AMI on both): " + "; ".join(problems)) if problems else ""
    return text, carry, (stdout if stdout in opened else None)


def compare_destination(remote, pid):
    """compare_files with its own round trip (the backup scenario): refuses (exit 3) what
    differs. Returns (files to carry, the paths compared, the process's stdout file or None)."""
    mapped, opened, dirs = process_files(pid)
    there = remote_state(remote, mapped + sorted(opened) + dirs)
    problems, carry, stdout = compare_files(remote.host, pid, mapped, opened, dirs, there)
    if problems:
        raise LabError(NOT_READY, problems)
    return carry, set(there), stdout
