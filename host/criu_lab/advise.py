"""The mode advisor: measures a process (its memory, how fast it dirties it) and the link to
the destination (throughput, round trip), predicts each migration mode's downtime from a
stated model, and picks the shortest mode `--mode auto` may run (criu-lab advise, migrate
--mode auto; docs/design.md "The mode advisor"). Nothing here freezes the process.
"""
import os
import re
import statistics
import subprocess
import threading
import time

from . import doctor
from .common import human_bytes, process_tree
from .modes import AUTO_ORDER, MODES, mode_unsupported
from .precopy import CONVERGED_BYTES, CONVERGED_SHARE, ROUND_LIMIT, SHRINKING

MIB = 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")

# The model's constants, in one place. Measured on this project's test host (2 shared cores,
# load 1.0-1.1, Linux 6.18, CRIU 4.x): a Python process holding 8 MiB and 256 MiB of random
# bytes, `criu dump` into /dev/shm and `criu restore -d` from there, twice each (8 MiB: dump
# 74-83 ms, restore 105-115 ms; 256 MiB: dump 173-189 ms, restore 902-928 ms). The fixed cost
# is the 8 MiB run's, the rate the 248 MiB between them over the difference in time. Hashing:
# the manifest's sha256, written here in the freeze and checked there before the restore, both
# with Python's hashlib (manifest.CHECK_PY): 1 GiB in 0.84-0.89 s at load 0.6-1.0 (coreutils
# 9.1's sha256sum, the check there before: 2.74-2.86 s). docs/design.md "Measured here" has more.
COST = {"dumpFixedMs": 75, "dumpMiBs": 2400, "restoreFixedMs": 105, "restoreMiBs": 310, "hashMiBs": 1200}

# pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst): present, swapped, soft-dirty.
PRESENT, SWAPPED, SOFT_DIRTY = 1 << 63, 1 << 62, 1 << 55
CHUNK_PAGES = 1 << 17  # pagemap read 1 MiB of entries at a time
WARM = MIB  # sent before the link's probe is timed
PROBE_TIMEOUT_S = 300


def kib_field(text, name):
    """The NAME: N kB line of /proc status or smaps_rollup TEXT, in bytes (0 when absent)."""
    m = re.search(rf"^{name}:\s+(\d+) kB$", text, re.M)
    return int(m.group(1)) * 1024 if m else 0


def memory(pid):
    """{rssBytes, pagesBytes} over PID's tree: resident memory (VmRSS, /proc/PID/status) and
    what CRIU writes of it as pages (smaps_rollup's Anonymous + Pss_Shmem + Swap, as
    common.dump_estimate counts it: file-backed pages stay in their files)."""
    rss = pages = 0
    for p in process_tree(pid):
        with open(f"/proc/{p}/status") as f:
            rss += kib_field(f.read(), "VmRSS")
        with open(f"/proc/{p}/smaps_rollup") as f:
            rollup = f.read()
        pages += sum(kib_field(rollup, k) for k in ("Anonymous", "Pss_Shmem", "Swap"))
    return {"rssBytes": rss, "pagesBytes": pages}


def writable_ranges(maps_text):
    """(start, end) of each writable mapping in /proc/PID/maps text: the pages a process can dirty."""
    out = []
    for line in maps_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "w" in parts[1] and not line.endswith("[vsyscall]"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end))
    return out


def soft_dirty_pages(entries):
    """How many of ENTRIES (pagemap's 64-bit words) are present or swapped and soft-dirty."""
    return sum(1 for e in entries if e & SOFT_DIRTY and e & (PRESENT | SWAPPED))


def count_dirty(pid):
    """Soft-dirty pages of PID now, over its writable mappings."""
    with open(f"/proc/{pid}/maps") as f:
        ranges = writable_ranges(f.read())
    dirty = 0
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        for start, end in ranges:
            first, last = start // PAGE, end // PAGE
            for at in range(first, last, CHUNK_PAGES):
                f.seek(at * 8)
                data = f.read(min(CHUNK_PAGES, last - at) * 8)
                dirty += soft_dirty_pages(memoryview(data).cast("Q")) if len(data) % 8 == 0 else 0
    return dirty


