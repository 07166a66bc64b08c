"""criu-lab: check, demonstrate and explain CRIU checkpoint/restore on this host.

  check        does `criu check` pass on this kernel?
  demo         run the counter, dump it, restore it, check that it counts on
  analyze DIR  explain a checkpoint directory, file by file
  status       what install-criu.sh installed, and the disk space the lab's runs use
  doctor       which exercises this host can run, and why not
  clean [--all]  remove the images of runs not kept (kept: failed runs, the latest
               passing run of each kind; --all: those too), and say how much
  migrate      move a running process to another host over SSH (--to USER@HOST --pid PID)
  advise       measure a process and the link to a host, predict each migration mode's
               downtime, and say which `migrate --mode auto` picks (nothing frozen)
  checkpoint dump --pid PID DIR | verify DIR | restore DIR | export DIR FILE | import FILE DIR
               a checkpoint with its manifest (sizes, sha256): made, checked, restored only
               when it matches, packed into one archive (zstd, else gzip) and unpacked
  link show|set|clear  a rate, delay and loss on the path to the peer, with tc (what this
               host sends; --to HOST or --dev DEV, default the seat's peer)
  scenario run training|game|migration|backup
               one of the lab's stories, unattended, checked and reported
  guide [SECTION]  the lab guide, or the section whose heading has these words
  progress     which of the lab's exercises are done on this host
  autostop     (run by a systemd timer) power off after N minutes with no SSH session
  judge NAME RC STDOUT STDERR
               (run by pulumi up) did a check's output pass its contract (rules.json)?

Each takes --json. Exit codes: 0 ok; 1 the lab does not work; 2 bad usage; 3 not installed or not ready
(a dump whose images would not fit is refused with 3, before anything is frozen; so is a restore of
a checkpoint whose files differ from its manifest, naming the file).
"""
# A package with a module per command (docs/design.md "Style"); /usr/local/bin/criu-lab is a
# symlink to the launcher beside it in /usr/local/lib/criu-lab. Standard library only, run by
# the system python3 (the one crit needs).

# The lab's version, as host/pyproject.toml says (a unit test keeps them equal): each
# checkpoint's manifest records it (manifest.py).
__version__ = "0.1.0"
