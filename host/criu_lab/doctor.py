"""criu-lab doctor: which of the lab's exercises this host can run, and why not.

One probe (`probe()`) that the scenarios also use, so an exercise the host cannot do is
refused up front with the doctor's reason instead of failing deep in a CRIU log.
"""
import platform
import re
import shutil

from .archive import have_zstd
from . import link
from .common import CRIU, base, disk, disk_text, human_bytes, ready, run
from .outcome import BROKEN, OK, LabError, attempt

# The `criu check --feature` names the exercises need (criu/cr-check.c).
FEATURES = ("mem_dirty_track", "uffd", "uffd-noncoop", "tcp_half_closed", "network_lock_nftables")

# What to do when a feature or setting is missing: the known causes and fixes.
FIXES = {
    "mem_dirty_track": "the kernel has no soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY, missing in "
                       "some cloud and micro-VM kernels): boot a distribution kernel (Ubuntu's and "
                       "Debian's have it); full dumps still work",
    "uffd": "the kernel has no userfaultfd (CONFIG_USERFAULTFD); where it is built in but limited to "
            "root, `sudo sysctl vm.unprivileged_userfaultfd=1` lets other users use it",
    "uffd-noncoop": "userfaultfd without the non-cooperative events (fork, remap) CRIU needs for "
                    "lazy restore: a kernel of 4.11 or later with CONFIG_USERFAULTFD",
    "networkLock": "no network-lock backend: install iptables (`sudo apt-get install iptables`) or "
                   "use a CRIU built with libnftables (`criu check --feature network_lock_nftables`)",
    "netem": "no netem qdisc (sch_netem, CONFIG_NET_SCH_NETEM): `criu-lab link` can set a rate but no "
             "delay or loss; on Ubuntu the module may be in `linux-modules-extra-$(uname -r)`",
    "criuCheck": "`criu check` fails: CRIU older than 4.1 fails on kernels 6.13 and later; on "
                 "Ubuntu 23.10 and later AppArmor may block it: "
                 "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`",
}

# Below this much free space for the images, the doctor says how to make room.
LOW_DISK = 2**30

SYSCTLS = {
    "kernel.apparmor_restrict_unprivileged_userns": "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    "vm.unprivileged_userfaultfd": "/proc/sys/vm/unprivileged_userfaultfd",
}


def register(sub):
    sub.add_parser("doctor", help="which exercises can run on this host, and why not").set_defaults(fn=cmd_doctor)


def feature(name):
    """`criu check --feature NAME`: (supported, CRIU's last words about it)."""
    p = run([CRIU, "check", "--feature", name], 60)
    lines = [re.sub(r"^(Warn|Error) *\([^)]*\): *", "", l) for l in (p.stdout + p.stderr).strip().splitlines()
             if "Hardware breakpoints" not in l]
    return p.returncode == 0, (lines[-1] if lines else "")


def network_lock(features):
    """The backend CRIU's --network-lock should use here: CRIU's default, iptables, needs the
    iptables-restore binary; nftables needs a CRIU built with libnftables."""
    if shutil.which("iptables-restore") or shutil.which("iptables-legacy-restore"):
        return "iptables"
    if features["network_lock_nftables"]["ok"]:
        return "nftables"
    return None


def probe():
    """What this host can do: criu check, each feature, the network lock, the verdicts."""
    r = base()
    ready("doctor")
    # `criu check` is what every exercise needs; `--all` also tries the optional features and
    # fails where any is missing, so it is reported, and the features that matter decide.
    for key, argv in (("criuCheck", ["check"]), ("criuCheckAll", ["check", "--all"])):
        p = run([CRIU, *argv])
        r[key] = {"ok": p.returncode == 0, "output": "\n".join((p.stdout + p.stderr).strip().splitlines()[-8:])}
    features = {}
    for name in FEATURES:
        ok, said = feature(name)
        features[name] = {"ok": ok, "output": said}
    r["features"] = features
    r["networkLock"] = network_lock(features)
    # What `criu-lab checkpoint export` compresses with (archive.py): zstd where installed.
    r["archiveCodec"] = "zstd" if have_zstd() else "gzip"
    r["sysctls"] = {}
    for key, path in SYSCTLS.items():
        try:
            with open(path) as f:
                r["sysctls"][key] = f.read().strip()
        except OSError:
            r["sysctls"][key] = None
    # Shaping the path to the peer (criu-lab link): tried for real, as `link set` would.
    r["link"] = link.capabilities()
    r["exercises"] = verdicts(r)
    r["fixes"] = [FIXES[k] for k in fix_keys(r)] + ([] if r["link"]["delay"]["ok"] else [FIXES["netem"]])
    r["disk"] = disk()
    if r["disk"]["freeBytes"] < LOW_DISK:
        # Each kept run is as large as the process it dumped; a dump that would not fit is refused.
        r["fixes"].append(f"only {human_bytes(r['disk']['freeBytes'])} free for the images in {r['disk']['dir']}: "
                          "`sudo criu-lab clean` (or `clean --all`) removes the runs not kept")
    r["ok"] = r["criuCheck"]["ok"]
    return r


