"""The command line: one subcommand per module, each with --json; prints and exits."""
import argparse
import json
import os
import signal
import sys

from . import __doc__ as USAGE_TEXT
from . import (analyze, autostop, check, checkpoint_cmd, clean, demo, doctor, guide, judge, link, migrate, progress,
               scenario, status)

COMMANDS = (check, demo, analyze, status, doctor, clean, autostop, scenario, migrate, checkpoint_cmd, judge, guide,
            progress, link)


def main(argv):
    p = argparse.ArgumentParser(prog="criu-lab", description=USAGE_TEXT,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    for name, s in sub.choices.items():
        if name not in ("scenario", "checkpoint"):  # their leaves take --json themselves
            s.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)  # exits 2 on bad usage (docs/design.md "Contracts")
    # A verifier's timeout or a dropped SSH session ends us with SIGTERM/SIGHUP: exit through
    # Python so `finally` blocks run and a process under test (its own session) is stopped too.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    # What a command writes (checkpoint images hold a process's memory, logs name its files) is
    # root's alone; run directories are made private too (common.private_dir).
    os.umask(0o077)
    code, result, human = args.fn(args)
    # A command that ends an exercise records it (exercises.json), for `criu-lab progress`.
    progress.after_command(args, code, result=result)
    print(json.dumps(result) if args.json else human, flush=True)
    return code
