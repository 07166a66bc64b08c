#!/usr/bin/env python3
"""The lab's training job: SIZE MiB of state ("weights") trained one step at a time.

Prints its PID, then "step N checksum C" after each step. A step changes a few percent of
the pages, as an optimizer would, so its checksum depends on every step before it: a job
restored from a checkpoint goes on from that checkpoint's step with the checksum it had then.
`kill -USR1 PID` makes it check itself (as CRIU's own zdtm tests do): it recomputes the
checksum from its whole memory and prints "check step N checksum C: ok" or "... CORRUPT".
The job is deterministic: the same --size-mib, --dirty-percent and --seed give the same
checksum at the same step in every run, so a restored job can be compared with the original.
"""
import argparse
import hashlib
import os
import signal
import struct
import sys
import time
import zlib

PAGE = 4096
MASK = (1 << 64) - 1


def page_sum(mem, page):
    """One page's share of the checksum: its CRC weighted by its index, so that pages
    swapped or restored in the wrong place change the total."""
    return zlib.crc32(mem[page * PAGE:(page + 1) * PAGE]) * (2 * page + 1)


def full_checksum(mem, pages):
    total = 0
    for page in range(pages):
        total += page_sum(mem, page)
    return total & MASK


def positive(kind):
    def parse(value):
        try:
            number = kind(value)
        except ValueError:
            number = 0
        if number <= 0:
            raise argparse.ArgumentTypeError(f"'{value}' is not a positive number")
        return number
    return parse


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=positive(int), default=256, help="state size in MiB (default 256)")
    parser.add_argument("--step-seconds", type=positive(float), default=0.5, help="seconds per step (default 0.5)")
    parser.add_argument("--dirty-percent", type=positive(float), default=1.0,
                        help="percent of the pages a step changes (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the initial state (default 1)")
    args = parser.parse_args()
    if args.dirty_percent > 100:
        parser.error(f"--dirty-percent {args.dirty_percent}: at most 100")

    pages = args.size_mib * 1024 * 1024 // PAGE
    per_step = max(1, int(pages * args.dirty_percent / 100))
    # Real memory, every page touched: a 1 MiB block derived from the seed, repeated, each
    # page stamped with its index so that no two pages are alike.
    block = hashlib.shake_256(str(args.seed).encode()).digest(1024 * 1024)
    mem = bytearray(block * args.size_mib)
    for page in range(pages):
        struct.pack_into("<Q", mem, page * PAGE, page)
    view = memoryview(mem)
    step, checksum = 0, full_checksum(view, pages)
    # The handler only asks: the check runs between steps, when memory and checksum agree.
    asked = []
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: asked.append(True))
    print(f"PID: {os.getpid()}", flush=True)
    print(f"trainer: {args.size_mib} MiB of state, {pages} pages, {per_step} changed per step", flush=True)
    print(f"step 0 checksum {checksum:016x}", flush=True)
    while True:
        started = time.monotonic()
        step += 1
        for i in range(per_step):
            page = (step * per_step + i) % pages
            checksum -= page_sum(view, page)
            # The "gradient": a value derived from the step and the page's current contents.
            offset = page * PAGE + 8 + (step % 500) * 8
            struct.pack_into("<Q", mem, offset, (zlib.crc32(view[offset:offset + 8]) * 2654435761 + step) & MASK)
            checksum += page_sum(view, page)
        checksum &= MASK
        print(f"step {step} checksum {checksum:016x}", flush=True)
        while asked:
            asked.pop()
            actual = full_checksum(view, pages)
            verdict = "ok" if actual == checksum else f"CORRUPT (memory has {actual:016x})"
            print(f"check step {step} checksum {checksum:016x}: {verdict}", flush=True)
        time.sleep(max(0.0, args.step_seconds - (time.monotonic() - started)))

if __name__ == "__main__":
    sys.exit(main())
