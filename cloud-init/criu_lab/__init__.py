"""criu-lab: check, demonstrate and explain CRIU checkpoint/restore on this host.

  check        does `criu check` pass on this kernel?
  demo         run the counter, dump it, restore it, check that it counts on
  analyze DIR  explain a checkpoint directory, file by file
  status       what install-criu.sh installed
  autostop     (run by a systemd timer) power off after N minutes with no SSH session

Each takes --json. Exit codes: 0 ok; 1 the lab does not work; 2 bad usage; 3 not installed.
"""
# A package with a module per command (DESIGN.md "Style"); /usr/local/bin/criu-lab is a
# symlink to the launcher beside it in /usr/local/lib/criu-lab. Standard library only, run by
# the system python3 (the one crit needs).
