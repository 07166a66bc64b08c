"""Pre-copy's rounds and the rule that ends them (as P.Haul's iterative migration does): pre-dump
rounds copy the process's memory while it runs, each round only the pages it dirtied since the
one before, until the rounds are small enough, stop shrinking, or reach a limit; then the final
dump moves the rest while it is frozen (docs/design.md "CRIU and the kernel")."""
import os
import time

from . import manifest
from .common import criu_stats, human_bytes
from .remote import ship

CONVERGED_BYTES = 2**20  # a round this small leaves a final dump of about as much
CONVERGED_SHARE = 0.05  # or this share of the first round (everything) left dirty
SHRINKING = 0.9  # a round must be at least a tenth smaller than the one before
ROUND_LIMIT = 8
ALL_DIRTY = 0.9  # a later round this share of round 1 (all of its memory): it rewrites everything
PAGE = os.sysconf("SC_PAGE_SIZE")


def verdict(rounds):
    """ROUNDS so far ([{round, bytes, sinceMs, copyMs, sentBytes}], in order): (None, None,
    None) to go on, else (stop: "converged" | "not shrinking" | "round limit", why in words,
    and when more rounds cannot catch up with the process (cannot_catch_up), that said with
    the numbers, else None)."""
    last, first = rounds[-1], rounds[0]
    n = len(rounds)
    before = rounds[-2] if n > 1 else None
    if last["bytes"] <= CONVERGED_BYTES or (before and last["bytes"] <= CONVERGED_SHARE * first["bytes"]):
        return "converged", (f"round {n} found {human_bytes(last['bytes'])} dirty, at most "
                             f"{human_bytes(CONVERGED_BYTES)} or {CONVERGED_SHARE:.0%} of round 1's "
                             f"{human_bytes(first['bytes'])}"), None
    if before and last["bytes"] > SHRINKING * before["bytes"]:
        stop, why = "not shrinking", (f"round {n} found {human_bytes(last['bytes'])} dirty, not a tenth less than "
                                      f"round {n - 1}'s {human_bytes(before['bytes'])}")
    elif n >= ROUND_LIMIT:
        stop, why = "round limit", f"{ROUND_LIMIT} rounds, the last still {human_bytes(last['bytes'])} dirty"
    else:
        return None, None, None
    return stop, why, cannot_catch_up(rounds)


def cannot_catch_up(rounds):
    """When a later round found about all of the process's memory dirty again (ALL_DIRTY of
    round 1), or its pages were dirtied faster (bytes over the time since the round before
    began) than the link carried the rounds' copies (bytes sent over their time): that, with
    the numbers, else None. Such a process never converges: every round has as much to copy as
    the one before."""
    last, first = rounds[-1], rounds[0]
    if len(rounds) > 1 and last["bytes"] >= ALL_DIRTY * first["bytes"]:
        # Its rate is then only a floor (it cannot dirty more than all of it), which may read
        # slower than the link: the round itself says it.
        return (f"the process dirtied about all of its memory between rounds ({human_bytes(last['bytes'])} of round 1's "
                f"{human_bytes(first['bytes'])}): more rounds would not catch up, the final dump moves the rest")
    sent, copy_ms = sum(r["sentBytes"] for r in rounds), sum(r["copyMs"] for r in rounds)
    if not last.get("sinceMs") or not copy_ms:
        return None
    dirty, link = last["bytes"] * 1000 / last["sinceMs"], sent * 1000 / copy_ms
    if dirty < link:
        return None
    return (f"the process dirties {human_bytes(int(dirty))}/s, faster than the link carries it ({human_bytes(int(link))}/s "
            "measured over the rounds' copies): more rounds would not catch up, the final dump moves the rest")


def pre_copy(m, say):
    """Pre-dump rounds of Migration M, each copied to the destination while the process runs,
    until verdict() stops them; reported in M.r (preCopyRounds, preCopyStop). Returns the last
    round's directory as the final dump's --prev-images-dir (relative to its images)."""
    rounds, began_before = [], None
    while True:
        i = len(rounds) + 1
        d = os.path.join(os.path.dirname(m.images), f"pre-{i}")  # beside the images, in RAM or on disk
        os.makedirs(d)
        began = time.monotonic()
        ms = m.criu(["pre-dump", "-t", str(m.pid), "-D", d, "--track-mem",
                     *(["--prev-images-dir", f"../pre-{i - 1}"] if i > 1 else [])], f"pre-dump-{i}.log")
        d = os.path.join(os.path.dirname(m.images), f"pre-{i}")  # on disk now if RAM ran short (Migration.room)
        pages = written(d)
        manifest.write(d, {"preDumpRound": i})  # a checkpoint directory like every other (docs/design.md)
        sent, copy_ms = ship(m.remote, [d] + [os.path.join(d, n) for n in sorted(os.listdir(d))])
        m.r["bytesTransferred"] += sent
        rounds.append({"round": i, "pages": pages, "bytes": pages * PAGE, "ms": ms, "copyMs": copy_ms,
                       "sentBytes": sent, "sinceMs": round((began - began_before) * 1000, 1) if began_before else None})
        began_before = began
        say(f"pre-dump round {i}: {pages} pages ({human_bytes(pages * PAGE)}) dirty, dumped in {ms} ms, copied in "
            f"{copy_ms} ms while PID {m.pid} runs")
        stop, why, slow = verdict(rounds)
        if stop:
            break
    m.r.update(preCopyRounds=rounds, preCopyStop=stop)
    say(f"pre-copy stops after round {i}: {stop} ({why})")
    if slow:
        m.r["preCopyTooFast"] = slow
        say(slow)
    return f"../pre-{i}"


def written(images):
    """Pages a pre-dump wrote into IMAGES: CRIU's stats-dump, else its pages-*.img sizes."""
    pages = criu_stats(images).get("pagesWritten")
    if isinstance(pages, int):
        return pages
    return sum(os.path.getsize(os.path.join(images, n)) for n in os.listdir(images) if n.startswith("pages-")) // PAGE
