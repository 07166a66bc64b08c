#!/usr/bin/env python3
"""The lab's counter: prints its PID, then "Counter: N" every 2 seconds.

Dumped mid-count and restored, it goes on from the next number: CRIU saved its memory and
registers. Lines are flushed, so a log file shows progress. Tests set --interval.
Ctrl-C ends it quietly (exit status 130, as a shell reports a job ended by SIGINT).
"""
import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between counts (default 2)",
    )
    interval = parser.parse_args().interval
    print(f"PID: {os.getpid()}", flush=True)
    counter = 0
    while True:
        print(f"Counter: {counter}", flush=True)
        counter += 1
        time.sleep(interval)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # Ctrl-C is how a learner ends the (restored) counter: no traceback for it.
        sys.exit(130)