def fix_keys(r):
    keys = [] if r["criuCheck"]["ok"] else ["criuCheck"]
    keys += [n for n in ("mem_dirty_track", "uffd", "uffd-noncoop") if not r["features"][n]["ok"]]
    return keys + ([] if r["networkLock"] else ["networkLock"])


# What each exercise needs past `criu check` (which every one needs), by the names of NEEDS.
# The migration modes read their rows (modes.MODES): one table of what a mode needs.
EXERCISES = {
    "training-full": (),
    "training-incremental": ("dirty",),
    "game": ("lock",),
    "migration-cold": (),
    "migration-page-server": (),
    "migration-pre-copy": ("dirty",),
    # Lazy migration also needs a second kernel (modes.mode_unsupported): this is what the
    # host that restores, and serves its pages to userfaultfd, must have.
    "migration-lazy": ("uffd",),
    # criu-lab advise (advise.py): it runs wherever CRIU does; only its dirty rate needs the
    # soft-dirty bits (without them it says it cannot measure it, and predicts no pre-copy).
    "advise": (),
    "advise-dirty-rate": ("dirty",),
}

# The `criu check --feature` names each need reads.
NEED_FEATURES = {"dirty": ("mem_dirty_track",), "lock": ("network_lock_nftables",), "uffd": ("uffd", "uffd-noncoop")}


def need(name, f, lock):
    """Need NAME against the features F and the network lock LOCK: (met, why not, FIXES key)."""
    if name == "dirty":
        return (f["mem_dirty_track"]["ok"], "no dirty-page tracking (`criu check --feature mem_dirty_track`: "
                f"{f['mem_dirty_track']['output']})", "mem_dirty_track")
    if name == "lock":
        return lock is not None, "no network-lock backend for --tcp-established", "networkLock"
    return (f["uffd"]["ok"] and f["uffd-noncoop"]["ok"],
            "no userfaultfd for lazy pages (`criu check --feature uffd-noncoop`)", "uffd")


def unmet(exercise, f, lock=None):
    """The first need of EXERCISE past `criu check` that the features F (those its needs read)
    and LOCK do not meet, as a verdict {ok: false, reason, fix}; None when all are met."""
    for name in EXERCISES[exercise]:
        ok, why, fix = need(name, f, lock)
        if not ok:
            return {"ok": False, "reason": why, "fix": FIXES[fix]}
    return None


def feature_names(exercise):
    """The `criu check --feature` names EXERCISE's needs read (none: nothing to ask)."""
    return [n for name in EXERCISES[exercise] for n in NEED_FEATURES[name]]


def verdicts(r):
    """Per exercise: can it run here, and the reason (with the fix) when it cannot."""
    if not r["criuCheck"]["ok"]:
        return {e: {"ok": False, "reason": "`criu check` fails", "fix": FIXES["criuCheck"]} for e in EXERCISES}
    return {e: unmet(e, r["features"], r["networkLock"]) or {"ok": True, "reason": ""} for e in EXERCISES}


def require(*exercises):
    """Probes the host; raises (exit 1) with the doctor's reason and fix for the first of
    EXERCISES that cannot run here. Returns the probe."""
    r = probe()
    for exercise in exercises:
        v = r["exercises"][exercise]
        if not v["ok"]:
            raise LabError(BROKEN, f"{exercise} cannot run on this host: {v['reason']}; {v['fix']} "
                           "(see `sudo criu-lab doctor`)")
    return r


def cmd_doctor(_):
    failure = base()
    with attempt(failure) as outcome:
        r = probe()
    if outcome.failed:
        return outcome.code, failure, f"criu-lab doctor: {failure['error']}"
    lines = [f"CRIU {r['criuVersion']}, kernel {r['kernel']} ({platform.machine()}), "
             f"criu check: {'passed' if r['criuCheck']['ok'] else 'FAILED'}, criu check --all: "
             f"{'passed' if r['criuCheckAll']['ok'] else 'some optional features missing'}"]
    for name, v in r["features"].items():
        lines.append(f"  {name:<24}{'yes' if v['ok'] else 'NO':<5}{v['output']}")
    lines.append(f"  {'network lock':<24}{r['networkLock'] or 'NONE (neither iptables nor nftables)'}")
    if r.get("archiveCodec"):
        lines.append(f"  {'checkpoint archives':<24}" + ("zstd" if r["archiveCodec"] == "zstd" else
                                                       "gzip (zstd packs faster and smaller: sudo apt-get install zstd)"))
    for key, value in r["sysctls"].items():
        if value is not None:
            lines.append(f"  {key} = {value}")
    for what, v in r["link"].items():
        said = v["output"] + (f" ({v['kernelConfig']})" if v.get("kernelConfig") else "")
        lines.append(f"  {'link ' + ('rate' if what == 'rate' else 'delay/loss'):<24}"
                     f"{'yes' if v['ok'] else 'NO':<5}{said}")
    lines.append(disk_text(r["disk"]))
    lines.append("Exercises:")
    for name, v in r["exercises"].items():
        lines.append(f"  {name:<24}{'yes' if v['ok'] else 'no':<5}{v['reason']}")
    if r["fixes"]:
        lines += ["To fix what is missing:"] + [f"  - {fix}" for fix in r["fixes"]]
    if not r["ok"]:
        r["error"] = "criu check failed"
    return (OK if r["ok"] else BROKEN), r, "\n".join(lines)