def dirty_rate(pid, window, tracking):
    """How fast PID's tree dirties memory: soft-dirty bits cleared (clear_refs 4), WINDOW seconds,
    the dirty pages counted (pagemap bit 55), as CRIU's pre-dump tracks them. TRACKING: the
    doctor's verdict on soft-dirty, (ok, CRIU's words). Without it: ok false and why, plainly.
    The clearing write-protects the pages: the process takes a minor fault on its next write
    to each, and is never stopped."""
    ok, said = tracking
    if not ok:
        return {"ok": False, "why": "cannot measure the dirty rate: this kernel has no soft-dirty page tracking "
                                    f"(`criu check --feature mem_dirty_track`: {said or 'fails'})"}
    tree = process_tree(pid)
    for p in tree:
        with open(f"/proc/{p}/clear_refs", "w") as f:
            f.write("4")
    started = time.monotonic()
    time.sleep(window)
    pages = sum(count_dirty(p) for p in tree)
    seconds = time.monotonic() - started
    return {"ok": True, "dirtyBytes": pages * PAGE, "windowMs": round(seconds * 1000, 1),
            "bytesPerSec": round(pages * PAGE / seconds)}


def link(remote, probe_bytes, rounds=3):
    """The link as migrate uses it, through the same SSH master connection. rttMs: the median of
    ROUNDS commands there that do nothing, the shell's start included, as each of migrate's steps
    there pays it. bytesPerSec: PROBE_BYTES of random bytes (nothing on the way compresses them)
    read into /dev/null there, ROUNDS times in one command, each timed from its first byte sent
    until the command says it has them all; the fastest counts (probeRunsMs: all). Neither the
    shell's start (in rttMs) nor the end of its input is in that time, and WARM bytes go first,
    so SSH's window has opened. The fastest, as on a busy host one run took ten times another."""
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        remote.must("true", "a round trip")
        times.append((time.monotonic() - started) * 1000)
    warm = min(WARM, probe_bytes)
    data = os.urandom(probe_bytes)
    script = f"echo ready; head -c {warm} >/dev/null; echo warm" + "".join(
        f"; head -c {probe_bytes} >/dev/null; echo {i}" for i in range(rounds)) + "; cat >/dev/null"
    p = subprocess.Popen(remote.argv(script), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    expected = [b"ready\n", b"warm\n", *(f"{i}\n".encode() for i in range(rounds))]
    said, runs = [], []
    # A destination that stops reading or answering must not hang the advisor: ended after this.
    watchdog = threading.Timer(PROBE_TIMEOUT_S, p.kill)
    watchdog.start()
    try:
        said.append(p.stdout.readline())
        for chunk in (data[:warm], *(data,) * rounds):
            if said != expected[:len(said)]:
                break
            started = time.monotonic()
            p.stdin.write(chunk)
            p.stdin.flush()
            said.append(p.stdout.readline())
            runs.append(round((time.monotonic() - started) * 1000, 1))
        p.stdin.close()
        p.wait(PROBE_TIMEOUT_S)
    except BrokenPipeError:
        p.wait(PROBE_TIMEOUT_S)  # it ended before reading it all: said below, with its words
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read().decode(errors="replace")
    remote.raise_if_unreachable(subprocess.CompletedProcess(p.args, p.returncode, "", err))
    if said != expected or p.returncode != 0:
        raise OSError(f"sending {human_bytes(probe_bytes)} to {remote.host} failed: {err.strip()[-300:] or 'no answer'}")
    ms = min(runs[1:])
    return {"rttMs": round(statistics.median(times), 1), "probeBytes": probe_bytes, "probeMs": ms,
            "probeRunsMs": runs[1:], "bytesPerSec": round(probe_bytes * 1000 / max(ms, 0.1))}


def ms_for(nbytes, mib_per_s):
    return nbytes * 1000 / (mib_per_s * MIB)


def precopy_rounds(pages, rate, dump, send):
    """Pre-copy's rounds as precopy.verdict would stop them, when the process dirties RATE
    bytes/s without limit but its memory, PAGES bytes: round 1 copies all of it, each later
    round what was dirtied while the one before was dumped and sent (DUMP, SEND: ms for bytes).
    Returns (rounds run, the final dump's dirty bytes)."""
    sizes = [pages]
    while True:
        last = sizes[-1]
        dirty = min(pages, rate * (dump(last) + send(last)) / 1000)
        n = len(sizes)
        if last <= CONVERGED_BYTES or (n > 1 and last <= CONVERGED_SHARE * sizes[0]) \
                or (n > 1 and last > SHRINKING * sizes[-2]) or n >= ROUND_LIMIT:
            return n, dirty
        sizes.append(dirty)


def predict(pages, dirty, net, cost=COST):
    """Each mode's predicted downtime (ms, by stage) for PAGES bytes of memory CRIU writes, DIRTY
    (dirty_rate's answer) and NET (link's answer). Every command migrate runs there within the
    downtime costs one rttMs: the room check before the dump (otherMs), the copy, the restore.
    The model, stage by stage (freeze | transfer | restore):
      cold         dump | a command + pages / link, the manifest's hashing beside it (the
                   longer of the two) | a command + hash (the check there) + restore
      page-server  the dump streams its pages: max(dump, pages / link) | a command for the
                   rest | a command + restore (the pages are not hashed)
      pre-copy     rounds while it runs (precopy_rounds), then as cold for the final round's
                   dirty set, but the restore is of all the pages; only with a dirty rate
      lazy         the dump of everything but the pages | the copy and `criu lazy-pages`
                   started, two commands | a command + the restore without pages (no room
                   check there); the pages follow (pagesFollowMs), the source needed until then"""
    rtt, link_mibs = net["rttMs"], net["bytesPerSec"] / MIB

    def dump(b):
        return cost["dumpFixedMs"] + ms_for(b, cost["dumpMiBs"])

    def restore(b):
        return cost["restoreFixedMs"] + ms_for(b, cost["restoreMiBs"])

    def send(b):
        return ms_for(b, link_mibs)

    def hashing(b):
        return ms_for(b, cost["hashMiBs"])

    def stages(freeze, transfer, restore_ms, other=rtt, **more):
        s = {"freezeMs": round(freeze, 1), "transferMs": round(transfer, 1), "restoreMs": round(restore_ms, 1),
             "otherMs": round(other, 1)}
        return {"downtimeMs": round(freeze + transfer + restore_ms + other, 1), "stages": s, **more}

    out = {
        "cold": stages(dump(pages), rtt + max(send(pages), hashing(pages)), rtt + hashing(pages) + restore(pages)),
        "page-server": stages(max(dump(pages), cost["dumpFixedMs"] + send(pages)), rtt, rtt + restore(pages)),
        "lazy": stages(cost["dumpFixedMs"], 2 * rtt, rtt + cost["restoreFixedMs"], 0, pagesFollowMs=round(send(pages), 1)),
    }
    if dirty.get("ok"):
        n, final = precopy_rounds(pages, dirty["bytesPerSec"], dump, send)
        out["pre-copy"] = stages(dump(final), rtt + max(send(final), hashing(final)), rtt + hashing(final) + restore(pages),
                                 rounds=n, finalDirtyBytes=round(final))
    else:
        out["pre-copy"] = {"why": "no prediction without a dirty rate (" + dirty["why"] + ")"}
    return out


def choose(predictions, unsupported):
    """(the pick, [{mode, why}] passed over): the mode of AUTO_ORDER with the shortest predicted
    downtime among those these hosts can run (UNSUPPORTED: mode -> why not, or None), the
    earlier in AUTO_ORDER on a tie; passed over, the modes before it in AUTO_ORDER and why.
    Never lazy (modes.AUTO_ORDER). Cold can always run and always has a prediction."""
    runnable = [m for m in AUTO_ORDER if unsupported.get(m) is None and "downtimeMs" in predictions[m]]
    pick = min(runnable, key=lambda m: (predictions[m]["downtimeMs"], AUTO_ORDER.index(m)))
    passed = []
    for m in AUTO_ORDER[:AUTO_ORDER.index(pick)]:
        why = unsupported.get(m) or predictions[m].get("why") or (
            f"predicted {predictions[m]['downtimeMs']:.0f} ms, more than {pick}'s {predictions[pick]['downtimeMs']:.0f} ms")
        passed.append({"mode": m, "why": why})
    return pick, passed


def advise(pid, remote, dest, probe_bytes=8 * MIB, window=1.0, say=lambda s: None):
    """Measures PID and the link to REMOTE (connected; DEST its probe, with the features
    modes.destination_features('auto') asks), predicts, picks. Returns the advice:
    {measurements, predictions (each with ok and why not when these hosts cannot run it), pick,
    passedOver, model}."""
    tracking = doctor.feature("mem_dirty_track")
    mem = memory(pid)
    dirty = dirty_rate(pid, window, tracking)
    net = link(remote, probe_bytes)
    predictions = predict(mem["pagesBytes"], dirty, net)
    unsupported = {m: mode_unsupported(m, dest) for m in MODES}
    for m, why in unsupported.items():
        predictions[m].update(ok=why is None, **({"why": why} if why else {}))
    pick, passed = choose(predictions, unsupported)
    advice = {"measurements": {"memory": mem, "dirty": dirty, "link": net}, "predictions": predictions,
              "pick": pick, "passedOver": passed, "model": COST}
    say(advice_text(advice))
    return advice


def advice_text(a):
    """The advice in the terminal: what was measured, each mode's prediction or why not, the pick."""
    m = a["measurements"]
    mem, dirty, net = m["memory"], m["dirty"], m["link"]
    lines = [f"memory: {human_bytes(mem['rssBytes'])} resident, {human_bytes(mem['pagesBytes'])} of it pages CRIU writes",
             "dirty rate: " + (f"{human_bytes(dirty['bytesPerSec'])}/s ({human_bytes(dirty['dirtyBytes'])} dirtied in "
                               f"{dirty['windowMs']:.0f} ms)" if dirty["ok"] else dirty["why"]),
             f"link: {human_bytes(net['bytesPerSec'])}/s ({human_bytes(net['probeBytes'])} in {net['probeMs']:.0f} ms), "
             f"round trip {net['rttMs']:.1f} ms (an SSH command there, its shell's start included)",
             "predicted downtime:"]
    for mode in ("pre-copy", "page-server", "cold", "lazy"):
        p = a["predictions"][mode]
        said = f"{p['downtimeMs']:.0f} ms" if "downtimeMs" in p else "-"
        if mode == "lazy" and "downtimeMs" in p:
            said += f" (until it runs there; its pages follow for about {p['pagesFollowMs']:.0f} ms)"
        if mode == "pre-copy" and "rounds" in p:
            said += f" (after {p['rounds']} rounds; {human_bytes(p['finalDirtyBytes'])} left for the final dump)"
        if not p.get("ok", True) or (mode == "pre-copy" and "downtimeMs" not in p):
            said += f"; cannot: {p['why']}"
        elif mode == "lazy":
            said += "; --mode auto never picks lazy: until its last page has gone it needs both hosts"
        lines.append(f"  {mode:<13}{said}")
    lines.append(f"pick: {a['pick']}" + "".join(f"; passed over {p['mode']}: {p['why']}" for p in a["passedOver"]))
    return "\n".join(lines)
