"""The migration modes: what each needs (the doctor's verdicts), and what `--mode auto` picks.

Modes (https://criu.org/Live_migration, https://criu.org/Lazy_migration):
  cold         dump here, copy the images, restore there
  page-server  `criu page-server` there; the dump streams its pages to it (through SSH)
  pre-copy     pre-dump rounds while the process runs, then a short final dump
  lazy         post-copy: restore there first, pages follow on demand (`criu lazy-pages`)
  auto         of AUTO_ORDER, the one these two hosts can run (mode_unsupported) with the
               shortest downtime the advisor predicts (advise.py)
"""
from . import doctor

# The one table of what a mode needs: the doctor's verdict (doctor.EXERCISES, so `criu-lab
# doctor` and migrate never disagree), on the host where that work runs, and what migrate says
# when it cannot. Pre-copy's pre-dump rounds run on the source: this host's dirty tracking
# decides. Lazy restores on the destination (userfaultfd there, probed over SSH) and needs a
# second kernel: the source keeps the process's PID while it serves its pages. Cold and
# page-server need nothing past `criu check` (CRIU 4.x, any kernel).
MODES = {
    "cold": {"verdict": "migration-cold", "on": "source"},
    "page-server": {"verdict": "migration-page-server", "on": "source"},
    "pre-copy": {"verdict": "migration-pre-copy", "on": "source",
                 "refused": "pre-copy needs memory dirty tracking (soft-dirty bits), and this host's kernel (the "
                            "source's) has none (`criu check --feature mem_dirty_track`: Dirty tracking is OFF)"},
    "lazy": {"verdict": "migration-lazy", "on": "destination", "second_kernel": True,
             "refused": "lazy needs userfaultfd on the destination (`criu check --feature uffd-noncoop` fails there)"},
}
# What `--mode auto` chooses from (advise.choose), in the order that breaks a tie of predictions.
# Never lazy: it needs a second kernel, and until the last page has gone the process lives on
# both hosts, lost if the source dies (docs/design.md "The mode advisor").
AUTO_ORDER = ("pre-copy", "page-server", "cold")
MODE_CHOICES = (*MODES, "auto")
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def add_mode_flag(p):
    p.add_argument("--mode", choices=MODE_CHOICES, default="cold",
                   help="cold (default), page-server, pre-copy, lazy, or auto: of "
                        f"{', '.join(AUTO_ORDER)}, the one these two hosts can run with the shortest "
                        "predicted downtime (criu-lab advise)")


def destination_features(mode):
    """The `criu check --feature` names to ask the destination about for MODE (auto: for every
    mode, as the advisor says of each whether it can run): those of the verdicts that must hold there."""
    modes = tuple(MODES) if mode == "auto" else (mode,)
    return [n for m in modes if MODES[m]["on"] == "destination" for n in doctor.feature_names(MODES[m]["verdict"])]


def same_kernel(dest):
    """Whether the destination is this very kernel (the namespace pairs of the host tier): only
    then does a dumped process's PID stay taken here until its parent reaps it."""
    with open(BOOT_ID) as f:
        return f.read().strip() == dest["bootId"]


def mode_unsupported(mode, dest):
    """Why these two hosts cannot run MODE, or None. DEST: the destination's probe (its boot id
    and the `features` destination_features asked for). The source's features are asked here,
    only those its verdict reads."""
    row = MODES[mode]
    if row.get("second_kernel") and same_kernel(dest):
        return (f"{mode} needs a second kernel: the source and the destination share this kernel, and the "
                "source keeps the process's PID while it serves its pages, so the destination cannot "
                "restore it with that PID (use a VM or another host)")
    if row["on"] == "source":
        features = {n: dict(zip(("ok", "output"), doctor.feature(n))) for n in doctor.feature_names(row["verdict"])}
    else:
        features = dest["features"]
    verdict = doctor.unmet(row["verdict"], features)
    if verdict is None:
        return None
    return row.get("refused") or f"{mode} needs what the doctor's {row['verdict']} needs: {verdict['reason']}"

